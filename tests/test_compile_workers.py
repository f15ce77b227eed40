"""What a run starts at setup ahead of its first step (train/build.py): the compile workers, the weights' draws in a
background thread, the compiler's imports beside them. Their effect is measured on the GPU (bench startup); here, that
they are started and that the weights come out as build_model's."""

from __future__ import annotations

import sys

import pytest

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


def _rc(cfg, seed=3):
    from types import SimpleNamespace

    return SimpleNamespace(model_config=cfg, seed=seed, master_weights=1, bf16_params=0, tf32=1, attention="auto")


def test_fresh_weights_drawn_in_the_background_are_build_models(tiny_config, monkeypatch):
    import torch

    from gpt2train.config import Environment
    from gpt2train.model import GPT, build_model
    from gpt2train.train.build import _model

    env = Environment(device=torch.device("cpu"))
    model, weights_drawn = _model(_rc(tiny_config), env, None)
    weights_drawn()
    want = build_model(tiny_config, seed=3)
    for (name, got), ref in zip(model.state_dict().items(), want.state_dict().values()):
        assert torch.equal(got, ref), name

    def fail(self, seed):
        raise RuntimeError("draw failed")

    monkeypatch.setattr(GPT, "init_weights", fail)
    _, weights_drawn = _model(_rc(tiny_config), env, None)
    with pytest.raises(RuntimeError, match="draw failed"):  # the thread's error reaches the caller
        weights_drawn()
    loaded, weights_drawn = _model(_rc(tiny_config), env, want.state_dict())  # given weights: nothing to wait for
    weights_drawn()
    assert torch.equal(loaded.transformer.wte.weight, want.transformer.wte.weight)


def test_import_compiler_imports_dynamo_and_inductor():
    import torch

    from gpt2train.train.build import import_compiler

    import_compiler(torch.device("cpu"))
    assert "torch._dynamo" in sys.modules and "torch._inductor.compile_fx" in sys.modules
