"""Time to first step, cold and warm, and where it goes.

For each model (default d12 at B=64 and d48 at B=16, T=1024, as ``throughput``), each repeat starts two fresh
``gpt2train train`` runs of one step on one new, empty compile cache (Inductor's and Triton's, in a temporary
directory):

- cold: as on a machine that has just booted with gpt2train installed: no compiled kernels, and the page cache
  dropped first (Python's bytecode stays: an install keeps its .pyc files). Dropping the page cache needs root;
  where it cannot be dropped the table says so;
- warm: the second start of the same shape, on the cache the cold start filled (``--warm N``: N such starts, one
  after the other: warm starts vary by a second or more).

Reported: the trainer's own "time to first step" (from the process's start) and its split: Python and imports,
setup (model, data, optimizer, fast paths), the first step (mostly compilation, or loading compiled kernels).
``--sample`` also samples the trainer's main thread every 20 ms and says what it was doing: importing, Dynamo's
and AOTAutograd's tracing, Inductor, Triton compiling in this process, waiting for compile workers, or which of
gpt2train's functions; and torch's own timings of its compilation's phases (tracing, cache lookups, code loading).

    python -m bench startup --out $OUT/startup.json                  # d12 and d48, one cold and one warm start each
    python -m bench startup -e d48 --repeats 2 --sample -- --fp8 0    # train flags after --
    python -m bench startup -e d48 --warm 4                           # one cold start, then four warm ones

Python's bytecode: an installed torch has its .pyc files, but a machine image may ship none (and set
PYTHONDONTWRITEBYTECODE=1), so that every start compiles torch's bytecode first: several seconds that no install
pays. Before the first cold start, one throwaway start of the first model, on compile caches of its own, writes
the bytecode of everything the trainer imports (reported as "bytecode_fill", not as a cold start;
``--no-bytecode-fill`` skips it). Where the image's folders are read-only, run with ``PYTHONDONTWRITEBYTECODE``
unset and ``PYTHONPYCACHEPREFIX`` set to a writable folder; with PYTHONDONTWRITEBYTECODE set nothing can be
written, and the tool says so.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

if __package__ in (None, ""):  # run as a file: bench/ is this file's folder
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.throughput import REFERENCE, run_one, tool_arguments

THIS = os.path.abspath(__file__)
SAMPLE_S = 0.02
PHASES = ".phases"  # the suffix of the file beside a --sampled OUT that holds compile_phases()
# what the main thread was doing: the first rule whose every group has a marker in some frame's file on its stack
ACTIVITIES = (
    ("imports", (("<frozen importlib._bootstrap",),)),
    ("Triton compiling in this process", (("/triton/compiler/", "/triton/backends/"),)),
    ("waiting for compile workers", (("/torch/_inductor/",), ("/concurrent/futures/", "/threading.py"))),
    ("Inductor (lowering, code generation, cache)", (("/torch/_inductor/",),)),
    ("Dynamo / AOTAutograd tracing", (("/torch/_dynamo/", "/torch/_functorch/", "/torch/fx/", "/torch/_subclasses/"),)),
)


@dataclass
class Start:
    model: str
    start: str  # cold | warm (the second start) | warm2, warm3... (--warm: the third, the fourth...) | bytecode_fill
    repeat: int
    page_cache_dropped: bool
    ok: bool
    error: str | None
    first_step_s: float | None
    imports_s: float | None
    setup_s: float | None
    first_step_own_s: float | None
    wall_s: float | None
    activities: dict | None = None  # --sample: seconds by what the main thread was doing
    compile_phases: dict | None = None  # --sample: torch's own timings of its compilation's phases (s, summed)


def drop_page_cache() -> bool:
    """Write the dirty pages out and drop the clean ones (root only); whether it did."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def split(parts: str | None) -> dict:
    """The trainer's "(Python and imports A s, setup B s, the first step C s)" as seconds by part."""
    found = {
        m.group(1): m.group(2) for part in (parts or "").split(", ") if (m := re.fullmatch(r"(.+) ([\d.]+) s", part))
    }
    names = {"imports_s": "Python and imports", "setup_s": "setup", "first_step_own_s": "the first step"}
    return {key: float(found[name]) if name in found else None for key, name in names.items()}


RUNNING = "running compiled graphs (first launches, allocations)"


