"""Single-GPU throughput: our fast path and our plain-PyTorch path beside llm.c's figures.

For each model (default d12 at B=64 and d48 at B=16, T=1024, -r 0, as in the reference table of
../shared/BENCHMARK_TARGETS.md) and each path, one fresh ``gpt2train train`` process runs a few
steps on real text shards. Reported per run: ms/step (median of the steps after the warm-up),
tok/s, MFU by llm.c's formula, peak memory (the allocator's and nvidia-smi's), time to first step,
and the ratios to llm.c's tok/s and memory. A table is printed last; ``--out`` gets JSON.

    python bench/throughput.py -i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin" \\
        --out $OUT/throughput.json            # d12 and d48, fast and plain
    python bench/throughput.py -e d12 -b 32 -r 1 --paths fast -- --attention cudnn   # anything else after --

A run that fails (out of memory, say) is reported with its error line and the others go on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

# llm.c train_gpt2cu on one H200, real text shards, cuDNN attention, -r 0, 2026-12-02 (BENCHMARK_TARGETS.md)
REFERENCE = {
    "d12": {"B": 64, "total_batch": 524_288, "ms": 949.4, "tok_s": 552_200, "peak_mib": 29_549},
    "d48": {"B": 16, "total_batch": 65_536, "ms": 1277.2, "tok_s": 51_310, "peak_mib": 65_651},
}
CAPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "capped.py")
PATH_FLAGS = {"fast": [], "plain": ["--plain"]}


@dataclass
class RunResult:
    model: str
    path: str
    B: int
    T: int
    total_batch: int
    recompute: int
    master_weights: int
    command: str
    ok: bool = False
    error: str | None = None
    ms_per_step: float | None = None
    step_ms: list[float] = field(default_factory=list)
    tok_s: float | None = None
    mfu: float | None = None
    peak_alloc_mib: float | None = None
    peak_reserved_mib: float | None = None
    peak_smi_mib: float | None = None
    first_step_s: float | None = None
    first_step_parts: str | None = None  # the trainer's split of it: imports, setup, the first step
    val_loss: float | None = None
    wall_s: float | None = None
    ref_tok_s: float | None = None
    ref_peak_mib: float | None = None
    vs_ref_tok_s: float | None = None
    vs_ref_mem: float | None = None


class SmiPeak:
    """Polls nvidia-smi's memory.used for one GPU in the background; ``peak`` is the largest seen (MiB)."""

    def __init__(self, gpu: int, interval_ms: int = 100):
        self.peak: float | None = None
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", f"--id={gpu}", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                 f"-lms={interval_ms}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
        except FileNotFoundError:
            self.proc = None
            return
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                v = float(line.strip())
            except ValueError:
                continue
            self.peak = v if self.peak is None else max(self.peak, v)

    def stop(self) -> float | None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.thread.join(timeout=2)
        return self.peak


def parse_run(stdout: str, progress_path: str, warmup: int) -> dict:
    """Figures from a finished run's console output and progress.jsonl."""
    out: dict = {}
    if m := re.search(r"time to first step: ([\d.]+) s(?: \((.*)\))?", stdout):
        out["first_step_s"] = float(m.group(1))
        if m.group(2):
            out["first_step_parts"] = m.group(2)
    if m := re.search(r"peak GPU memory: (\d+) MiB allocated, (\d+) MiB reserved", stdout):
        out["peak_alloc_mib"], out["peak_reserved_mib"] = float(m.group(1)), float(m.group(2))
    records = []
    if os.path.exists(progress_path):
        with open(progress_path) as f:
            records = [json.loads(line) for line in f]
    steps = [r for r in records if r.get("kind") == "train" and "ms" in r]
    if vals := [r["val_loss"] for r in records if r.get("kind") == "val"]:
        out["val_loss"] = vals[-1]
    out["step_ms"] = [round(r["ms"], 2) for r in steps]
    timed = [r for r in steps if r["step"] >= warmup] or steps[-1:]
    if timed:
        out["ms_per_step"] = statistics.median(r["ms"] for r in timed)
        out["tok_s"] = statistics.median(r["tok_s"] for r in timed)
        mfus = [r["mfu"] for r in timed if r.get("mfu") is not None]
        out["mfu"] = statistics.median(mfus) if mfus else None
    return out


