"""Where one training step's GPU time goes: a kernel profile of the real trainer's step.

Builds the Run (train/build.py) from ``gpt2train train`` flags, runs a few warm-up steps, then profiles
``--steps`` steps with torch.profiler. Writes, under ``--out``: ``profile.txt`` (GPU time by
category: matmuls, attention, compiled fusions, classifier, optimizer, copies, other; the top
kernels; GPU busy time against the step's wall time; the idle between kernels by gap length and by the host op
running then, and the longest gaps) and ``profile.json``.

    python bench/profile_step.py --out $OUT/prof_d12 -- -i ".carry/corpus/corpus_train_*.bin" \\
        -j ".carry/corpus/corpus_val_*.bin" -e d12 -b 64 -t 1024 -d 524288 -r 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

import torch

WINDOW = "gpt2train.profiled_steps"  # the record_function range around the profiled steps
# substrings of kernel names -> category, first match wins
CATEGORIES = [
    ("attention", ("flash", "fmha", "cudnn", "attn", "sdpa")),
    ("classifier (Triton CE)", ("ce_grad_kernel",)),
    ("optimizer", ("adam", "multi_tensor", "foreach", "stochastic")),
    ("matmul", ("gemm", "xmma", "cutlass", "nvjet", "sm90_", "wgmma", "cublas")),
    ("compiled fusion", ("triton_",)),
    ("copy / cast", ("copy", "memcpy", "memset", "fill", "cast")),
    ("reduction", ("reduce", "norm")),
    ("embedding", ("embedding", "index", "scatter", "gather")),
]


def category(name: str) -> str:
    low = name.lower()
    for cat, keys in CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


def split_events(events, steps: int) -> tuple[dict[str, list[float]], list, list]:
    """Profiler events -> (GPU kernels by name: [ms per step, calls], kernel intervals sorted by start,
    host ops), times in us. Ranges the profiler mirrors onto the GPU timeline (our window, Optimizer.step,
    any user annotation) are not kernels: counted, the window alone would make the GPU look busy all step."""
    by_kernel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    intervals, host_ops = [], []
    for evt in events:
        if evt.device_type != torch.autograd.DeviceType.CUDA:
            host_ops.append((evt.time_range.start, evt.time_range.end, evt.name))
            continue
        if getattr(evt, "is_user_annotation", False) or evt.name == WINDOW or evt.name.startswith("Optimizer."):
            continue
        by_kernel[evt.name][0] += (evt.time_range.end - evt.time_range.start) / 1000 / steps
        by_kernel[evt.name][1] += 1
        intervals.append((evt.time_range.start, evt.time_range.end, evt.name))
    intervals.sort()
    return by_kernel, intervals, host_ops


def busy_time(intervals: list[tuple[float, float, str]]) -> float:
    """The length of the union of the (start-sorted) kernel intervals: streams may overlap."""
    busy, cur_s, cur_e = 0.0, None, None
    for s, e, _ in intervals:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                busy += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        busy += cur_e - cur_s
    return busy


def gaps_between(kernels: list[tuple[float, float, str]]) -> list[tuple[float, float, str, str]]:
    """The stretches with no kernel running between the first kernel and the last (kernels sorted by start,
    times in us): (length, start, the kernel before, the kernel after)."""
    gaps, end, before = [], None, None
    for s, e, name in kernels:
        if end is not None and s > end:
            gaps.append((s - end, end, before, name))
        if end is None or e > end:
            end, before = e, name
    return gaps


def idle_gaps(kernels: list[tuple[float, float, str]], host_ops: list[tuple[float, float, str]], top: int) -> list[str]:
    """The ``top`` longest stretches with no kernel running (kernels sorted by start, times in us), each
    with the kernels around it and the host ops that were running at its middle: what kept the GPU waiting."""
    t0 = kernels[0][0] if kernels else 0.0
    out = []
    for dur, start, before, after in sorted(gaps_between(kernels), reverse=True)[:top]:
        mid = start + dur / 2
        running = sorted((e - s, n) for s, e, n in host_ops if s <= mid <= e)
        shown = running if len(running) <= 4 else running[:2] + running[-2:]  # innermost two, outermost two
        names = " > ".join(n[:60] for _, n in reversed(shown))
        out.append(
            f"- {dur / 1000:.2f} ms at +{(start - t0) / 1000:.1f} ms, after {before[:50]}, before {after[:50]}"
            f" | host: {names or '-'}"
        )
    return out


GAP_SIZES_US = (20, 100, 1000)  # idle by gap length: under 20 us (the host launching as fast as the GPU runs) ...


def idle_by_size(gaps: list[tuple[float, float, str, str]], steps: int) -> dict[str, tuple[float, float]]:
    """Idle time split by the gaps' lengths: {"<20 us": (ms per step, gaps per step), ...}. Many short gaps say
    the host's launches are slower than the kernels they launch; a few long ones, a wait (a sync, a copy)."""
    edges = (0, *GAP_SIZES_US, float("inf"))
    labels = [f"<{GAP_SIZES_US[0]} us"]
    labels += [f"{a}-{b} us" for a, b in zip(GAP_SIZES_US, GAP_SIZES_US[1:])] + [f">={GAP_SIZES_US[-1]} us"]
    out = {label: [0.0, 0.0] for label in labels}
    for dur, *_ in gaps:
        label = next(lab for lab, lo, hi in zip(labels, edges, edges[1:]) if lo <= dur < hi)
        out[label][0] += dur / 1000 / steps
        out[label][1] += 1 / steps
    return {k: (ms, n) for k, (ms, n) in out.items()}


