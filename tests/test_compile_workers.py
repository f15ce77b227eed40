"""The compile workers a CUDA run starts at setup, ahead of its first step (train/build.py). Their effect is measured
on the GPU (bench startup); here, that they are started."""

from __future__ import annotations

import sys

from gpt2train.train.build import start_compile_workers


def test_start_compile_workers_starts_inductors_pool_and_survives_a_torch_without_it(monkeypatch):
    import torch._inductor.async_compile as async_compile

    calls = []
    monkeypatch.setattr(async_compile, "maybe_warm_pool", lambda: calls.append("warm"))
    start_compile_workers()
    assert calls == ["warm"]
    monkeypatch.setitem(sys.modules, "torch._inductor.async_compile", None)  # its import now fails
    start_compile_workers()
    assert calls == ["warm"]
