"""The Triton per-chunk cross-entropy kernel (chunked_classifier_loss impl="triton") on the CPU
under TRITON_INTERPRET=1, against plain_classifier_loss."""

from __future__ import annotations

import os

import pytest
import torch

# Triton picks its interpreter when first imported; switch it on first (only without a GPU)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.kernels._triton import triton_available  # noqa: E402
from gpt2train.kernels.fused_classifier import (
    chunked_classifier_loss,  # noqa: E402
    plain_classifier_loss,  # noqa: E402
)

V, VP, C = 97, 128, 16


@pytest.fixture(autouse=True)
def interpreter():
    if not triton_available():
        pytest.skip("triton is not installed")
    import triton.language.random as tl_random
    from triton.runtime.interpreter import InterpretedFunction

    if os.environ.get("TRITON_INTERPRET") != "1" or not isinstance(tl_random.randint, InterpretedFunction):
        pytest.skip("Triton's CPU interpreter is off (triton imported before TRITON_INTERPRET=1, or a GPU)")


def _inputs(n, dtype, seed, ignore_frac, vp=VP):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, C, generator=g).to(dtype)
    w = torch.randn(vp, C, generator=g).to(dtype)
    t = torch.randint(0, V, (n,), generator=g)
    t[torch.rand(n, generator=g) < ignore_frac] = -1
    t[0] = V - 1  # the last real column
    return x, w, t


def _run(fn, x, w, t):
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    loss = fn(x, w, t)
    loss.backward()
    return loss.detach(), x.grad, w.grad


@pytest.mark.parametrize("chunk_rows", [5, 64])
def test_fp32_matches_reference(chunk_rows):
    x, w, t = _inputs(23, torch.float32, seed=chunk_rows, ignore_frac=0.2)
    ref = _run(lambda a, b, c: plain_classifier_loss(a, b, c, V), x, w, t)
    got = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=chunk_rows, impl="triton"), x, w, t)
    for a, r in zip(got, ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-7)
    assert torch.count_nonzero(got[2][V:]) == 0


def test_bf16_matches_torch_impl_and_reference():
    x, w, t = _inputs(20, torch.bfloat16, seed=1, ignore_frac=0.1)
    ref = _run(lambda a, b, c: plain_classifier_loss(a, b, c, V), x, w, t)
    tor = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=8, impl="torch"), x, w, t)
    got = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=8, impl="triton"), x, w, t)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    for a, r, o in zip(got[1:], ref[1:], tor[1:]):
        assert a.dtype == torch.bfloat16
        # dlogits are rounded to bf16 from slightly different fp32 values: compare in norm
        for b in (r, o):
            assert ((a.double() - b.double()).norm() / b.double().norm()).item() < 1e-2


def test_multi_tile_rows_and_no_grad():
    """A vocabulary wider than one 4096-column tile, and the loss-only path."""
    from gpt2train.kernels import fused_classifier as fc

    x, w, t = _inputs(6, torch.float32, seed=2, ignore_frac=0.0, vp=VP)
    old = fc.CE_BLOCK
    fc.CE_BLOCK = 32  # force 4 tiles over Vp=128 (3 full + the padded tail over V=97)
    try:
        got = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=4, impl="triton"), x, w, t)
        with torch.no_grad():
            nog = chunked_classifier_loss(x, w, t, V, chunk_rows=4, impl="triton")
    finally:
        fc.CE_BLOCK = old
    ref = _run(lambda a, b, c: plain_classifier_loss(a, b, c, V), x, w, t)
    for a, r in zip(got, ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(nog, ref[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_softcap_matches_reference(dtype):
    """The modern recipe's soft-capped logits: loss and both gradients through c * tanh(l / c)."""
    x, w, t = _inputs(19, dtype, seed=3, ignore_frac=0.2)
    x = x * 3  # logits well past the cap, so the tanh's derivative matters
    ref = _run(lambda a, b, c: plain_classifier_loss(a, b, c, V, softcap=2.0), x.float(), w.float(), t)
    got = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=8, impl="triton", softcap=2.0), x, w, t)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for a, r in zip(got, ref):
        torch.testing.assert_close(a.float(), r, **tol)
    capped = plain_classifier_loss(x.float(), w.float(), t, V, softcap=2.0)
    assert not torch.isclose(capped, plain_classifier_loss(x.float(), w.float(), t, V))  # the cap changed the loss


@pytest.mark.parametrize("impl", ["triton", "torch"])
@pytest.mark.parametrize("bad_target", [V + 3, VP + 1000, 65535])
def test_target_outside_the_vocabulary_is_a_nan_loss_not_a_read_out_of_bounds(impl, bad_target):
    """A target id >= vocab_size (inside the padding, past the row, past the buffer) is masked, never loaded:
    the loss is NaN (fails loudly) and no gradient lands in a padded column."""
    x, w, t = _inputs(9, torch.float32, seed=3, ignore_frac=0.0)
    t[4] = bad_target
    loss, gx, gw = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=4, impl=impl), x, w, t)
    assert torch.isnan(loss)
    assert torch.count_nonzero(gw[V:]) == 0
    with torch.no_grad():
        assert torch.isnan(chunked_classifier_loss(x, w, t, V, chunk_rows=4, impl=impl))


