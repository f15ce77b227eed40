"""Stochastic rounding to bf16 and the bf16 AdamW step (-w 0): reference, Triton kernel, optimizer."""

from __future__ import annotations

import os

import pytest
import torch

# Triton picks its interpreter when it is imported (its own @jit helpers such as tl.randint are
# decorated then), so switch it on before anything imports triton; only without a GPU, so that a
# GPU run of the whole suite keeps compiled Triton for everyone else.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.kernels import stochastic_round as sr  # noqa: E402
from gpt2train.kernels._triton import triton_available  # noqa: E402
from tests.helpers import roundtrip  # noqa: E402

ULP_AT_1 = 2.0**-7  # bf16 spacing in [1, 2)


def _neighbours(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bf16 values just below and above |x| (in magnitude), with x's sign, as fp32."""
    bits = x.view(torch.int32)
    lo = (bits & -65536).view(torch.float32)
    hi = ((bits & -65536) + 65536).view(torch.float32)
    return lo, hi


@pytest.mark.parametrize("value", [1.0 + 0.3 * ULP_AT_1, -(1.0 + 0.85 * ULP_AT_1), 3.0e-5 * (1 + 0.5 * ULP_AT_1)])
def test_unbiased_in_expectation(value):
    n = 200_000
    x = torch.full((n,), value, dtype=torch.float32)
    r = sr.stochastic_round_to_bf16(x, torch.Generator().manual_seed(0)).float()
    lo, hi = _neighbours(x[:1])
    assert set(r.unique().tolist()) <= {lo.item(), hi.item()}
    frac = (value - lo.item()) / (hi.item() - lo.item())
    sigma = abs(hi.item() - lo.item()) * (frac * (1 - frac) / n) ** 0.5
    assert abs(r.double().mean().item() - value) < 5 * sigma


def test_exact_on_representable_values_and_passes_nonfinite():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10_000, generator=g).to(torch.bfloat16)
    for seed in range(3):
        r = sr.stochastic_round_to_bf16(x.float(), torch.Generator().manual_seed(seed))
        assert torch.equal(r.view(torch.int16), x.view(torch.int16))
    special = torch.tensor([float("inf"), -float("inf"), float("nan"), 0.0, -0.0])
    r = sr.stochastic_round_to_bf16(special, torch.Generator().manual_seed(0)).float()
    assert torch.equal(r[:2], special[:2]) and torch.isnan(r[2]) and (r[3:] == 0).all()


def _problem(n=3000, seed=0, grad_dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, generator=g).to(torch.bfloat16)
    grad = (torch.randn(n, generator=g) * 1e-2).to(grad_dtype)
    m = torch.randn(n, generator=g) * 1e-3
    v = torch.rand(n, generator=g) * 1e-5
    return p, grad, m, v


HYPER = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def test_reference_is_fp32_math_plus_rounding():
    p, grad, m, v = _problem()
    m2, v2 = m.clone(), v.clone()
    new32 = sr.adamw_fp32_math(p, grad, m2, v2, step=5, **HYPER)
    p_ref, m_ref, v_ref = p.clone(), m.clone(), v.clone()
    sr.adamw_bf16_stochastic_reference(p_ref, grad, m_ref, v_ref, step=5, seed=7, **HYPER)
    assert torch.equal(m_ref, m2) and torch.equal(v_ref, v2)
    lo, hi = _neighbours(new32)
    out = p_ref.float()
    assert ((out == lo) | (out == hi)).all()
    # deterministic given (seed, step); another step rounds differently
    p_again = p.clone()
    sr.adamw_bf16_stochastic_reference(p_again, grad, m.clone(), v.clone(), step=5, seed=7, **HYPER)
    assert torch.equal(p_again, p_ref)


def _skip_unless_interpreter():
    if not triton_available():
        pytest.skip("triton is not installed")
    import triton.language.random as tl_random
    from triton.runtime.interpreter import InterpretedFunction

    if os.environ.get("TRITON_INTERPRET") != "1" or not isinstance(tl_random.randint, InterpretedFunction):
        pytest.skip("Triton's CPU interpreter is off (triton imported before TRITON_INTERPRET=1, or a GPU)")


@pytest.fixture
def interpret():
    _skip_unless_interpreter()