def idle_by_host_op(gaps: list[tuple[float, float, str, str]], host_ops: list[tuple[float, float, str]],
                    steps: int) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Idle time by the host ops running at each gap's middle: {op name: (ms per step, gaps per step)}, a gap
    counted once for each op (at every nesting level) running then; the window's own range left out."""
    import heapq

    ops = sorted(host_ops)
    active: list[tuple[float, int, str]] = []  # (end, index, name) of the ops started by the current middle
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    i = 0
    for dur, start, *_ in sorted(gaps, key=lambda g: g[1]):
        mid = start + dur / 2
        while i < len(ops) and ops[i][0] <= mid:
            heapq.heappush(active, (ops[i][1], i, ops[i][2]))
            i += 1
        while active and active[0][0] < mid:
            heapq.heappop(active)
        for name in {n for _, _, n in active} - {WINDOW}:
            out[name][0] += dur / 1000 / steps
            out[name][1] += 1 / steps
    return {k: (ms, n) for k, (ms, n) in out.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    train_argv: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, train_argv = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--gaps", type=int, default=10, help="how many of the largest idle gaps to list")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    from gpt2train.cli import build_parser
    from gpt2train.cli.train_cmd import config_from_args
    from gpt2train.config import resolve
    from gpt2train.train import build, distributed
    from gpt2train.train.loop import train_step
    from gpt2train.train.report import Console

    cfg = config_from_args(build_parser().parse_args(["train", *train_argv]))
    cfg.max_steps = max(cfg.max_steps, args.warmup + args.steps + 1)
    console = Console(True)
    env, weights = build.environment(cfg, distributed.setup(cfg.device), console)
    rc = resolve(cfg, env)
    run = build.build(rc, env, weights, console)
    del weights
    dev = run.device
    static_mib = torch.cuda.memory_allocated(dev) / 2**20
    for s in range(args.warmup):
        train_step(run, rc, s)
    torch.cuda.synchronize(dev)
    after_warmup_mib = torch.cuda.memory_allocated(dev) / 2**20
    torch.cuda.reset_peak_memory_stats(dev)
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        t0 = time.perf_counter()
        with torch.profiler.record_function(WINDOW):  # marks the window on the profiler's clock
            for s in range(args.warmup, args.warmup + args.steps):
                train_step(run, rc, s)
            torch.cuda.synchronize(dev)
        wall_ms = (time.perf_counter() - t0) * 1000 / args.steps
    peak_mib = torch.cuda.max_memory_allocated(dev) / 2**20
    run.train_batches.close()
    run.scalars.close()

    by_kernel, intervals, host_ops = split_events(prof.events(), args.steps)
    gap_lines = idle_gaps(intervals, host_ops, args.gaps)
    gaps = gaps_between(intervals)
    by_size = idle_by_size(gaps, args.steps)
    by_host = sorted(idle_by_host_op(gaps, host_ops, args.steps).items(), key=lambda kv: -kv[1][0])[: args.gaps]
    window = [(st, en) for st, en, name in host_ops if name == WINDOW]
    edges = ""
    if window and intervals:  # idle before the first kernel and after the last, within the window
        lead = (intervals[0][0] - window[0][0]) / 1000 / args.steps
        tail = (window[0][1] - max(e for _, e, _ in intervals)) / 1000 / args.steps
        edges = f" | of the idle: {lead:.1f} ms before the first kernel, {tail:.1f} ms after the last"
    busy_ms = busy_time(intervals) / 1000 / args.steps
    by_cat: dict[str, float] = defaultdict(float)
    for name, (ms, _) in by_kernel.items():
        by_cat[category(name)] += ms
    total = sum(by_cat.values())
    lines = [
        f"device: {torch.cuda.get_device_name(dev)}  torch {torch.__version__}  {time.strftime('%Y-%m-%d')}",
        "flags: " + " ".join(train_argv),
        f"step wall {wall_ms:.1f} ms | GPU busy {busy_ms:.1f} ms ({busy_ms / wall_ms:.1%}) | "
        f"idle {wall_ms - busy_ms:.1f} ms | kernel time summed {total:.1f} ms{edges}",
        f"memory: after setup {static_mib:,.0f} MiB, after warm-up {after_warmup_mib:,.0f} MiB, "
        f"step peak {peak_mib:,.0f} MiB",
        "",
        "| category | ms/step | share |",
        "|---|---|---|",
    ]
    for cat, ms in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {cat} | {ms:.1f} | {ms / total:.1%} |")
    lines += ["", "| kernel | category | ms/step | calls/step |", "|---|---|---|---|"]
    top = sorted(by_kernel.items(), key=lambda kv: -kv[1][0])[: args.top]
    for name, (ms, n) in top:
        lines.append(f"| {name[:110]} | {category(name)} | {ms:.2f} | {n / args.steps:.0f} |")
    lines += ["", "GPU idle between kernels, by gap length:", "", "| gaps | ms/step | gaps/step |", "|---|---|---|"]
    lines += [f"| {label} | {ms:.1f} | {n:.0f} |" for label, (ms, n) in by_size.items()]
    lines += ["", "GPU idle between kernels, by the host op running (every nesting level):", "",
              "| host op | ms/step | gaps/step |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {name[:100]} | {ms:.1f} | {n:.0f} |" for name, (ms, n) in by_host]
    lines += [
        "",
        f"largest GPU idle gaps (of {args.steps} step(s); host ops running then, outermost first):",
        *gap_lines,
    ]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, "profile.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "profile.json"), "w") as f:
        json.dump({"wall_ms": wall_ms, "busy_ms": busy_ms, "by_category": by_cat, "static_mib": static_mib,
                   "after_warmup_mib": after_warmup_mib, "peak_mib": peak_mib,
                   "kernels": {k: v for k, v in top}, "idle_by_gap_length": by_size,
                   "idle_by_host_op": dict(by_host)}, f, indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
