"""Scaling table from bench/scaling.sh runs: median ms/step and tok/s of the last 3 steps, peak memory,
speed-up and efficiency against the 1-GPU run of the same series.

Usage: python bench/scaling_summary.py OUT_DIR SERIES[:BASE_SERIES]... (a series is a run-name prefix:
zero_fp32 reads OUT_DIR/zero_fp32_{1,2,4,8}gpu/stdout.txt; the 1-GPU baseline is BASE_SERIES's, by default
the series' own). Prints a markdown table.
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

STEP = re.compile(r"^step +\d+/\d+ .*?\| ([\d.]+) ms \|.*?\| (\d+) tok/s")
PEAK = re.compile(r"^peak GPU memory: (\d+) MiB allocated")


def read_run(path: Path, last: int = 3) -> dict | None:
    """Median ms and tok/s over the last ``last`` step lines, and the peak allocated MiB, of one stdout.txt."""
    if not path.exists():
        return None
    steps, peak = [], None
    for line in path.read_text(errors="replace").splitlines():
        if m := STEP.match(line):
            steps.append((float(m.group(1)), int(m.group(2))))
        elif m := PEAK.match(line):
            peak = int(m.group(1))
    if not steps:
        return None
    tail = steps[-last:]
    return {"ms": statistics.median(s[0] for s in tail), "tok_s": statistics.median(s[1] for s in tail), "peak": peak}


def main(argv: list[str]) -> int:
    out, series = Path(argv[0]), argv[1:]
    print("| series | GPUs | ms/step | tok/s | speed-up | efficiency | peak MiB allocated |")
    print("|---|---|---|---|---|---|---|")
    for spec in series:
        name, _, base_name = spec.partition(":")
        first = read_run(out / f"{base_name or name}_1gpu" / "stdout.txt")
        base = first["tok_s"] if first else None
        for n in (1, 2, 4, 8):
            run = read_run(out / f"{name}_{n}gpu" / "stdout.txt")
            if run is None:
                continue
            speed = run["tok_s"] / base if base else float("nan")
            print(f"| {name} | {n} | {run['ms']:.0f} | {run['tok_s']:,.0f} | {speed:.2f} | {speed / n:.3f} | "
                  f"{run['peak'] if run['peak'] is not None else '?'} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
