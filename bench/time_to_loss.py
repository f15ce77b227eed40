"""Time to loss: how many steps and seconds the modern recipe, and each of its levers, need to reach
the val loss that the classic (llm.c) recipe reaches in a fixed number of steps.

    python bench/time_to_loss.py --train ".carry/corpus/corpus_train_*.bin" --val ".carry/corpus/corpus_val_*.bin" \
        -o $OUT/time_to_loss.json

1. classic: GPT-2 124M (d12), B=32, T=1024, 131,072 tokens/step, 100 steps, llm.c's recipe scaled to the
   run (lr 6e-4, warmup 10, cosine to 0, weight decay 0.1); its final val loss is the target.
2. modern (``--recipe modern`` with a WSD schedule), then classic + each lever alone, then (``--minus``)
   modern minus each lever; each runs at most as many steps as classic and stops once it reaches the target.

Every run is ``python -m gpt2train train`` in a subprocess (so every run starts clean) and evaluates the
val loss every ``--val-every`` steps on the same slice (the first ``--val-batches`` batches of the val
split). Seconds to target are the sum of the trainer's measured step times up to the step that reached
it, with step 0 (compilation) counted at the median step time; evaluation is not counted. Variants are
run in order until ``--budget-s`` is spent; the rest are reported as skipped. Writes JSON and prints a table.
``--quick`` is a CPU smoke test with a tiny model (tests/test_time_to_loss.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# the classic recipe: llm.c's GPT-2 124M hyperparameters with the warmup scaled to a 100-step run
CLASSIC = ["-l", "6e-4", "-u", "10", "-q", "0.0", "-c", "0.1", "-k", "cosine"]
# the modern recipe's schedule: no warmup, constant, then linear decay to 0 over the last 40%
MODERN_SCHEDULE = ["-k", "wsd", "-u", "0", "-q", "0.0", "--wsd-decay-frac", "0.4"]
MODERN = ["--recipe", "modern", "-l", "6e-4", "-c", "0.0", *MODERN_SCHEDULE]
# each lever as a flag that turns it on (over classic) and one that turns it off (under modern)
LEVERS = {
    "muon": (["--optimizer", "muon"], ["--optimizer", "adamw"]),
    "rotary": (["--pos", "rotary"], ["--pos", "learned"]),
    "qk_norm": (["--qk-norm", "1"], ["--qk-norm", "0"]),
    "relu2": (["--mlp", "relu2"], ["--mlp", "gelu"]),
    "rmsnorm": (["--norm", "rmsnorm"], ["--norm", "layernorm"]),
    "zero_init": (["--zero-init-proj", "1"], ["--zero-init-proj", "0"]),
    "untied": (["--untied-head", "1"], ["--untied-head", "0"]),
    "softcap": (["--logit-softcap", "15"], ["--logit-softcap", "0"]),
    "wsd": (MODERN_SCHEDULE, ["-k", "cosine", "-u", "10", "-q", "0.0"]),
}


# speed levers that change numerics, on the modern recipe: the classic one takes each where it is its default
SPEED = {"fp8": ["--fp8", "1"]}


def variants(minus: bool, only: list[str] | None) -> list[tuple[str, list[str]]]:
    """(name, train flags) in the order they run: classic first (it sets the target)."""
    out = [("classic", CLASSIC), ("modern", MODERN)]
    out += [(f"modern+{k}", MODERN + flags) for k, flags in SPEED.items()]
    out += [(f"classic+{k}", CLASSIC + on) for k, (on, _) in LEVERS.items()]
    if minus:
        out += [(f"modern-{k}", MODERN + off) for k, (_, off) in LEVERS.items()]
    if only:
        unknown = set(only) - {n for n, _ in out}
        if unknown:
            raise SystemExit(f"--variants: unknown {', '.join(sorted(unknown))}; known: {', '.join(n for n, _ in out)}")
        out = [v for v in out if v[0] in only or v[0] == "classic"]
    return out


def _records(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line being written
                break
    return rows


def _child_env() -> dict:
    """This checkout's src/ first on the children's path, so they run the gpt2train beside this script."""
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")}


def run_variant(name: str, flags: list[str], base: list[str], steps: int, target: float | None, workdir: str,
                timeout: float) -> dict:  # fmt: skip
    """Train one variant (stopping once its val loss <= target) and summarise its progress.jsonl."""
    out_dir = os.path.join(workdir, name.replace("+", "_plus_"))
    cmd = [sys.executable, "-m", "gpt2train", "train", *base, "-x", str(steps), "-o", out_dir, *flags]
    log_path = os.path.join(workdir, f"{os.path.basename(out_dir)}.log")
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_child_env())
        stopped_early = False
        while proc.poll() is None:
            time.sleep(0.25)
            vals = [r for r in _records(os.path.join(out_dir, "progress.jsonl")) if r.get("kind") == "val"]
            if target is not None and any(r["step"] > 0 and r["val_loss"] <= target for r in vals):
                proc.send_signal(signal.SIGKILL)  # reached: the rest of the run is not needed
                stopped_early = True
            elif time.perf_counter() - t0 > timeout:
                proc.send_signal(signal.SIGKILL)
        proc.wait()
    wall = time.perf_counter() - t0
    rows = _records(os.path.join(out_dir, "progress.jsonl"))
    curve = [(r["step"], r["val_loss"]) for r in rows if r.get("kind") == "val"]
    ms = {r["step"]: r["ms"] for r in rows if r.get("kind") == "train"}
    result = {"name": name, "flags": flags, "wall_s": round(wall, 1), "val_curve": curve,
              "median_step_ms": round(statistics.median(ms.values()), 2) if ms else None}  # fmt: skip
    if proc.returncode != 0 and not stopped_early or not curve:
        with open(log_path) as f:
            tail = f.read()[-2000:]
        return {**result, "status": "failed", "log_tail": tail, "steps_to_target": None, "seconds_to_target": None}
    result["final_val_loss"] = curve[-1][1]
    goal = target if target is not None else curve[-1][1]
    reached = next((s for s, v in curve if s > 0 and v <= goal), None)
    result["steps_to_target"] = reached
    result["status"] = "ok" if reached is not None else "not reached"
    if reached is not None:
        med = statistics.median(ms.values())
        result["seconds_to_target"] = round(sum(med if s == 0 else ms.get(s, med) for s in range(reached)) / 1000, 2)
    else:
        result["seconds_to_target"] = None
    return result


def table(res: dict) -> str:
    classic = res["variants"][0]
    lines = [f"target val loss {res['target_val_loss']:.4f} (classic after {res['steps']} steps)",
             f"{'variant':<20} {'status':<12} {'steps':>6} {'tokens':>6} {'seconds':>8} {'time':>6} {'ms/step':>8} "
             f"{'final val':>9}"]  # fmt: skip
    for v in res["variants"]:
        steps, secs = v.get("steps_to_target"), v.get("seconds_to_target")
        tok = f"{steps / classic['steps_to_target']:.2f}x" if steps and classic.get("steps_to_target") else "-"
        tim = f"{secs / classic['seconds_to_target']:.2f}x" if secs and classic.get("seconds_to_target") else "-"
        final = v.get("final_val_loss")
        lines.append(f"{v['name']:<20} {v['status']:<12} {steps or '-':>6} {tok:>6} {secs or '-':>8} {tim:>6} "
                     f"{v.get('median_step_ms') or '-':>8} {'-' if final is None else round(final, 4):>9}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default=".carry/corpus/corpus_train_000001.bin", help="train shards (glob)")
    p.add_argument("--val", default=".carry/corpus/corpus_val_000000.bin", help="val shards (glob)")
    p.add_argument("-o", "--output", default="time_to_loss.json", help="JSON result file")
    p.add_argument("--steps", type=int, default=100, help="classic steps (sets the target)")
    p.add_argument("--val-every", type=int, default=5, help="val loss every N steps")
    p.add_argument("--val-batches", type=int, default=4, help="val batches of B*T tokens (the same slice for all)")
    p.add_argument("-b", "--batch-size", type=int, default=32)
    p.add_argument("-t", "--seq-len", type=int, default=1024)
    p.add_argument("-d", "--total-batch-size", type=int, default=131072)
    p.add_argument("-e", "--model", default="d12")
    p.add_argument("--compile", type=int, default=-1, help="torch.compile for every run (-1: the trainer's default)")
    p.add_argument("--variants", default=None, help="comma-separated subset (classic always runs)")
    p.add_argument("--minus", action="store_true", help="also run modern minus each lever")
    p.add_argument(
        "--target-from",
        default=None,
        help="take classic (target and seconds) from this earlier result JSON instead of rerunning it",
    )
    p.add_argument("--budget-s", type=float, default=450, help="stop starting variants after this many seconds")
    p.add_argument("--run-timeout-s", type=float, default=240, help="kill one run after this many seconds")
    p.add_argument("--workdir", default=None, help="where run dirs go (default: a temp dir, deleted)")
    p.add_argument("--quick", action="store_true", help="CPU smoke test: tiny model, few steps")
    args = p.parse_args(argv)

    base = ["-i", args.train, "-j", args.val, "-e", args.model, "-b", str(args.batch_size), "-t", str(args.seq_len),
            "-d", str(args.total_batch_size), "-v", str(args.val_every), "-m", str(args.val_batches), "-s", "0",
            "--no-tensorboard", "--compile", str(args.compile)]  # fmt: skip
    if args.quick:
        base = ["-i", args.train, "-j", args.val, "--n-layer", "2", "--n-head", "4", "--n-embd", "64",
                "--max-seq-len", "64", "-b", "4", "-t", "32", "-d", "256", "-v", str(args.val_every),
                "-m", "2", "-s", "0", "--no-tensorboard", "--device", "cpu", "--compile", "0"]  # fmt: skip
    todo = variants(args.minus, args.variants.split(",") if args.variants else None)
    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="time_to_loss_")
    workdir = args.workdir or tmp.name
    os.makedirs(workdir, exist_ok=True)
    t_start = time.perf_counter()
    import torch

    res = {"steps": args.steps, "target_val_loss": None, "base_flags": base, "variants": [],
           "torch": torch.__version__, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    if args.target_from:  # a second call on the same machine continues the first one's ablation
        with open(args.target_from) as f:
            classic = json.load(f)["variants"][0]
        res["variants"].append({**classic, "from": args.target_from})
        res["target_val_loss"] = classic["final_val_loss"]
        todo = [(n, f) for n, f in todo if n != "classic"]
    try:
        for name, flags in todo:
            if name != "classic" and time.perf_counter() - t_start > args.budget_s:
                res["variants"].append({"name": name, "flags": flags, "status": "skipped", "steps_to_target": None,
                                        "seconds_to_target": None})  # fmt: skip
                continue
            v = run_variant(name, flags, base, args.steps, res["target_val_loss"], workdir, args.run_timeout_s)
            res["variants"].append(v)
            if name == "classic":
                if v["status"] != "ok":
                    print(f"classic run failed:\n{v.get('log_tail', '')}", file=sys.stderr)
                    return 1
                res["target_val_loss"] = v["final_val_loss"]
            print(f"[{time.perf_counter() - t_start:6.0f} s] {name}: {v['status']}, steps {v['steps_to_target']}, "
                  f"seconds {v['seconds_to_target']}", flush=True)  # fmt: skip
    finally:
        if tmp is not None:
            tmp.cleanup()
    res["total_s"] = round(time.perf_counter() - t_start, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(res, f, indent=1)
    print(table(res))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
