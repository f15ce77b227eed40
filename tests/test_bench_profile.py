"""bench/profile_step.py's accounting on made-up profiler events (the profile itself needs a GPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

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
