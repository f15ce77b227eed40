"""train/accelerate.py: every fast path, applied to the plain model from outside, gives the plain model's loss and
gradients (within the kernels' own tests' tolerances) for both architectures, keeps the parameters (the same tensors
under the same names), and is one flag away from the plain model."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

from gpt2train.config import ModelConfig
from gpt2train.model import GPT, MLP, Block, build_model
from gpt2train.train.accelerate import FastPaths, accelerate

SHAPE = dict(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
ARCHS = {
    "classic": ModelConfig(**SHAPE),
    "modern": ModelConfig(**SHAPE, pos="rotary", qk_norm=True, mlp="relu2", norm="rmsnorm", untied_head=True,
                          logit_softcap=15.0),
}  # fmt: skip
PATHS = {
    "r1": FastPaths(recompute=1),
    "r2": FastPaths(recompute=2),
    "r3": FastPaths(recompute=3),
    "whole1": FastPaths(recompute=1, recompute_whole=1),
    "ge1": FastPaths(gelu_fusion=1),
    "ge2": FastPaths(gelu_fusion=2),
    "ge2_r1": FastPaths(recompute=1, gelu_fusion=2),
    "accumulate": FastPaths(accumulate_grads=True, gelu_fusion=2),
    "classifier": FastPaths(fused_classifier=True, classifier_chunk=24),
    "everything": FastPaths(recompute=1, recompute_whole=1, gelu_fusion=2, accumulate_grads=True,
                            fused_classifier=True, classifier_chunk=0),
}  # fmt: skip


def _loss_and_grads(model: GPT, steps: int = 2, step_module: torch.nn.Module | None = None):
    """Two micro-steps into persistent .grad buffers (accumulate_grads adds into them), as the trainer runs;
    ``step_module`` is what the step calls (the compiled model), ``model`` the one holding the parameters."""
    step_module = model if step_module is None else step_module
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, SHAPE["vocab_size"], (2, 32), generator=gen)
        loss = step_module(idx, idx.roll(-1, 1))
        (loss / steps).backward()
        losses.append(loss.detach())
    return torch.stack(losses), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("arch", ARCHS)
def test_fast_path_equals_the_plain_model(arch, path):
    cfg = ARCHS[arch]
    if not cfg.classic:  # zero-initialised projections would give zero gradients to half the weights
        assert not cfg.zero_init_proj
    plain, fast = build_model(cfg, seed=3), build_model(cfg, seed=3)
    params = dict(fast.named_parameters())
    keys = list(fast.state_dict())
    assert accelerate(fast, PATHS[path]) is fast
    assert dict(fast.named_parameters()) == params and list(fast.state_dict()) == keys  # names and tensors
    ref_loss, ref_grads = _loss_and_grads(plain)
    loss, grads = _loss_and_grads(fast)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=f"{arch} {path}: {name}")
    with torch.no_grad():  # evaluation and sampling through the swapped modules
        idx = torch.randint(0, SHAPE["vocab_size"], (1, 8))
        torch.testing.assert_close(fast(idx), plain(idx), rtol=1e-5, atol=1e-5)


def _assert_within_fp8_error(fast: GPT, plain: GPT) -> None:
    """The FP8 model's losses within 5% of the plain model's, each gradient within 20% (relative norm)."""
    ref_loss, ref_grads = _loss_and_grads(plain)
    loss, grads = _loss_and_grads(fast)
    assert ((loss - ref_loss).abs() < 0.05 * ref_loss).all(), (loss, ref_loss)
    for name, g in grads.items():
        err = (g - ref_grads[name]).norm() / ref_grads[name].norm().clamp_min(1e-12)
        assert err < 0.2, (name, err)


@pytest.mark.parametrize("arch", ARCHS)
def test_fp8_is_close_to_the_plain_model(arch):
    cfg = ARCHS[arch]
    plain, fast = build_model(cfg, seed=3), build_model(cfg, seed=3)
    accelerate(fast, FastPaths(fp8=1, recompute=1, gelu_fusion=2))
    _assert_within_fp8_error(fast, plain)


@pytest.mark.parametrize("scope", ["blocks", "model"])
@pytest.mark.parametrize("arch", ARCHS)
def test_compiled_equals_the_plain_model(arch, scope, monkeypatch):
    """compile: each block (one shared graph) or the whole model; aot_eager here (no C++ compiler needed)."""
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    cfg = ARCHS[arch]
    plain, fast = build_model(cfg, seed=3), build_model(cfg, seed=3)
    step_module = accelerate(fast, FastPaths(recompute=2, fused_classifier=True, compile=True, compile_scope=scope))
    assert (step_module is fast) == (scope == "blocks")
    ref_loss, ref_grads = _loss_and_grads(plain)
    loss, grads = _loss_and_grads(fast, step_module=step_module)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_compiled_blocks_with_custom_autograd_functions_are_kept_by_aot_autograds_cache(monkeypatch):
    """FP8's and -ge's autograd.Functions: torch's AOTAutograd cache takes their graphs once accelerate() allows it
    (else each start traces and partitions the joint graph again); its own check judges each graph Dynamo makes."""
    import torch._functorch.config as functorch_config
    from torch._functorch._aot_autograd.autograd_cache import BypassAOTAutogradCache, check_cacheable

    torch._dynamo.reset()
    monkeypatch.setattr(functorch_config, "autograd_cache_allow_custom_autograd_functions", False)
    verdicts = []

    def judge(gm, example_inputs):
        try:
            check_cacheable(gm)
            verdicts.append("cacheable")
        except BypassAOTAutogradCache as e:
            verdicts.append(str(e).splitlines()[0])
        return gm.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=judge))
    fast = build_model(ARCHS["classic"], seed=3)
    accelerate(fast, FastPaths(fp8=1, compile=True))
    assert functorch_config.autograd_cache_allow_custom_autograd_functions
    _loss_and_grads(fast)
    assert verdicts == ["cacheable"]  # one graph shared by the blocks
    functorch_config.autograd_cache_allow_custom_autograd_functions = False  # torch's default: the graph bypasses
    torch._dynamo.reset()
    _loss_and_grads(fast)
    assert verdicts[1].startswith("Unsupported call_function target autograd_function_apply")


def test_no_fast_path_applies_nothing_and_undoes_the_others():
    model = GPT(ARCHS["classic"])
    plain_loss = model.classifier_loss
    accelerate(model, FastPaths())
    assert all(type(b) is Block and type(b.mlp) is MLP and type(b.attn.c_proj) is torch.nn.Linear
               for b in model.transformer.h)  # fmt: skip
    assert model.classifier_loss is plain_loss
    keys = list(model.state_dict())
    accelerate(model, dataclasses.replace(PATHS["everything"], fp8=1, fp8_delayed=True))
    assert type(model.transformer.h[0]) is not Block and model.classifier_loss is not plain_loss
    # delayed scaling's amax histories: buffers of each FP8 linear (none in the block recomputed whole, whose linears
    # stay bf16), outside the state dict (checkpoints unchanged)
    fp8_blocks = len(model.transformer.h) - PATHS["everything"].recompute_whole
    assert fp8_blocks > 0 and len([n for n, _ in model.named_buffers() if ".fp8_" in n]) == 2 * 4 * fp8_blocks
    assert list(model.state_dict()) == keys
    accelerate(model, FastPaths())
    assert not [n for n, _ in model.named_buffers() if ".fp8_" in n]
    assert all(type(b) is Block and type(b.mlp) is MLP and type(b.mlp.c_fc) is torch.nn.Linear
               for b in model.transformer.h)  # fmt: skip
    assert model.classifier_loss is plain_loss


def _fp8_map(model) -> list[dict[str, int]]:
    """Per block, each linear's FP8 setting (0: bf16), whoever's FP8 it is (ours: FastLinear.fp8; torchao: 1)."""
    from gpt2train.train.accelerate import FastLinear, _linears

    def fp8(m):
        return m.fp8 if type(m) is FastLinear else int(type(m).__name__ == "Float8Linear")

    return [{name: fp8(m) for name, m in _linears(b)} for b in model.transformer.h]


@pytest.mark.parametrize("impl", ["ours", "torchao-tensorwise"])
def test_fp8_bf16_keeps_the_named_linears_and_blocks_in_bf16(impl):
    """--fp8-bf16 mlp.c_proj,first: the first block wholly bf16, c_proj of every other MLP bf16, the rest FP8;
    the kept linears are the plain nn.Linear and the model stays within FP8's error of the plain one."""
    cfg = dataclasses.replace(ARCHS["classic"], n_layer=3)
    plain, fast = build_model(cfg, seed=3), build_model(cfg, seed=3)
    accelerate(fast, FastPaths(fp8=2, fp8_impl=impl, fp8_bf16=("mlp.c_proj", "first")))
    on = 2 if impl == "ours" else 1
    fp8 = {"attn.c_attn": on, "attn.c_proj": on, "mlp.c_fc": on, "mlp.c_proj": 0}
    assert _fp8_map(fast) == [dict.fromkeys(fp8, 0), fp8, fp8]
    assert type(fast.transformer.h[0].attn.c_attn) is torch.nn.Linear
    assert type(fast.transformer.h[2].mlp.c_proj) is torch.nn.Linear
    _assert_within_fp8_error(fast, plain)
    accelerate(fast, FastPaths(fp8=1, fp8_bf16=("attn", "last")))  # ours again, another choice
    assert _fp8_map(fast) == [{"attn.c_attn": 0, "attn.c_proj": 0, "mlp.c_fc": 1, "mlp.c_proj": 1}] * 2 + [
        dict.fromkeys(fp8, 0)
    ]
    if impl == "ours":  # weight-grads: the FP8 linears' dW from bf16 dy, nothing else changes
        accelerate(fast, FastPaths(fp8=1, fp8_bf16=("attn", "weight-grads")))
        mlps = [(b.mlp.c_fc, b.mlp.c_proj) for b in fast.transformer.h]
        assert all(m.fp8 == 1 and m.weight_grad_bf16 for pair in mlps for m in pair)
        accelerate(fast, FastPaths(fp8=1))
        assert not any(m.weight_grad_bf16 or m.cast_kernel for pair in mlps for m in pair)
        accelerate(fast, FastPaths(fp8=1, fp8_cast_kernel=True))  # the casts through kernels/fp8_cast.py
        assert all(m.cast_kernel for pair in mlps for m in pair)