def activity(stack: list[tuple[str, str]], compiled_dir: str | None = None) -> str:
    """What a sampled stack of (file, function), outermost first, was doing: an ACTIVITIES name, RUNNING when a frame
    is Inductor's generated code (a file under ``compiled_dir``) and nothing compiles, else the innermost gpt2train
    function, else "other"."""
    files = [file for file, _ in stack]
    rules = list(ACTIVITIES)
    if compiled_dir:  # after imports and Triton's compiling: running the generated code may trigger both
        rules.insert(2, (RUNNING, ((os.path.join(compiled_dir, ""),),)))
    for name, groups in rules:
        if all(any(m in file for file in files for m in group) for group in groups):
            return name
    for file, func in reversed(stack):
        if "/gpt2train/" in file:
            module = file.rsplit("/gpt2train/", 1)[1].removesuffix(".py").replace("/", ".")
            return f"gpt2train.{module}.{func}"
    return "other"


def stack_of(frame) -> list[tuple[str, str]]:
    """(file, function) of ``frame`` and its callers, outermost first (no source lines read: the sampler stays
    cheap, as traceback.extract_stack, which reads them, is not)."""
    stack = []
    while frame is not None:
        stack.append((frame.f_code.co_filename, frame.f_code.co_name))
        frame = frame.f_back
    return stack[::-1]