def last_error(stdout: str) -> str:
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("error", "torch.OutOfMemoryError", "RuntimeError", "ValueError")) or "Error" in ln:
            return ln.strip()[:300]
    return lines[-1][:300] if lines else "no output"


def launcher(cap_mib: int = 0, nproc: int = 1) -> list[str]:
    """The command that runs ``gpt2train ARGS``: in this Python, through torchrun for several processes, and
    through bench/capped.py when the allocator is capped."""
    if cap_mib and nproc > 1:
        raise SystemExit("--cap-mib runs one process: leave --nproc at 1")
    if cap_mib:
        return [sys.executable, CAPPED, "--mib", str(cap_mib), "--"]
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", "gpt2train"]  # fmt: skip
    return [sys.executable, "-m", "gpt2train"]


def tool_arguments(
    argv: list[str] | None, description: str, timeout: int = 900
) -> tuple[argparse.ArgumentParser, list[str], list[str]]:
    """A run tool's parser with the options every run tool has (-i, -j: the corpus shards in ``.carry/corpus``;
    --timeout per run, ``timeout`` seconds by default; --out; --keep-logs), its own arguments, and the train flags
    after ``--`` (passed on to every run)."""
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-i", "--train-data", default=".carry/corpus/corpus_train_*.bin")
    p.add_argument("-j", "--val-data", default=".carry/corpus/corpus_val_*.bin")
    p.add_argument("--timeout", type=int, default=timeout, help="seconds per run")
    p.add_argument("--out", help="write the runs as JSON here")
    p.add_argument("--keep-logs", help="directory for each run's console output")
    return p, argv, extra


def run_one(args, model: str, path: str, extra: list[str], log_name: str = "", prefix: list[str] | None = None
            ) -> RunResult:  # fmt: skip
    """One fresh ``gpt2train train`` run of ``args.steps`` steps; its figures, or its error line. ``prefix``: the
    command that runs ``gpt2train ARGS`` instead of launcher()'s."""
    ref = REFERENCE.get(model, {})
    B = args.batch_size or ref.get("B", 16)
    D = args.total_batch_size or ref.get("total_batch", B * args.seq_len)
    res = RunResult(model, path, B, args.seq_len, D, args.recompute, args.master_weights, "")
    with tempfile.TemporaryDirectory(prefix=f"tp_{model}_{path}_") as run_dir:
        nproc = args.nproc
        cmd = [*(prefix or launcher(args.cap_mib, nproc)), "train", "-i", args.train_data, "-j", args.val_data,
               "-o", run_dir, "-e", model, "-b", str(B), "-t", str(args.seq_len), "-d", str(D),
               "-x", str(args.steps), "-v", "0", "-m", "1", "-s", "0", "-r", str(args.recompute),
               "-w", str(args.master_weights), "-l", "6e-4", "--no-tensorboard",
               *PATH_FLAGS[path], *extra]  # fmt: skip
        res.command = " ".join(cmd[1:]).replace(run_dir, "RUN_DIR").replace(CAPPED, "bench/capped.py")
        print(f"== {model} {path}: {res.command}", flush=True)
        smi = SmiPeak(args.gpu)
        t0 = time.perf_counter()
        src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
        pythonpath = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
        gpus = ",".join(str(args.gpu + i) for i in range(nproc))
        env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES=gpus, PYTHONPATH=pythonpath)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            smi.stop()
            res.error = f"timed out after {args.timeout} s"
            return res
        res.wall_s = round(time.perf_counter() - t0, 1)
        res.peak_smi_mib = smi.stop()
        stdout = proc.stdout + proc.stderr
        if args.keep_logs:
            os.makedirs(args.keep_logs, exist_ok=True)
            with open(os.path.join(args.keep_logs, (log_name or f"{model}_{path}") + ".txt"), "w") as f:
                f.write(stdout)
        figures = parse_run(stdout, os.path.join(run_dir, "progress.jsonl"), args.warmup)
    for k, v in figures.items():
        setattr(res, k, v)
    res.ok = proc.returncode == 0 and res.tok_s is not None
    if not res.ok:
        res.error = last_error(stdout)
    if ref and res.tok_s and B == ref["B"] and D == ref["total_batch"] and args.seq_len == 1024:
        res.ref_tok_s, res.ref_peak_mib = ref["tok_s"], ref["peak_mib"]
        res.vs_ref_tok_s = round(res.tok_s / ref["tok_s"], 3)
        if res.peak_smi_mib:
            res.vs_ref_mem = round(res.peak_smi_mib / ref["peak_mib"], 3)
    return res