@pytest.mark.parametrize("arch, scaling", [("classic", "tensorwise"), ("modern", "rowwise")])
def test_torchao_fp8_is_close_to_the_plain_model_and_keeps_the_parameters(arch, scaling):
    """--fp8-impl torchao-*: the blocks' four linears become torchao's Float8Linear (the reference FP8 training),
    holding the same parameters under the same names, within FP8's error of the plain model; FastPaths() undoes it."""
    from torchao.float8.float8_linear import Float8Linear

    cfg = ARCHS[arch]
    plain, fast = build_model(cfg, seed=3), build_model(cfg, seed=3)
    params, keys = dict(fast.named_parameters()), list(fast.state_dict())
    accelerate(fast, FastPaths(fp8=1, fp8_impl=f"torchao-{scaling}", recompute=1, accumulate_grads=True))
    layers = [m for b in fast.transformer.h for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
    assert all(type(m) is Float8Linear for m in layers)
    assert dict(fast.named_parameters()) == params and list(fast.state_dict()) == keys
    _assert_within_fp8_error(fast, plain)
    accelerate(fast, FastPaths())
    assert all(type(m) is torch.nn.Linear for b in fast.transformer.h for m in (b.attn.c_attn, b.mlp.c_proj))
    assert dict(fast.named_parameters()) == params
