"""Scaling on the GPUs of one host: the same run on 1, 2, 4... GPUs (torchrun), with speed-up and efficiency
against the 1-GPU run. Strong scaling keeps -d (d12's 524,288 tokens split over the GPUs); ``--weak`` keeps
each GPU's share (-d times the GPUs, as d48's 65,536 per GPU). Train flags after ``--`` go to every run.

    python -m bench scaling -e d12 --gpus 1 2 4 -- -z 1
    python -m bench scaling -e d48 --gpus 1 2 4 --weak -- -z 1 --grad-reduce-dtype bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from bench import throughput


def table(results: list[throughput.RunResult], gpus: list[int]) -> str:
    """Markdown rows: speed-up is tok/s over the first run's, efficiency the speed-up over the GPU ratio."""
    rows = ["| model | B | -d | GPUs | ms/step | tok/s | speed-up | efficiency | peak allocated per GPU |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    base = results[0] if results and results[0].ok else None
    for r, n in zip(results, gpus):
        if not r.ok:
            rows.append(f"| {r.model} | {r.B} | {r.total_batch} | {n} | failed: {r.error} | | | | |")
            continue
        speedup = r.tok_s / base.tok_s if base else None
        eff = speedup / (n / gpus[0]) if speedup else None
        cells = [f"{r.ms_per_step:.1f}", f"{r.tok_s:,.0f}", f"{speedup:.2f}" if speedup else "-",
                 f"{eff:.3f}" if eff else "-", f"{r.peak_alloc_mib:,.0f} MiB" if r.peak_alloc_mib else "-"]  # fmt: skip
        rows.append(f"| {r.model} | {r.B} | {r.total_batch} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p, argv, extra = throughput.tool_arguments(argv, __doc__.split("\n\n")[0])
    p.add_argument("-e", "--model", default="d12")
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4], help="GPU counts, the first one the baseline")
    p.add_argument("-b", "--batch-size", type=int, default=0, help="micro-batch (default: the reference's B)")
    p.add_argument("-t", "--seq-len", type=int, default=1024)
    p.add_argument("-d", "--total-batch-size", type=int, default=0, help="tokens per step on the first GPU count")
    p.add_argument("--weak", action="store_true", help="-d grows with the GPUs (each keeps its share)")
    p.add_argument("--steps", type=int, default=8, help="steps per run")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the median")
    args = p.parse_args(argv)
    ref = throughput.REFERENCE.get(args.model, {})
    B = args.batch_size or ref.get("B", 16)
    D = args.total_batch_size or ref.get("total_batch", B * args.seq_len)
    results = []
    for n in args.gpus:
        run_args = argparse.Namespace(
            train_data=args.train_data, val_data=args.val_data, batch_size=B, seq_len=args.seq_len,
            total_batch_size=D * n // args.gpus[0] if args.weak else D, recompute=0, master_weights=1,
            steps=args.steps, warmup=args.warmup, gpu=0, timeout=args.timeout, keep_logs=args.keep_logs,
            nproc=n, cap_mib=0,
        )  # fmt: skip
        results.append(throughput.run_one(run_args, args.model, "fast", extra, f"{args.model}_{n}gpu"))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "gpus": args.gpus, "weak": args.weak, "flags": extra,
                       "runs": [asdict(r) for r in results]}, f, indent=1)  # fmt: skip
    print(table(results, args.gpus))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
