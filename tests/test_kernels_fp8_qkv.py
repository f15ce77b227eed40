"""q, k and v's gradients gathered inside c_attn's FP8 cast (--fp8-qkv-cast; kernels/fp8_fused.py and the cast
kernel's gather pass): the Triton kernel on the CPU under TRITON_INTERPRET=1 against
qkv_grad_cast_transpose_reference, the reference against the unfused arithmetic, and a tiny GPT whose attention
takes its q, k and v from the fused function against the same GPT unfused, eager and compiled."""

from __future__ import annotations

import os

import pytest
import torch

# Triton picks its interpreter when first imported; switch it on first (only without a GPU)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.kernels import fp8_cast  # noqa: E402
from gpt2train.kernels._triton import interpreting, triton_available  # noqa: E402
from gpt2train.kernels.fp8_linear import E4M3, E5M2  # noqa: E402
from tests.helpers import assert_trains_bit_for_bit, tiny_fp8_runs  # noqa: E402


def _grads(b, heads, seq, head_dim, seed, layout):
    """Three (B, heads, T, head_dim) bf16 gradients, contiguous ("bhtd", as attention writes them) or as views of
    (B, T, heads, head_dim) tensors ("bthd")."""
    gen = torch.Generator().manual_seed(seed)
    shape = (b, heads, seq, head_dim) if layout == "bhtd" else (b, seq, heads, head_dim)
    out = [(torch.randn(shape, generator=gen) * (i + 1)).to(torch.bfloat16) for i in range(3)]
    return out if layout == "bhtd" else [t.transpose(1, 2) for t in out]


def _concatenated(dq, dk, dv):
    b, heads, seq, head_dim = dq.shape
    return torch.cat([g.transpose(1, 2).reshape(b * seq, heads * head_dim) for g in (dq, dk, dv)], dim=1)


@pytest.mark.parametrize("layout", ["bhtd", "bthd"])
@pytest.mark.parametrize("shape, block_m, block_n", [((2, 3, 40, 16), 32, 16), ((1, 2, 64, 32), 64, 32),
                                                     ((3, 1, 8, 32), 16, 16)])  # fmt: skip
@pytest.mark.parametrize("programs", [None, 2])
def test_kernel_gathers_the_three_gradients(layout, shape, block_m, block_n, programs):
    """The gather pass casts (B*T, 3C) q|k|v's gradient, in both layouts, read from the three tensors where they
    lie (any strides with head_dim's 1): every element where the concatenation has it, edge tiles masked, heads one
    tile wide and two; the column sums and the amax as the concatenation's. Written as fp32
    (bench/kernels_gpu_check.py compares the FP8 bits on a GPU)."""
    if not (triton_available() and interpreting()):
        pytest.skip("needs Triton's CPU interpreter (TRITON_INTERPRET=1 before triton is imported) or a GPU")
    dq, dk, dv = _grads(*shape, seed=sum(shape), layout=layout)
    want = _concatenated(dq, dk, dv).float()
    m, n = want.shape
    scale, amax = torch.tensor(0.5), torch.tensor(0.0)
    q, qt = torch.full((m, n), float("nan")), torch.full((n, m), float("nan"))
    sums = fp8_cast._launch(dq, scale, q, qt, amax, block_m=block_m, block_n=block_n, programs=programs, sums=True,
                            gather=(dk, dv))  # fmt: skip
    assert torch.equal(q, want * scale) and torch.equal(qt, q.t())
    assert amax.item() == want.abs().max().item()
    torch.testing.assert_close(sums, want.sum(0), rtol=1e-5, atol=1e-5)


def test_gather_tiles_lie_within_a_head():
    """A tile's columns come from one head of one tensor (what keeps its loads row-major on a GPU): a block_n that
    does not divide head_dim is refused before anything launches."""
    dq, dk, dv = _grads(1, 2, 16, 16, seed=1, layout="bhtd")
    q, qt = torch.zeros(16, 96), torch.zeros(96, 16)
    with pytest.raises(ValueError, match="divide head_dim"):
        fp8_cast._launch(dq, torch.tensor(1.0), q, qt, block_m=16, block_n=32, gather=(dk, dv))


