"""The loss check for a speed lever: the 200-step d12 run of ../shared/BENCHMARK_TARGETS.md on the corpus shards,
run N times; prints each run's val loss at the last step and their mean. A lever that changes numerics may raise
the mean by at most 0.01 over the bf16 fast path's (run both in one sitting). Train flags after ``--`` are the
lever (they follow, so override, the check's own).

    python -m bench loss-check --runs 2                  # the fast path as it is by default
    python -m bench loss-check --runs 2 -- --fp8 2       # a lever
    python -m bench loss-check --runs 2 --baseline -- --fp8 2   # the bf16 fast path first, then the lever, the verdict
    python -m bench loss-check --runs 2 --baseline-from $OUT/fp8.json -- --fp8 1   # the same sitting's bf16 runs again
    python -m bench loss-check --runs 2 --baseline -- --fp8 -1 --fp8-classifier -1   # the default path's check
    python -m bench loss-check --recipe modern --runs 2 --baseline -- --fp8 1   # a lever on the modern recipe
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict

from bench import throughput
from bench.time_to_loss import MODERN

# -e d12 -b 32 -t 1024 -d 131072 -x 200 -v 25 -m 20 -l 0.0006 -u 50 -q 0.0 -c 0.1 -k cosine, less what run_one sets
CHECK = {"model": "d12", "B": 32, "T": 1024, "total_batch": 131_072, "steps": 200}
CHECK_FLAGS = ["-v", "25", "-m", "20", "-l", "0.0006", "-u", "50", "-q", "0.0", "-c", "0.1", "-k", "cosine"]
MAX_RISE = 0.01  # how far a lever's mean may rise over the bf16 fast path's
# --recipe modern: both paths train the modern recipe on its own schedule (time-to-loss's), the check's length and batch
RECIPE_FLAGS = {"classic": [], "modern": MODERN}
# the bf16 fast path, the baseline: the fast path with every FP8 setting off (at d12 the output layer's is on by default)
BF16_FLAGS = ["--fp8", "0", "--fp8-classifier", "0"]


def main(argv: list[str] | None = None) -> int:
    p, argv, extra = throughput.tool_arguments(argv, __doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2, help="runs to average")
    p.add_argument("--plain", action="store_true", help="the plain PyTorch path (--plain) instead of the fast path")
    p.add_argument("-r", "--recompute", type=int, default=1, help="-r of the runs (the trainer's default: 1)")
    p.add_argument("--gpu", type=int, default=0)
    p.add_argument("--recipe", choices=tuple(RECIPE_FLAGS), default="classic",
                   help="the recipe both the lever and the baseline train (modern: its schedule too)")  # fmt: skip
    p.add_argument("--baseline", action="store_true",
                   help="run the bf16 fast path (--fp8 0 --fp8-classifier 0) --runs times first, in the same "
                   f"sitting, and say whether the lever holds the check (its mean at most +{MAX_RISE} over that "
                   "path's)")  # fmt: skip
    p.add_argument("--baseline-from", metavar="JSON",
                   help="as --baseline, with the bf16 fast path's runs read from an earlier --out of this sitting "
                   "(one with --baseline, or of that path alone) instead of run again")  # fmt: skip
    # for a CPU smoke test: a shorter run of another shape (the check itself is the defaults)
    p.add_argument("--steps", type=int, default=CHECK["steps"], help=argparse.SUPPRESS)
    p.add_argument("-b", "--batch-size", type=int, default=CHECK["B"], help=argparse.SUPPRESS)
    p.add_argument("-t", "--seq-len", type=int, default=CHECK["T"], help=argparse.SUPPRESS)
    p.add_argument("-d", "--total-batch-size", type=int, default=CHECK["total_batch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    path = "plain" if args.plain else "fast"
    run_args = argparse.Namespace(
        train_data=args.train_data, val_data=args.val_data, batch_size=args.batch_size, seq_len=args.seq_len,
        total_batch_size=args.total_batch_size, recompute=args.recompute, master_weights=1, steps=args.steps,
        warmup=3, gpu=args.gpu, timeout=args.timeout, keep_logs=args.keep_logs, nproc=1, cap_mib=0,
    )  # fmt: skip
    if (args.baseline or args.baseline_from) and (args.plain or not extra):
        p.error("--baseline compares a lever (train flags after --) with the bf16 fast path")
    if args.baseline and args.baseline_from:
        p.error("--baseline runs the fast path, --baseline-from reads its runs: give one")
    recipe = RECIPE_FLAGS[args.recipe]
    if args.baseline_from:
        baseline = _baseline_runs(args.baseline_from, args.recipe, p)
    else:
        baseline = _runs(run_args, "fast", [*recipe, *BF16_FLAGS], args.runs, "baseline") if args.baseline else None
    results = _runs(run_args, path, [*recipe, *extra], args.runs, "loss_check")
    base = _report("fast", BF16_FLAGS, baseline) if baseline is not None else None  # in the order they ran
    mean = _report(path, extra, results)
    verdict = None
    if mean is not None and base is not None:
        rise = mean - base
        verdict = "holds" if rise <= MAX_RISE else "fails"
        print(f"{' '.join(extra)}: {rise:+.4f} over the bf16 fast path's mean in this sitting: {verdict} "
              f"(at most +{MAX_RISE})")  # fmt: skip
    if args.out:
        data = {"date": time.strftime("%Y-%m-%d"), "path": path, "recipe": args.recipe, "flags": extra,
                "mean_val_loss": mean,
                "runs": [asdict(r) for r in results]}  # fmt: skip
        if baseline is not None:
            data.update(baseline_mean_val_loss=base, baseline_runs=[asdict(r) for r in baseline],
                        verdict=verdict, baseline_from=args.baseline_from)  # fmt: skip
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1)
    complete = mean is not None and (baseline is None or base is not None)
    return 0 if complete else 1


def _baseline_runs(path: str, recipe: str, p: argparse.ArgumentParser) -> list:
    """The bf16 fast path's runs of ``recipe`` in an earlier loss-check's JSON: its baseline, or its own runs if it
    checked that path alone (with BF16_FLAGS)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        p.error(f"--baseline-from {path}: cannot read it ({e}); give the --out of an earlier loss-check")
    if data.get("recipe", "classic") != recipe:
        p.error(f"--baseline-from {path}: its runs trained the {data.get('recipe')} recipe; give --recipe "
                f"{data.get('recipe')} or a check of the {recipe} one")  # fmt: skip
    if "baseline_runs" in data:
        runs = data["baseline_runs"]
    elif data.get("path") == "fast" and data.get("flags") == BF16_FLAGS:
        runs = data.get("runs", [])
    else:
        p.error(f"--baseline-from {path}: it holds no bf16 fast-path runs (a lever's check without --baseline, or "
                "the default path's)")  # fmt: skip
    return [throughput.RunResult(**r) for r in runs]


def _runs(run_args: argparse.Namespace, path: str, extra: list[str], n: int, name: str) -> list:
    return [throughput.run_one(run_args, CHECK["model"], path, [*CHECK_FLAGS, *extra], f"{name}_{k}") for k in range(n)]


def _mean(results: list) -> float | None:
    """The runs' mean val loss; None unless every run finished with one."""
    losses = [r.val_loss for r in results if r.ok and r.val_loss is not None]
    return statistics.mean(losses) if losses and len(losses) == len(results) else None


def _report(path: str, extra: list[str], results: list) -> float | None:
    """Each run's line and the mean's; returns the mean."""
    for k, r in enumerate(results):
        print(
            f"run {k}: " + (f"val loss {r.val_loss:.4f}, {r.ms_per_step:.1f} ms/step" if r.ok else f"failed: {r.error}")
        )
    mean = _mean(results)
    print(f"{path} {' '.join(extra)}".strip() + ": " + (f"mean val loss {mean:.4f}" if mean else "incomplete"))
    return mean


if __name__ == "__main__":
    sys.exit(main())
