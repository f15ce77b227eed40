"""Is a GPU run bit-reproducible, and what does --deterministic 1 cost? One GPU, a few minutes.

For each mode (--deterministic 0 and 1) it trains the same short d12 run three times: twice without
interruption and once killed part-way (an injected exit after the checkpoint) then resumed with -y 1.
It compares every train loss and gradient norm, every val loss (progress.jsonl, full float precision)
and the final model file (SHA-256) bit for bit against the first run, and reports the median ms/step of
each mode. Writes determinism.json, determinism.txt (the table) and each run's logs to --out.

    python -m bench determinism --out $OUT/determinism \\
        -i .carry/corpus/corpus_train_000001.bin -j .carry/corpus/corpus_val_000000.bin

Exit status 1 if a --deterministic 1 run differs from the first one (0 otherwise: mode 0 may differ).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for determinism.json, determinism.txt and the logs")
    p.add_argument("-i", "--train-data", default=".carry/corpus/corpus_train_000001.bin")
    p.add_argument("-j", "--val-data", default=".carry/corpus/corpus_val_000000.bin")
    p.add_argument("-e", "--model", default="d12")
    p.add_argument("-b", "--batch-size", type=int, default=8)
    p.add_argument("-t", "--seq-len", type=int, default=1024)
    p.add_argument("-x", "--steps", type=int, default=20)
    p.add_argument("--kill-at", type=int, default=15, help="the interrupted run dies at this step")
    p.add_argument("--checkpoint-every", type=int, default=10, help="-n: the interrupted run resumes from here")
    p.add_argument("--modes", default="0,1", help="--deterministic values to try, comma-separated")
    p.add_argument("--device", default="auto")
    p.add_argument("--train-arg", action="append", default=[], help="extra `train` argument (repeatable)")
    p.add_argument("--timeout", type=float, default=240, help="seconds allowed for one training process")
    return p.parse_args(argv)


def _train(args, run_dir: Path, mode: str, extra: list[str], inject: str, log: Path, env: dict) -> int:
    cmd = [sys.executable, "-m", "gpt2train", "train", "-i", args.train_data, "-j", args.val_data,
           "-o", str(run_dir), "-e", args.model, "-b", str(args.batch_size), "-t", str(args.seq_len),
           "-x", str(args.steps), "-v", str(args.steps // 2), "-m", "2", "-s", "0", "-l", "6e-4", "-u", "5",
           "-n", str(args.checkpoint_every), "--device", args.device, "--deterministic", mode,
           "--no-tensorboard", *args.train_arg, *extra]  # fmt: skip
    run_env = dict(env, GPT2TRAIN_INJECT=inject)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + (f"   [GPT2TRAIN_INJECT={inject}]" if inject else "") + "\n")
        f.flush()
        try:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=run_env, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            f.write(f"timed out after {args.timeout} s\n")
            return 124


def _records(run_dir: Path) -> dict:
    """Exact numbers of a run: train (loss, norm) per step, val loss per step, ms per step, model hash."""
    train, val, ms = {}, {}, {}
    with open(run_dir / "progress.jsonl") as f:
        for rec in map(json.loads, f):
            if rec["kind"] == "train":  # a resumed run rewrites its steps: the last record counts
                train[rec["step"]] = (rec["loss"], rec["norm"])
                ms[rec["step"]] = rec["ms"]
            elif rec["kind"] == "val":
                val[rec["step"]] = rec["val_loss"]
    models = sorted(run_dir.glob("model_*.bin"))
    digest = hashlib.sha256(models[-1].read_bytes()).hexdigest() if models else None
    return {"train": train, "val": val, "ms": ms, "model_sha256": digest}


def _compare(ref: dict, other: dict) -> dict:
    """Bit-for-bit comparison of two runs' numbers: identical, first differing step, largest loss gap."""
    steps = sorted(set(ref["train"]) | set(other["train"]))
    differing = [s for s in steps if ref["train"].get(s) != other["train"].get(s)]
    gaps = [
        abs(ref["train"][s][0] - other["train"][s][0]) for s in differing if s in ref["train"] and s in other["train"]
    ]
    same = not differing and ref["val"] == other["val"] and ref["model_sha256"] == other["model_sha256"]
    return {
        "identical": same and len(steps) == len(ref["train"]),
        "train_steps_differing": len(differing),
        "first_differing_step": differing[0] if differing else None,
        "max_loss_gap": max(gaps) if gaps else 0.0,
        "val_identical": ref["val"] == other["val"],
        "model_identical": ref["model_sha256"] == other["model_sha256"] and ref["model_sha256"] is not None,
    }