@pytest.mark.parametrize("dtype", [E4M3, E5M2])
@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
def test_reference_is_the_unfused_arithmetic(dtype, source):
    """The reference casts what the unfused path casts: the three gradients concatenated as autograd does, rounded
    to bf16, cast by cast_transpose_reference with the amax recorded; the column sums are the bias gradient from the
    concatenation in its dtype. Off CUDA the op is the reference."""
    dq, dk, dv = (g.to(source) for g in _grads(2, 3, 16, 16, seed=4, layout="bthd"))
    scale, amax, want_amax = torch.tensor(8.0), torch.tensor(0.0), torch.tensor(0.0)
    q, qt, sums = fp8_cast.qkv_grad_cast_transpose_reference(dq, dk, dv, scale, dtype, amax)
    cat = _concatenated(dq, dk, dv)
    wq, wqt = fp8_cast.cast_transpose_reference(cat.to(torch.bfloat16), scale, dtype, True, want_amax)
    assert torch.equal(q.view(torch.uint8), wq.view(torch.uint8)) and torch.equal(
        qt.view(torch.uint8), wqt.view(torch.uint8)
    )
    assert amax == want_amax and sums.dtype == torch.float32 and torch.equal(sums, cat.float().sum(0))
    q2, qt2, sums2 = fp8_cast.qkv_grad_cast_transpose_kernel(dq, dk, dv, scale, dtype, None)
    assert torch.equal(q2.view(torch.uint8), q.view(torch.uint8)) and torch.equal(sums2, sums)


@pytest.mark.parametrize("autocast", [True, False])
def test_gathered_gradients_train_as_the_concatenated(autocast):
    """A tiny GPT with --fp8-qkv-cast 1 against 0 (two micro-steps of delayed scaling, bf16 autocast and fp32): the
    same loss, gradients and amax histories bit for bit (on the CPU the op runs its reference), but c_attn's bias
    gradient, summed in fp32 before one rounding (fp8_linear sums the bf16 gradient); the attention class follows
    the flag."""
    on = {"fp8_gelu_cast": True}
    run0, run1 = tiny_fp8_runs([(on, False), ({**on, "fp8_qkv_cast": True}, False)], autocast)
    attn0, attn1 = ([type(b.attn).__name__ for b in m.transformer.h] for m in (run0[3], run1[3]))
    assert attn0 == ["CausalSelfAttention"] * 2 and attn1 == ["FP8QKVAttention"] * 2
    assert_trains_bit_for_bit(run0, run1, "attn.c_attn.bias")


def test_gathered_gradients_compiled_as_eager_and_evaluation_plain():
    """Compiled (aot_eager), the fused q, k and v train as eager; without gradients the attention takes the plain
    split (evaluation, sampling with a KV cache)."""
    on = {"fp8_gelu_cast": True, "fp8_qkv_cast": True}
    (loss0, grads0, _, _), (loss1, grads1, _, _) = tiny_fp8_runs([(on, False), (on, True)])
    torch.testing.assert_close(loss1, loss0, rtol=1e-3, atol=0)  # aot_eager's decompositions round differently
    for n, g in grads0.items():
        assert ((grads1[n] - g).norm() / g.norm()).item() < 0.2, n  # FP8 rounding amplifies those differences
    from gpt2train.config import ModelConfig
    from gpt2train.model import CausalSelfAttention, build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    model = build_model(ModelConfig(n_layer=1, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32), seed=5)
    accelerate(model, FastPaths(fp8=1, fp8_cast_kernel=1, fp8_delayed=True, fp8_qkv_cast=True))
    attn, x = model.transformer.h[0].attn, torch.randn(2, 32, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(attn.qkv(x), CausalSelfAttention.qkv(attn, x)))