@pytest.mark.parametrize("softcap", [0.0, 3.0])
def test_fp8_gradient_kernel_matches_torch(softcap):
    """--fp8-classifier's tiled kernel (softmax - onehot, scaled, written both ways) against the PyTorch gradient of
    the same logits. Written as fp32: the interpreter rounds to float8 otherwise than the GPU's round-to-nearest-even
    (bench/kernels_gpu_check.py --checks classifier compares the float8 bits on a GPU)."""
    from gpt2train.kernels import fused_classifier as fc

    g = torch.Generator().manual_seed(3)
    n, vp, v = 80, 200, 150  # two 64-row tiles and four 64-column ones, the last of each partial
    logits = torch.randn(n, vp, generator=g) * 4
    t = torch.randint(0, v, (n,), generator=g)
    t[::7] = -1
    t[1] = v - 1  # the last real column
    scale = (t != -1).float() * 1000.0
    stats = torch.full((2, n), float("nan"))
    loss_k, _ = fc._chunk_loss_and_dlogits_triton(logits.clone(), t, v, None, softcap, row_stats=stats)
    q, qt = torch.full((n, vp), float("nan")), torch.full((vp, n), float("nan"))
    fc._launch_fp8_grad(logits, stats, t, scale, v, softcap, q, qt)
    loss_r, ref = fc._chunk_loss_and_dlogits(logits.clone(), t, v, scale, softcap)
    torch.testing.assert_close(loss_k, loss_r, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(q, ref, rtol=1e-4, atol=1e-5)  # the soft-cap: tanh written otherwise
    assert torch.equal(qt, q.t())
    assert torch.count_nonzero(q[:, v:]) == 0 and torch.count_nonzero(q[::7]) == 0
    fmax = torch.finfo(fc.FP8_GRAD).max
    fc._launch_fp8_grad(logits, stats, t, scale * 1e3, v, softcap, q, qt)  # past e5m2's range: clamped
    assert q.abs().max().item() == fmax and torch.equal(qt, q.t())
    # --fp8-classifier 4: the softmax alone, the target's term (_target_term) left to the caller
    fc._launch_fp8_grad(logits, stats, t, scale, v, softcap, q, qt, onehot=False)
    assert torch.equal(qt, q.t()) and bool((q >= 0).all())
    safe, coef = fc._target_term(logits, t, v, scale, softcap)  # with it added back: the whole gradient again
    torch.testing.assert_close(q.scatter_add(1, safe.unsqueeze(1), coef.unsqueeze(1)), ref, rtol=1e-4, atol=1e-5)
    assert torch.count_nonzero(q[::7]) == 0 and torch.count_nonzero(coef[::7]) == 0  # ignored rows: nothing
    # --fp8-classifier 4's copy for dx: the same softmax, each row scaled so that its largest probability,
    # exp(max - lse) from the loss pass, becomes e4m3's largest value; the transposed copy as without it
    rows, rows_t = torch.full((n, vp), float("nan")), torch.full((vp, n), float("nan"))
    fc._launch_fp8_grad(logits, stats, t, scale, v, softcap, rows, rows_t, onehot=False, row_scaled=True)
    assert torch.equal(rows_t, qt)
    lse, row_max = fc._row_stats(logits, v, softcap)
    torch.testing.assert_close(stats, torch.stack([lse, row_max]), rtol=1e-5, atol=1e-5)
    rmax = torch.finfo(fc.FP8_ROWS).max
    valid = t != -1
    want = q[valid] / scale[valid, None] * (rmax / torch.exp(row_max - lse))[valid, None]
    torch.testing.assert_close(rows[valid], want, rtol=1e-4, atol=1e-4)
    assert torch.count_nonzero(rows[~valid]) == 0 and bool((rows <= rmax).all())
    if not softcap:  # each valid row reaches the top of e4m3's range (under the cap, times 1 - tanh^2 there)
        torch.testing.assert_close(rows[valid].amax(1), torch.full((int(valid.sum()),), rmax), rtol=1e-5, atol=0)


@pytest.mark.parametrize("mode", [2, 4])
def test_fp8_logits_through_the_cast_kernel_match_the_torch_path(mode):
    """--fp8-classifier 2 and 4 with impl="triton": x and W cast to e4m3 by kernels/fp8_cast.py's kernel, the loss
    and gradient by ce_grad_kernel (4: ce_grad_fp8_kernel without the target's term, added after), against the
    plain-PyTorch casts and gradient (the interpreter rounds to float8 otherwise than a GPU: compared in norm)."""
    x, w, t = _inputs(32, torch.bfloat16, seed=5, ignore_frac=0.1)
    tor = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=16, impl="torch", fp8=mode), x, w, t)
    got = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=16, impl="triton", fp8=mode), x, w, t)
    bf16 = _run(lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=16, impl="triton"), x, w, t)
    torch.testing.assert_close(got[0], tor[0], rtol=1e-3, atol=0)
    assert abs(got[0] - bf16[0]) > 1e-2  # the logits did come from float8 copies
    # 2: within bf16's rounding of the gradient (0.6%) of the PyTorch path; the bf16 logits' gradients are 5-6% away.
    # 4: the interpreter rounds the e5m2 gradient otherwise than PyTorch does (mode 1's paths differ by 4-5% too)
    for a, o in zip(got[1:], tor[1:]):
        err = ((a.double() - o.double()).norm() / o.double().norm()).item()
        assert a.dtype == torch.bfloat16 and err < (2e-2 if mode == 2 else 8e-2)


