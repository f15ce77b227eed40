"""GeluLinear equals the plain GELU + linear path and stores only the GELU input."""

from __future__ import annotations

import pytest
import torch

from gpt2train.kernels.gelu_linear import gelu_linear, gelu_linear_reference


def _inputs(shape, k=48, n=24, dtype=torch.float32, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*shape, k, generator=g).to(dtype)
    w = (torch.randn(n, k, generator=g) * 0.1).to(dtype)
    b = (torch.randn(n, generator=g) * 0.1).to(dtype) if bias else None
    return h, w, b


def _grads(fn, h, w, b, seed=1):
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in (h, w, b)]
    out = fn(*leaves)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out.dtype)
    out.backward(dout)
    return [out.detach()] + [t.grad if t is not None else None for t in leaves]


@pytest.mark.parametrize("shape", [(37,), (3, 17)])
@pytest.mark.parametrize("bias", [True, False])
def test_fp32_matches_plain_path(shape, bias):
    h, w, b = _inputs(shape, bias=bias)
    got = _grads(gelu_linear, h, w, b)
    ref = _grads(gelu_linear_reference, h, w, b)
    for a, r in zip(got, ref):
        if r is None:
            assert a is None
            continue
        assert a.dtype == r.dtype and a.shape == r.shape
        # the same ops as autograd runs for the plain path: bit for bit on CPU fp32
        assert torch.equal(a, r)


def test_autocast_bf16_matches_plain_path():
    h, w, b = _inputs((4, 16), seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _grads(gelu_linear, h, w, b)
        ref = _grads(gelu_linear_reference, h, w, b)
    assert got[0].dtype == ref[0].dtype == torch.bfloat16
    for a, r in zip(got[1:], ref[1:]):
        assert a.dtype == r.dtype == torch.float32
        torch.testing.assert_close(a, r, rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(got[0].float(), ref[0].float(), rtol=0, atol=0)


def test_bf16_tensors_match_plain_path():
    h, w, b = _inputs((64,), dtype=torch.bfloat16, seed=3)
    got = _grads(gelu_linear, h, w, b)
    ref = _grads(gelu_linear_reference, h, w, b)
    for a, r in zip(got, ref):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), r.float(), rtol=2e-2, atol=2e-3)


def _saved_bytes(fn, h, w, b):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    leaves = [t.detach().clone().requires_grad_() for t in (h, w, b)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*leaves).sum().backward()
    return total


def test_saves_only_the_gelu_input():
    h, w, b = _inputs((8, 32), k=64, n=16)
    h_bytes, w_bytes = h.numel() * 4, w.numel() * 4
    fast = _saved_bytes(gelu_linear, h, w, b)
    plain = _saved_bytes(gelu_linear_reference, h, w, b)
    assert fast == h_bytes + w_bytes  # h and W, not gelu(h)
    assert plain >= 2 * h_bytes + w_bytes  # the plain path also keeps gelu(h)


def test_no_grad_is_plain():
    h, w, b = _inputs((5,))
    with torch.no_grad():
        assert torch.equal(gelu_linear(h, w, b), gelu_linear_reference(h, w, b))


def test_in_a_model(tiny_config):
    """Swapping each MLP's GELU + c_proj for gelu_linear leaves loss and gradients unchanged."""
    from gpt2train.model import build_model

    ref_model, fast_model = build_model(tiny_config, seed=1), build_model(tiny_config, seed=1)
    for block in fast_model.transformer.h:
        m = block.mlp
        m.forward = lambda x, m=m: gelu_linear(m.c_fc(x), m.c_proj.weight, m.c_proj.bias)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, tiny_config.vocab_size, (2, 16), generator=g)
    tgt = torch.randint(0, tiny_config.vocab_size, (2, 16), generator=g)
    l_ref, l_fast = ref_model(idx, tgt), fast_model(idx, tgt)
    l_ref.backward()
    l_fast.backward()
    assert torch.equal(l_fast, l_ref)
    for (n, a), (_, b) in zip(fast_model.named_parameters(), ref_model.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-8, msg=n)