@pytest.mark.parametrize("grad_dtype", [torch.bfloat16, torch.float32])
def test_triton_kernel_matches_reference_math(interpret, grad_dtype):
    p, grad, m, v = _problem(n=3000, seed=2, grad_dtype=grad_dtype)  # not a multiple of the block
    m_ref, v_ref = m.clone(), v.clone()
    new32 = sr.adamw_fp32_math(p, grad, m_ref, v_ref, step=3, **HYPER)
    p_k, m_k, v_k = p.clone(), m.clone(), v.clone()
    sr.adamw_bf16_stochastic_(p_k, grad, m_k, v_k, step=3, seed=11, block=512, **HYPER)
    torch.testing.assert_close(m_k, m_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(v_k, v_ref, rtol=1e-6, atol=0)
    # lands on a bf16 neighbour of the fp32 result (allowing 1 fp32 ulp of math difference)
    out = p_k.float()
    ok = torch.zeros_like(out, dtype=torch.bool)
    for nudge in (new32, torch.nextafter(new32, new32 + 1), torch.nextafter(new32, new32 - 1)):
        lo, hi = _neighbours(nudge.contiguous())
        ok |= (out == lo) | (out == hi)
    assert ok.all()
    # both neighbours are used, in about the right proportion
    lo, hi = _neighbours(new32)
    frac = ((new32 - lo) / (hi - lo)).double()
    went_up = (out == hi).double()
    assert abs(went_up.mean() - frac.mean()) < 0.05
    # deterministic given (seed, step)
    p_again = p.clone()
    sr.adamw_bf16_stochastic_(p_again, grad, m.clone(), v.clone(), step=3, seed=11, block=512, **HYPER)
    assert torch.equal(p_again, p_k)
    p_other = p.clone()
    sr.adamw_bf16_stochastic_(p_other, grad, m.clone(), v.clone(), step=4, seed=11, block=512, **HYPER)
    assert not torch.equal(p_other, p_k)


def _train(opt_factory, steps, model_seed=0, resume_at=None, tmp_path=None):
    """A few steps of a tiny bf16 least-squares problem; optionally checkpoint + restore mid-way."""
    g = torch.Generator().manual_seed(model_seed)
    w = torch.nn.Parameter(torch.randn(16, 8, generator=g).to(torch.bfloat16))
    b = torch.nn.Parameter(torch.zeros(16, dtype=torch.bfloat16))
    data = torch.randn(steps, 32, 8, generator=g).to(torch.bfloat16)
    opt = opt_factory([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}])
    for s in range(steps):
        if resume_at is not None and s == resume_at:
            ck = roundtrip(tmp_path, {"opt": opt.state_dict(), "w": w.detach(), "b": b.detach()})
            w = torch.nn.Parameter(ck["w"].clone())
            b = torch.nn.Parameter(ck["b"].clone())
            opt = opt_factory([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}])
            opt.load_state_dict(ck["opt"])
            assert opt.state[w]["exp_avg"].dtype == torch.float32
        loss = ((data[s] @ w.t() + b).float() ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return w.detach(), b.detach(), opt


@pytest.mark.parametrize("use_triton", [False, True])
def test_optimizer_deterministic_and_resumes_exactly(use_triton, tmp_path):
    if use_triton:
        _skip_unless_interpreter()
    factory = lambda groups: sr.BF16AdamW(groups, lr=1e-2, seed=3, use_triton=use_triton)
    w1, b1, opt1 = _train(factory, 6)
    w2, b2, _ = _train(factory, 6)
    w3, b3, opt3 = _train(factory, 6, resume_at=3, tmp_path=tmp_path)
    assert torch.equal(w1, w2) and torch.equal(b1, b2)
    assert torch.equal(w1, w3) and torch.equal(b1, b3)
    s1 = opt1.state_dict()["state"]
    s3 = opt3.state_dict()["state"]
    for k in s1:
        assert s1[k]["step"] == s3[k]["step"] == 6
        assert torch.equal(s1[k]["exp_avg"], s3[k]["exp_avg"])
        assert torch.equal(s1[k]["exp_avg_sq"], s3[k]["exp_avg_sq"])
    # another seed rounds differently
    w4, _, _ = _train(lambda gr: sr.BF16AdamW(gr, lr=1e-2, seed=4, use_triton=use_triton), 6)
    assert not torch.equal(w1, w4)


def test_optimizer_rejects_fp32_params():
    with pytest.raises(TypeError):
        sr.BF16AdamW([torch.nn.Parameter(torch.zeros(3))])


def test_mix_seed_range_and_spread():
    seeds = {sr.mix_seed(42, step, i) for step in range(50) for i in range(20)}
    assert len(seeds) == 1000 and all(0 <= s < 2**31 for s in seeds)