def _e5m2_neighbours(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two e5m2 values around fp32 ``v`` (normal range): its bits cut below e5m2's 2 mantissa bits, and the next
    value away from zero."""
    low = (v.view(torch.int32) & -(1 << 21)).view(torch.float32)
    high = ((v.view(torch.int32) & -(1 << 21)) + (1 << 21)).view(torch.float32)
    return low, high


def test_stochastic_rounding_is_to_a_neighbour_and_unbiased():
    """--fp8-classifier 3's rounding (stochastic_round_e5m2, the reference): each value goes to one of its two e5m2
    neighbours, exact values stay, and over many draws the mean is the value (unbiased), of either sign."""
    from gpt2train.kernels.fused_classifier import stochastic_round_e5m2

    g = torch.Generator().manual_seed(0)
    v = torch.tensor([0.3, -0.3, 1.0, -0.7, 1234.5, 0.11])
    draws = 20000
    noise = torch.randint(0, 1 << 21, (draws, v.numel()), generator=g, dtype=torch.int32)
    r = stochastic_round_e5m2(v.expand(draws, -1).contiguous(), noise)
    low, high = _e5m2_neighbours(v.abs())
    low, high = low * v.sign(), high * v.sign()
    assert bool(((r == low) | (r == high)).all())
    assert torch.equal(r[:, 2], torch.full((draws,), 1.0))  # exact in e5m2: unchanged
    torch.testing.assert_close(r.double().mean(0), v.double(), rtol=5e-3, atol=0)
    assert torch.equal(r.to(torch.float8_e5m2).float(), r)  # representable: the cast is exact


def test_fp8_gradient_kernel_rounds_stochastically():
    """ce_grad_fp8_kernel with a seed: every value of the gradient on one of the two e5m2 neighbours of the
    to-nearest kernel's fp32 value, the same in both layouts, the same for the same seed and not for another, and
    on average over seeds the unrounded value."""
    from gpt2train.kernels import fused_classifier as fc

    g = torch.Generator().manual_seed(4)
    n, vp, v = 64, 128, 100
    logits = torch.randn(n, vp, generator=g) * 3
    t = torch.randint(0, v, (n,), generator=g)
    scale = torch.full((n,), 3000.0)
    stats = torch.full((2, n), float("nan"))
    fc._chunk_loss_and_dlogits_triton(logits.clone(), t, v, None, 0.0, row_stats=stats)
    exact, exact_t = torch.empty(n, vp), torch.empty(vp, n)
    fc._launch_fp8_grad(logits, stats, t, scale, v, 0.0, exact, exact_t)

    def rounded(seed):
        q, qt = torch.empty(n, vp), torch.empty(vp, n)
        fc._launch_fp8_grad(logits, stats, t, scale, v, 0.0, q, qt, torch.tensor([seed]))
        assert torch.equal(qt, q.t())
        return q

    q1, q1b, q2 = rounded(11), rounded(11), rounded(12)
    normal = exact.abs() >= 2.0**-14  # e5m2's subnormals round to nearest after the cut
    low, high = _e5m2_neighbours(exact.abs())
    on = (q1.abs() == low) | (q1.abs() == high)
    assert bool(on[normal].all()) and torch.equal(q1.sign()[normal], exact.sign()[normal])
    assert torch.equal(q1, q1b) and not torch.equal(q1, q2)
    mean = torch.stack([rounded(s) for s in range(64)]).double().mean(0)
    big = exact.abs() > 1.0
    rel = ((mean - exact.double())[big].norm() / exact.double()[big].norm()).item()
    spread = ((q1.double() - exact.double())[big].norm() / exact.double()[big].norm()).item()
    assert rel < spread / 4, (rel, spread)  # the draws' errors cancel: unbiased


_FP8_GRAD_COMPILE = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gpt2train.kernels import fused_classifier as fc

fn = fc._ce_kernel(False)[1]
names = ["logits_ptr", "stride_row", "lse_ptr", "max_ptr", "targets_ptr", "row_scale_ptr", "seed_ptr", "g_ptr",
         "gt_ptr", "n", "V", "Vp", "softcap", "fmax", "row_fmax"]
for stochastic, onehot, row_scaled in ((False, True, False), (True, True, False), (False, False, True)):
    types = ["*bf16", "i32", "*fp32", "*fp32", "*i64", "*fp32", "*i64", "*fp8e4nv" if row_scaled else "*fp8e5",
             "*fp8e5", "i32", "i32", "i32", "fp32", "fp32", "fp32"]
    consts = dict(HAS_CAP=False, STOCHASTIC=stochastic, ONEHOT=onehot, ROW_SCALED=row_scaled, BLOCK_M=fc.FP8_TILE_M,
                  BLOCK_N=fc.FP8_TILE_N)
    sig = dict(zip(names, types), **{k: "constexpr" for k in consts})
    src = ASTSource(fn=fn, signature=sig, constexprs={(list(sig).index(k),): v for k, v in consts.items()})
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": fc.FP8_WARPS})
    assert "cubin" in kernel.asm, consts
print("compiled")
"""


def test_fp8_gradient_kernel_compiles_for_hopper():
    """ce_grad_fp8_kernel, rounding to nearest and stochastically, and without the target's term with its rows in
    e4m3 (--fp8-classifier 1, 3 and 4), compiles for sm_90 down to a cubin (no GPU needed)."""
    from tests.helpers import assert_compiles_for_hopper

    assert_compiles_for_hopper(_FP8_GRAD_COMPILE)
