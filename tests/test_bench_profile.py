"""bench/profile_step.py's accounting on made-up profiler events (the profile itself needs a GPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("profile_step", ROOT / "bench" / "profile_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _event(name, start, end, cuda=True, annotation=False):
    device = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    return SimpleNamespace(name=name, time_range=SimpleNamespace(start=start, end=end), device_type=device,
                           is_user_annotation=annotation)  # fmt: skip


def test_annotations_on_the_gpu_timeline_are_not_kernels():
    prof = _load()
    events = [
        _event(prof.WINDOW, 0, 1000, cuda=False),  # the window on the host
        _event(prof.WINDOW, 0, 1000, annotation=True),  # and its mirror on the GPU timeline
        _event("Optimizer.step#AdamW.step", 800, 900),
        _event("sm90_xmma_gemm_bf16", 100, 400),
        _event("triton_poi_fused_add", 350, 500),  # overlaps the gemm on another stream
        _event("sm90_xmma_gemm_bf16", 700, 800),
    ]
    by_kernel, intervals, host_ops = prof.split_events(events, steps=2)
    assert [n for _, _, n in intervals] == ["sm90_xmma_gemm_bf16", "triton_poi_fused_add", "sm90_xmma_gemm_bf16"]
    assert by_kernel["sm90_xmma_gemm_bf16"] == [0.2, 2]  # (300 + 100) us over 2 steps, in ms; 2 calls
    assert host_ops == [(0, 1000, prof.WINDOW)]
    assert prof.busy_time(intervals) == 500  # 100..500 and 700..800: the 1000 us window is not GPU work
    assert (
        prof.category("sm90_xmma_gemm_bf16") == "matmul" and prof.category("triton_poi_fused_add") == "compiled fusion"
    )


def test_idle_split_by_gap_length_and_by_the_host_op_running():
    """Each gap between kernels lands in one length bucket, and is charged to every host op running at its middle
    (nested ones included, the window left out), per step."""
    prof = _load()
    kernels = [(0, 100, "a"), (110, 200, "b"), (250, 300, "c"), (1800, 1900, "d")]  # gaps: 10, 50, 1500 us
    host = [(0, 2000, prof.WINDOW), (0, 1000, "train_step"), (240, 260, "never at a middle"),
            (200, 300, "gpt2train::fp8_cast_transpose"), (300, 2000, "Optimizer.step")]  # fmt: skip
    gaps = prof.gaps_between(kernels)
    assert [g[0] for g in gaps] == [10, 50, 1500]
    by_size = prof.idle_by_size(gaps, steps=2)
    assert list(by_size) == ["<20 us", "20-100 us", "100-1000 us", ">=1000 us"]
    assert [pytest.approx(v) for v in by_size.values()] == [(0.005, 0.5), (0.025, 0.5), (0.0, 0.0), (0.75, 0.5)]
    by_op = prof.idle_by_host_op(gaps, host, steps=1)
    # middles at 105 (train_step), 225 (train_step, the cast op), 1050 (Optimizer.step)
    assert sorted(by_op) == ["Optimizer.step", "gpt2train::fp8_cast_transpose", "train_step"]
    assert by_op["train_step"] == pytest.approx((0.06, 2)) and by_op["Optimizer.step"] == pytest.approx((1.5, 1))
    assert by_op["gpt2train::fp8_cast_transpose"] == pytest.approx((0.05, 1))