def sampled_main(out_path: str, argv: list[str]) -> int:
    """Run ``gpt2train ARGV`` in this process while a thread samples the main thread's stack; write the seconds by
    activity() to ``out_path`` (each sample counts the time since the one before it)."""
    import runpy

    main_thread, seconds, stop = threading.get_ident(), {}, threading.Event()
    compiled_dir = os.environ.get("TORCHINDUCTOR_CACHE_DIR")  # Inductor writes the code it generates there

    def sample() -> None:
        last = time.perf_counter()
        while not stop.wait(SAMPLE_S):
            frame = sys._current_frames().get(main_thread)
            now = time.perf_counter()
            if frame is not None:
                name = activity(stack_of(frame), compiled_dir)
                seconds[name] = seconds.get(name, 0.0) + now - last
            last = now

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sys.argv = ["gpt2train", *argv]
    code = 0
    try:
        runpy.run_module("gpt2train", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        stop.set()
        sampler.join()
        with open(out_path, "w") as f:
            json.dump(dict(sorted(seconds.items(), key=lambda kv: -kv[1])), f, indent=1)
        with open(out_path + PHASES, "w") as f:
            json.dump(compile_phases(), f, indent=1)
    return code


def compile_phases() -> dict:
    """torch's timings of the phases of this process's compilations (torch._dynamo.utils' dynamo_timed
    records: tracing, cache lookups, code loading...), seconds summed by phase, largest first; {} without them."""
    dynamo_utils = sys.modules.get("torch._dynamo.utils")
    metrics = getattr(dynamo_utils, "compilation_time_metrics", None) or {}
    summed = {name: round(sum(times), 3) for name, times in metrics.items()}
    return dict(sorted(summed.items(), key=lambda kv: -kv[1]))


def one_start(args, model: str, start: str, repeat: int, extra: list[str]) -> Start:
    dropped = drop_page_cache() if start == "cold" and not args.keep_page_cache else False
    samples = os.path.join(args.cache, f"samples_{model}_{start}_{repeat}.json")
    prefix = [sys.executable, THIS, "--sampled", samples, "--"] if args.sample else None
    r = run_one(args, model, "fast", extra, log_name=f"{model}_{start}_{repeat}", prefix=prefix)
    activities = phases = None
    if args.sample and os.path.exists(samples):
        with open(samples) as f:
            activities = {k: round(v, 2) for k, v in json.load(f).items()}
        with open(samples + PHASES) as f:
            phases = json.load(f)
    ok = r.first_step_s is not None
    return Start(model, start, repeat, dropped, ok, None if ok else r.error, r.first_step_s,
                 **split(r.first_step_parts), wall_s=r.wall_s, activities=activities, compile_phases=phases)  # fmt: skip


def new_compile_caches(args, folder: str) -> None:
    """Inductor's and Triton's caches, new and empty, in ``folder`` (also ``args.cache``) for the starts to come."""
    args.cache = folder
    os.makedirs(folder)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(folder, "inductor")
    os.environ["TRITON_CACHE_DIR"] = os.path.join(folder, "triton")


def fill_bytecode(args, root: str, extra: list[str]) -> Start | None:
    """One throwaway start of the first model, on compile caches of its own, so that Python's bytecode of all the
    trainer imports is written before the cold starts (as an install writes it); None where it cannot be written."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set, so the cold starts compile Python's bytecode too (an install "
              "would not); unset it, with PYTHONPYCACHEPREFIX set where site-packages is read-only", flush=True)  # fmt: skip
        return None
    new_compile_caches(args, os.path.join(root, "bytecode_fill"))
    fill = one_start(args, args.models[0], "bytecode_fill", 0, extra)
    print(json.dumps(asdict(fill)), flush=True)
    return fill


def table(starts: list[Start], keep: bool = False) -> str:
    def f(v):
        return "-" if v is None else f"{v:.1f}"

    rows = [("model", "start", "page cache", "time to first step s", "imports s", "setup s", "first step s")]
    for s in starts:
        cache = "dropped" if s.page_cache_dropped else ("kept" if s.start != "cold" or keep else "could not drop")
        if not s.ok:
            rows.append((s.model, s.start, cache, "failed: " + (s.error or "")))
            continue
        rows.append((s.model, s.start, cache, f(s.first_step_s), f(s.imports_s), f(s.setup_s),
                     f(s.first_step_own_s)))  # fmt: skip
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    for s in starts:
        if s.activities:
            top = ", ".join(f"{k} {v:.1f}" for k, v in list(s.activities.items())[:8])
            lines.append(f"- {s.model} {s.start} #{s.repeat} (s): {top}")
        if s.compile_phases:
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(s.compile_phases.items())[:8])
            lines.append(f"  torch's compile phases (s): {top}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--sampled"]:  # the child of --sample: --sampled OUT -- GPT2TRAIN ARGS
        return sampled_main(argv[1], argv[3:])
    p, argv, extra = tool_arguments(argv, __doc__.split("\n\n")[0], timeout=300)
    p.add_argument("-e", "--models", nargs="+", default=["d12", "d48"])
    p.add_argument("--repeats", type=int, default=1, help="cold-then-warm pairs per model")
    p.add_argument("--warm", type=int, default=1, help="warm starts after each cold one (warm, warm2, ...; 0: none): a "
                   "warm start varies by a second or more from one to the next")  # fmt: skip
    p.add_argument("--sample", action="store_true", help="say what the main thread spent the start-up on")
    p.add_argument("--keep-page-cache", action="store_true", help="cold starts keep the page cache (only the "
                   "compile caches are new)")  # fmt: skip
    p.add_argument("--no-bytecode-fill", action="store_true", help="no throwaway start first to write Python's "
                   "bytecode (the cold starts then compile whatever bytecode is missing)")  # fmt: skip
    p.add_argument("-b", "--batch-size", type=int, default=0, help="micro-batch (default: the reference's B)")
    p.add_argument("-t", "--seq-len", type=int, default=1024)
    p.add_argument("-d", "--total-batch-size", type=int, default=0, help="default: the reference's -d")
    args = p.parse_args(argv)
    # the rest of what run_one needs of throughput's options: one step, -r 0, on GPU 0
    args.recompute, args.master_weights = 0, 1
    args.steps, args.warmup, args.gpu, args.nproc, args.cap_mib = 1, 0, 0, 1, 0
    starts, fill = [], None
    with tempfile.TemporaryDirectory(prefix="startup_") as root:
        if not args.no_bytecode_fill:
            fill = fill_bytecode(args, root, extra)
        for model in args.models:
            for repeat in range(args.repeats):
                new_compile_caches(args, os.path.join(root, f"{model}_{repeat}"))  # per cold-then-warm pair
                for start in ("cold", *("warm" if k == 1 else f"warm{k}" for k in range(1, args.warm + 1))):
                    s = one_start(args, model, start, repeat, extra)
                    starts.append(s)
                    print(json.dumps(asdict(s)), flush=True)
    if args.out:
        meta = {"date": time.strftime("%Y-%m-%d"), "argv": argv, "extra": extra, "reference": REFERENCE}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "bytecode_fill": fill and asdict(fill), "starts": [asdict(s) for s in starts]},
                      f, indent=1)  # fmt: skip
    print(table(starts, args.keep_page_cache))
    return 0 if all(s.ok for s in starts) else 1


if __name__ == "__main__":
    sys.exit(main())
