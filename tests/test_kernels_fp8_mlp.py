"""The MLP's activation inside the FP8 casts (--fp8-gelu-cast; kernels/fp8_fused.py and the cast kernel's activation
passes, GELU's and ReLU²'s): the Triton kernel's passes on the CPU under TRITON_INTERPRET=1 against
activation_cast_transpose_reference, the reference against the unfused arithmetic, and a tiny GPT whose MLPs run fused
against the same GPT unfused (FastLinear, the activation, FastLinear), eager and compiled."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

# Triton picks its interpreter when first imported; switch it on first (only without a GPU)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.kernels import fp8_cast  # noqa: E402
from gpt2train.kernels._triton import interpreting, triton_available  # noqa: E402
from gpt2train.kernels.fp8_linear import E4M3, E5M2  # noqa: E402
from tests.helpers import assert_trains_bit_for_bit, tiny_fp8_runs  # noqa: E402


def _pair(rows, cols, seed):
    gen = torch.Generator().manual_seed(seed)
    h = (torch.randn(rows, cols, generator=gen) * 2).to(torch.bfloat16)
    g = (torch.randn(rows, cols, generator=gen) * 3).to(torch.bfloat16)
    bias = (torch.randn(cols, generator=gen) * 0.5).to(torch.bfloat16)
    return h, g, bias


@pytest.mark.parametrize("rows, cols, block_m, block_n", [(70, 45, 32, 16), (64, 64, 64, 64), (5, 130, 16, 64)])
@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("programs", [None, 2])
@pytest.mark.parametrize("activation", ["gelu", "relu2"])
def test_kernel_activation_passes_are_the_reference(rows, cols, block_m, block_n, backward, with_bias, programs,
                                                    activation):  # fmt: skip
    """The kernel's activation passes: what it casts, in both layouts, is the activation of h + bias (forward) or g
    times its derivative there (backward), as torch computes them (GELU: its tanh form; ReLU²: relu(h)², 2 relu(h)),
    up to the bf16 rounding both apply (the kernel's sigmoid form differs from tanh in the last bits; the
    interpreter rounds to bf16 otherwise than the GPU). Edge tiles' masked elements add nothing to the amax record
    or the column sums (backward: the bias gradient's), whatever programs were asked for. Written as fp32
    (before any FP8 rounding; bench/kernels_gpu_check.py --checks fp8_cast compares the FP8 bits on a GPU)."""
    if not (triton_available() and interpreting()):
        pytest.skip("needs Triton's CPU interpreter (TRITON_INTERPRET=1 before triton is imported) or a GPU")
    h, g, bias = _pair(rows, cols, seed=rows + cols)
    bias = bias if with_bias else None
    scale, amax = torch.tensor(0.5), torch.tensor(0.0)
    q, qt = torch.full((rows, cols), float("nan")), torch.full((cols, rows), float("nan"))
    sums = fp8_cast._launch(h, scale, q, qt, amax, block_m=block_m, block_n=block_n, programs=programs,
                            act=fp8_cast.ACT_PASSES[activation][backward], bias=bias,
                            g=g if backward else None, sums=backward)  # fmt: skip
    hb = h.float() if bias is None else (h + bias).float()  # the bias added in bf16, as the kernel rounds it

    def want_at(hb):
        if activation == "relu2":
            return torch.where(hb > 0, g.float() * 2 * hb, 0.0) if backward else F.relu(hb).square()
        return (
            torch.ops.aten.gelu_backward(g.float(), hb, approximate="tanh")
            if backward
            else F.gelu(hb, approximate="tanh")
        )

    # within what one bf16 rounding of h + bias (either way) and one of the result change: the interpreter rounds
    # toward zero where the GPU rounds to nearest, and GELU's tails turn h's last bit into a large relative change
    want = want_at(hb)
    bound = torch.stack([(want_at(hb * (1 + d)) - want).abs() for d in (2**-7, -(2**-7))]).amax(0)
    bound = bound + want.abs() * 2**-7 + 1e-5  # torch's tanh saturates to 0 in the far tail, the sigmoid not quite
    assert ((q - want * scale).abs() <= bound * scale).all()
    assert torch.equal(qt, q.t())
    assert amax == (q / scale).abs().max()  # the largest of what was cast (the scale, 0.5, divides exactly)
    if backward:  # the column sums of what was cast (before the scale): the bias gradient
        torch.testing.assert_close(sums, (q / scale).sum(0), rtol=1e-5, atol=1e-5)
    else:
        assert sums is None


@pytest.mark.parametrize("dtype", [E4M3, E5M2])
@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
def test_reference_is_the_unfused_arithmetic(dtype, source):
    """The reference casts what the unfused MLP casts: GELU of (h + bias) in h's dtype, or GELU's backward there,
    rounded to bf16 (as the cast kernel's path rounds fp32 operands) and cast by cast_transpose_reference with the
    amax recorded; the column sums are the bias gradient as fp8_linear sums it (from the gradient in h's dtype)."""
    h, g, bias = (t.to(source) for t in _pair(33, 48, seed=2))
    scale = torch.tensor(4.0)
    amax = torch.tensor(0.0)
    q, qt, sums = fp8_cast.activation_cast_transpose_reference(h, bias, None, scale, dtype, amax)
    a = F.gelu(h + bias, approximate="tanh").to(torch.bfloat16)
    wq, wqt = fp8_cast.cast_transpose_reference(a, scale, dtype)
    assert sums is None and torch.equal(q.view(torch.uint8), wq.view(torch.uint8))
    assert torch.equal(qt.view(torch.uint8), wqt.view(torch.uint8)) and amax == a.float().abs().max()
    q, qt, sums = fp8_cast.activation_cast_transpose_reference(h, bias, g, scale, dtype)
    dh = torch.ops.aten.gelu_backward(g, h + bias, approximate="tanh")
    wq, wqt = fp8_cast.cast_transpose_reference(dh.to(torch.bfloat16), scale, dtype)
    assert torch.equal(q.view(torch.uint8), wq.view(torch.uint8))
    assert torch.equal(qt.view(torch.uint8), wqt.view(torch.uint8))
    assert sums.dtype == torch.float32 and torch.equal(sums, dh.float().sum(0))
    # the op: the reference off CUDA, an empty tensor for the forward's sums
    q2, _, sums2 = fp8_cast.activation_cast_transpose_kernel(h, bias, None, scale, dtype, None, "gelu")
    q3, _, sums3 = fp8_cast.activation_cast_transpose_kernel(h, bias, g, scale, dtype, None, "gelu")
    assert sums2.numel() == 0 and torch.equal(sums3, sums) and torch.equal(q3.view(torch.uint8), q.view(torch.uint8))


@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
def test_relu2_reference_is_autograds_arithmetic(source):
    """ReLU²'s reference casts what the unfused MLP computes: relu(h + bias)² forward, and backward the gradient
    autograd gives relu(x).square() (g times 2h, one rounding in h's dtype, where h > 0, else +0), so the bytes
    match; an unknown activation is refused."""
    h, g, bias = (t.to(source) for t in _pair(33, 48, seed=3))
    scale = torch.tensor(4.0)
    q, qt, sums = fp8_cast.activation_cast_transpose_reference(h, bias, None, scale, E4M3, None, "relu2")
    a = F.relu(h + bias).square()
    assert sums is None and torch.equal(q.view(torch.uint8), fp8_cast.cast_transpose_reference(
        a.to(torch.bfloat16), scale, E4M3)[0].view(torch.uint8))  # fmt: skip
    x = (h + bias).detach().requires_grad_()
    F.relu(x).square().backward(g)
    q, qt, sums = fp8_cast.activation_cast_transpose_reference(h, bias, g, scale, E5M2, None, "relu2")
    wq, wqt = fp8_cast.cast_transpose_reference(x.grad.to(torch.bfloat16), scale, E5M2)
    assert torch.equal(q.view(torch.uint8), wq.view(torch.uint8)) and torch.equal(qt.view(torch.uint8),
                                                                                   wqt.view(torch.uint8))  # fmt: skip
    assert torch.equal(sums, x.grad.float().sum(0))
    with pytest.raises(ValueError, match="activation 'silu'"):
        fp8_cast.activation_cast_transpose_reference(h, bias, g, scale, E5M2, None, "silu")


@pytest.mark.parametrize("autocast", [True, False])
def test_fused_mlp_trains_as_the_unfused_one(autocast):
    """A tiny GPT with --fp8-gelu-cast 1 against 0 (two micro-steps of delayed scaling, bf16 autocast and fp32): the
    same loss, gradients and amax histories bit for bit (on the CPU the op runs its reference), but c_fc's bias
    gradient, which the fused pass sums in fp32 before rounding once (fp8_linear sums the bf16 gradient); the MLPs
    are the fused class only with the flag."""
    run0, run1 = tiny_fp8_runs([({"fp8_gelu_cast": False}, False), ({"fp8_gelu_cast": True}, False)], autocast)
    mlps0, mlps1 = ([type(b.mlp).__name__ for b in m.transformer.h] for m in (run0[3], run1[3]))
    assert mlps0 == ["MLP", "MLP"] and mlps1 == ["ActivationInCastMLP", "ActivationInCastMLP"]
    assert_trains_bit_for_bit(run0, run1, "mlp.c_fc.bias")


@pytest.mark.parametrize("autocast", [True, False])
def test_fused_relu2_mlp_trains_as_the_unfused_one(autocast):
    """As GELU's, for the modern recipe's model (ReLU², RMSNorm without biases, rotary, ...; its projections not
    zero-initialised, so that every gradient and amax record is nonzero): the same loss, gradients and amax
    histories bit for bit with --fp8-gelu-cast 1 as with 0."""
    from tests.test_modern import MODERN

    off, on = ({"fp8_gelu_cast": flag} for flag in (False, True))
    levers = {**MODERN, "zero_init_proj": False}
    run0, run1 = tiny_fp8_runs([(off, False), (on, False)], autocast, levers=levers)
    assert [type(b.mlp).__name__ for b in run1[3].transformer.h] == ["ActivationInCastMLP"] * 2
    assert run1[3].config.mlp == "relu2" and run1[3].transformer.h[0].mlp.c_fc.bias is None
    assert_trains_bit_for_bit(run0, run1, None)


def test_fused_mlp_compiled_and_with_cached_weights():
    """Compiled (aot_eager), the fused MLP trains as eager; with --fp8-cache-weights (the weights' copies from the
    buffers) as without."""
    on = {"fp8_gelu_cast": True}
    (loss0, grads0, _, _), (loss1, grads1, _, _), (loss2, grads2, _, _) = tiny_fp8_runs(
        [(on, False), (on, True), ({**on, "fp8_cache_weights": True}, False)]
    )
    torch.testing.assert_close(loss1, loss0, rtol=1e-3, atol=0)  # aot_eager's decompositions round differently
    for n, g in grads0.items():
        assert ((grads1[n] - g).norm() / g.norm()).item() < 0.2, n  # FP8 rounding amplifies those differences
    assert torch.equal(loss2, loss0) and all(torch.equal(grads2[n], g) for n, g in grads0.items())


def test_fused_mlp_only_where_it_can_run():
    """The fused class needs both MLP linears in our FP8 with delayed scaling and the cast kernel: --fp8-bf16
    mlp.c_proj, dynamic scaling, Inductor's casts or weight-grads leave the unfused MLP; blocks recomputed whole
    keep bf16 MLPs; without gradients it is the plain MLP's arithmetic."""
    from gpt2train.config import ModelConfig
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
    on = dict(fp8=1, fp8_cast_kernel=1, fp8_delayed=True, fp8_gelu_cast=True)
    fused = "ActivationInCastMLP"
    for fields, want in (({}, [fused] * 2), ({"fp8_bf16": ("mlp.c_proj",)}, ["MLP"] * 2),
                         ({"fp8_delayed": False}, ["MLP"] * 2), ({"fp8_cast_kernel": 0}, ["MLP"] * 2),
                         ({"fp8_bf16": ("weight-grads",)}, ["MLP"] * 2), ({"fp8_bf16": ("first",)}, ["MLP", fused]),
                         ({"recompute": 1}, [fused] * 2), ({"recompute": 2, "recompute_whole": 1},
                                                           ["RecomputedMLP", fused])):  # fmt: skip
        model = build_model(cfg, seed=5)
        accelerate(model, FastPaths(**{**on, **fields}))
        assert [type(b.mlp).__name__ for b in model.transformer.h] == want, fields
    model = build_model(cfg, seed=5)
    accelerate(model, FastPaths(**on))
    x = torch.randn(2, 32, 64)
    with torch.no_grad():
        plain = model.transformer.h[0].mlp.c_proj(F.gelu(model.transformer.h[0].mlp.c_fc(x), approximate="tanh"))
        assert torch.equal(model.transformer.h[0].mlp(x), plain)