def _median_ms(rec: dict, skip: int = 3) -> float | None:
    """Median step time, leaving out the first steps (compilation, allocation)."""
    times = [ms for step, ms in sorted(rec["ms"].items()) if step >= skip]
    return statistics.median(times) if times else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpt2train-determinism-"))  # checkpoints stay out of --out
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(_REPO / "src")]))
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(work / "inductor"))  # later runs reuse the compiled kernels
    t_start = time.perf_counter()
    results, failed = {}, False
    try:
        for mode in args.modes.split(","):
            runs = {}
            for name in ("run1", "run2", "killed_resumed"):
                run_dir, log = work / f"det{mode}_{name}", out / f"det{mode}_{name}.txt"
                log.unlink(missing_ok=True)
                t0 = time.perf_counter()
                if name == "killed_resumed":
                    code = _train(args, run_dir, mode, ["-y", "1"], f"exit@{args.kill_at}", log, env)
                    if code != 13:  # the injected exit's code: anything else is a real failure
                        raise SystemExit(f"--deterministic {mode}: the run to be killed ended with {code}; see {log}")
                    code = _train(args, run_dir, mode, ["-y", "1"], "", log, env)
                else:
                    code = _train(args, run_dir, mode, [], "", log, env)
                if code != 0:
                    raise SystemExit(f"--deterministic {mode} {name}: exit code {code}; see {log}")
                runs[name] = _records(run_dir)
                runs[name]["wall_s"] = round(time.perf_counter() - t0, 1)
                for keep in ("main.log", "progress.jsonl", "config.json"):
                    dest = out / f"det{mode}_{name}_{keep}"
                    shutil.copyfile(run_dir / keep, dest)
                shutil.rmtree(run_dir)  # GBs of checkpoints
            ref = runs["run1"]
            results[mode] = {
                "ms_per_step": _median_ms(ref),
                "ms_per_step_run2": _median_ms(runs["run2"]),
                "run2_vs_run1": _compare(ref, runs["run2"]),
                "resumed_vs_run1": _compare(ref, runs["killed_resumed"]),
                "wall_s": {k: v["wall_s"] for k, v in runs.items()},
                "final_loss": ref["train"][max(ref["train"])][0],
            }
            if mode == "1":
                failed |= not (results[mode]["run2_vs_run1"]["identical"]
                               and results[mode]["resumed_vs_run1"]["identical"])  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"args": vars(args), "results": results, "seconds": round(time.perf_counter() - t_start, 1),
              "device": _device_name(), "torch": _torch_version()}  # fmt: skip
    if "0" in results and "1" in results and results["0"]["ms_per_step"]:
        report["deterministic_cost"] = round(results["1"]["ms_per_step"] / results["0"]["ms_per_step"] - 1, 4)
    (out / "determinism.json").write_text(json.dumps(report, indent=2))
    table = _table(report)
    (out / "determinism.txt").write_text(table + "\n")
    print(table)
    return 1 if failed else 0


def _table(report: dict) -> str:
    rows = ["| --deterministic | ms/step (median) | 2nd run identical | killed+resumed identical | largest loss gap |",
            "|---|---|---|---|---|"]  # fmt: skip
    for mode, r in report["results"].items():
        gap = max(r["run2_vs_run1"]["max_loss_gap"], r["resumed_vs_run1"]["max_loss_gap"])
        ms = f"{r['ms_per_step']:.1f}" if r["ms_per_step"] is not None else "n/a"
        rows.append(f"| {mode} | {ms} | {_yes(r['run2_vs_run1'])} | {_yes(r['resumed_vs_run1'])} | {gap:.3g} |")
    if "deterministic_cost" in report:
        rows.append(f"\n--deterministic 1 costs {report['deterministic_cost'] * 100:+.1f}% time per step "
                    f"({report['device']}, torch {report['torch']}, {report['seconds']:.0f} s in all)")  # fmt: skip
    return "\n".join(rows)


def _yes(cmp: dict) -> str:
    if cmp["identical"]:
        return "yes (losses, norms, val, model file)"
    return f"no: {cmp['train_steps_differing']} steps differ from step {cmp['first_differing_step']}"


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    sys.exit(main())