def table(results: list[RunResult]) -> str:
    head = ("model", "path", "B", "-r", "-w", "ms/step", "tok/s", "MFU", "alloc MiB", "smi MiB", "1st step s",
            "x llm.c tok/s", "x llm.c mem")  # fmt: skip
    rows = [head]
    for r in results:
        if not r.ok:
            rows.append(
                (r.model, r.path, str(r.B), str(r.recompute), str(r.master_weights), "failed: " + (r.error or ""))
            )
            continue

        def f(v, fmt):
            return "-" if v is None else format(v, fmt)

        rows.append((r.model, r.path, str(r.B), str(r.recompute), str(r.master_weights), f(r.ms_per_step, ".1f"),
                     f(r.tok_s, ",.0f"), f(r.mfu, ".1f"), f(r.peak_alloc_mib, ",.0f"), f(r.peak_smi_mib, ",.0f"),
                     f(r.first_step_s, ".1f"), f(r.vs_ref_tok_s, ".3f"), f(r.vs_ref_mem, ".3f")))  # fmt: skip
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p, argv, extra = tool_arguments(argv, __doc__.split("\n\n")[0])
    p.add_argument("-e", "--models", nargs="+", default=["d12", "d48"])
    p.add_argument("--paths", nargs="+", default=["fast", "plain"], choices=sorted(PATH_FLAGS))
    p.add_argument("-b", "--batch-size", type=int, default=0, help="micro-batch (default: the reference's B)")
    p.add_argument("-t", "--seq-len", type=int, default=1024)
    p.add_argument("-d", "--total-batch-size", type=int, default=0, help="default: the reference's -d")
    p.add_argument("-r", "--recompute", type=int, default=0)
    p.add_argument("-w", "--master-weights", type=int, default=1)
    p.add_argument("--steps", type=int, default=12, help="steps per run")
    p.add_argument("--warmup", type=int, default=3, help="steps left out of the median")
    p.add_argument("--gpu", type=int, default=0, help="the (first) GPU to run on")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs) per run, through torchrun")
    p.add_argument("--cap-mib", type=int, default=0, help="cap PyTorch's allocator (bench/capped.py); 0: no cap")
    args = p.parse_args(argv)
    results = []
    for model in args.models:
        for path in args.paths:
            r = run_one(args, model, path, extra)
            results.append(r)
            print(json.dumps({k: v for k, v in asdict(r).items() if k != "step_ms"}), flush=True)
    if args.out:
        meta = {"date": time.strftime("%Y-%m-%d"), "argv": argv, "extra": extra}
        try:
            import torch

            if torch.cuda.is_available():
                meta["device"] = torch.cuda.get_device_name(args.gpu)
            meta["torch"] = torch.__version__
        except ImportError:
            pass
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "reference": REFERENCE, "runs": [asdict(r) for r in results]}, f, indent=1)
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
