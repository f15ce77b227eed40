"""Peak memory and tok/s by micro-batch B, -r and -w: the rows of BENCHMARKS.md's d48 memory table.

Each group "R W B1 B2 ..." runs B1, B2, ... with -r R -w W on the fast path (today's defaults otherwise),
-d 2*B*T (two micro-steps), 4 steps, tok/s the median of steps 2-4, and stops at its first out-of-memory B,
since a larger one would not fit either. ``--cap-mib 80300`` caps PyTorch's allocator (bench/capped.py) so a
larger card runs out of memory where an 80 GB H100 would. Train flags after ``--`` go to every run.

    python -m bench memory-table --cap-mib 80300 --out $OUT/memory.json "0 1 8 16 24" "2 1 16 32 40" \\
        -- --recompute-whole 7
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from bench import throughput


def parse_group(text: str) -> tuple[int, int, list[int]]:
    """'R W B1 B2 ...' -> (R, W, [B1, B2, ...])."""
    try:
        r, w, *sizes = (int(v) for v in text.split())
    except ValueError:
        sizes = []
    if not sizes:
        raise argparse.ArgumentTypeError(f"group {text!r}: give -r, -w, then one or more B, e.g. '2 1 16 32'")
    return r, w, sizes


def out_of_memory(result: throughput.RunResult) -> bool:
    error = result.error or ""
    return "out of GPU memory" in error or "OutOfMemoryError" in error


def row(r: throughput.RunResult, flags: str) -> str:
    if r.ok:
        figures = f"{r.tok_s:,.0f} | {r.peak_alloc_mib or 0:,.0f} / {r.peak_reserved_mib or 0:,.0f} MiB"
    else:
        figures = "out of memory | " if out_of_memory(r) else f"failed: {r.error} | "
    return f"| {r.model} | {r.B} | {r.recompute} | {r.master_weights} | {flags} | {figures} |"


def main(argv: list[str] | None = None) -> int:
    p, argv, extra = throughput.tool_arguments(argv, __doc__.split("\n\n")[0], timeout=240)
    p.add_argument("groups", nargs="+", type=parse_group, help="'R W B1 B2 ...': -r, -w, then the micro-batches")
    p.add_argument("-e", "--model", default="d48")
    p.add_argument("-t", "--seq-len", type=int, default=1024)
    p.add_argument("--steps", type=int, default=4, help="steps per run (tok/s: the median after the first)")
    p.add_argument("--cap-mib", type=int, default=0, help="cap PyTorch's allocator at this many MiB; 0: no cap")
    p.add_argument("--gpu", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=0, help="start no run after this many seconds; 0: no limit")
    args = p.parse_args(argv)
    flags = " ".join(extra)
    start, results, rows = time.monotonic(), [], []
    for r, w, sizes in args.groups:
        for b in sizes:
            if args.budget_s and time.monotonic() - start > args.budget_s:
                rows.append(f"| {args.model} | {b} | {r} | {w} | {flags} | not run (--budget-s) | |")
                continue
            run_args = argparse.Namespace(
                train_data=args.train_data, val_data=args.val_data, batch_size=b, seq_len=args.seq_len,
                total_batch_size=2 * b * args.seq_len, recompute=r, master_weights=w, steps=args.steps, warmup=1,
                gpu=args.gpu, timeout=args.timeout, keep_logs=args.keep_logs, nproc=1, cap_mib=args.cap_mib,
            )  # fmt: skip
            result = throughput.run_one(run_args, args.model, "fast", extra, f"{args.model}_b{b}_r{r}_w{w}")
            results.append(result)
            rows.append(row(result, flags))
            print(rows[-1], flush=True)
            if out_of_memory(result):
                break
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "cap_mib": args.cap_mib, "flags": extra,
                       "runs": [asdict(r) for r in results]}, f, indent=1)  # fmt: skip
    print("| model | B | -r | -w | flags | tok/s | peak allocated / reserved |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0 if all(r.ok or out_of_memory(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
