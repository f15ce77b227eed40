"""The LayerNorm fused into the FP8 cast (kernels/fp8_layernorm.py): the Triton kernel on the CPU under
TRITON_INTERPRET=1 against ln_cast_transpose_reference (edge tiles, the residual add, the bias, bf16 and fp32 inputs,
the scale and clamp, the programs' loop, the amax record), the reference against the unfused arithmetic, and the
custom op (the reference off CUDA) as torch.library and torch.compile see it."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

# Triton picks its interpreter when first imported; switch it on first (only without a GPU)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.kernels import fp8_cast, fp8_layernorm  # noqa: E402
from gpt2train.kernels._triton import interpreting, triton_available  # noqa: E402
from gpt2train.kernels.fp8_linear import E4M3, E5M2  # noqa: E402
from tests.helpers import assert_compiles_for_hopper  # noqa: E402

EPS = 1e-5  # nn.LayerNorm's
FMAX = torch.finfo(E4M3).max  # the clamp, applied to the interpreter tests' fp32 outputs


def _inputs(rows, cols, seed, dtype=torch.bfloat16, residual=True, bias=True):
    """x, residual (or None), weight, bias (or None): an off-centre row stream, and one element whose LayerNorm
    output times the weight there passes e4m3's 448 once scaled by 0.75 (the clamp is exercised)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=gen) * 2 + 0.5
    x[rows // 2, cols // 3] = 60.0
    r = torch.randn(rows, cols, generator=gen) * 3 if residual else None
    w = torch.randn(cols, generator=gen) * 0.2 + 1
    w[cols // 3] = 150.0
    b = torch.randn(cols, generator=gen) * 0.3 if bias else None
    return x.to(dtype), (None if r is None else r.to(dtype)), w, b


def _skip_without_interpreter():
    if not (triton_available() and interpreting()):
        pytest.skip("needs Triton's CPU interpreter (TRITON_INTERPRET=1 before triton is imported) or a GPU")


def _run(x, r, w, b, scale, amax=None, **launch):
    """The kernel into fp32 outputs (NaN-filled: an element left unwritten shows), clamped to e4m3's range: the
    interpreter rounds to FP8 otherwise than the GPU's round-to-nearest-even, so the FP8 rounding is left out."""
    m, c = x.shape
    q, qt = torch.full((m, c), float("nan")), torch.full((c, m), float("nan"))
    mean, rstd = torch.full((m,), float("nan")), torch.full((m,), float("nan"))
    s = torch.full((m, c), float("nan"), dtype=x.dtype) if r is not None else None
    fp8_layernorm._launch(x, r, w, b, EPS, scale, q, qt, mean, rstd, s, amax, fmax=FMAX, **launch)
    return q, qt, s, mean, rstd


# edge tiles both ways; the last column chunk partial; a whole row narrower than one chunk (lanes past C idle)
@pytest.mark.parametrize(
    "rows, cols, block_m, block_n", [(70, 45, 32, 16), (5, 130, 16, 64), (40, 96, 16, 64), (9, 24, 8, 32)]
)
@pytest.mark.parametrize("with_residual, with_bias", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("programs", [None, 2])  # one per row block; two looping over all blocks (as by SMs on a GPU)
def test_kernel_is_the_reference(rows, cols, block_m, block_n, with_residual, with_bias, source, programs):
    """Every element, in both layouts: LayerNorm of x (+ residual, summed and rounded as PyTorch adds in x's dtype),
    rounded to bf16, times the scale in fp32, clamped; edge tiles and the last, partial column chunk masked out of
    the statistics; the residual sum written bit for bit; mean and rstd as LayerNorm's; the amax record the
    reference's. Exact from the kernel's own statistics (the same fp32 arithmetic); against the reference's
    statistics (PyTorch's reduction order, a few fp32 ulps apart) a bf16 rounding may land one ulp apart."""
    _skip_without_interpreter()
    x, r, w, b = _inputs(rows, cols, seed=rows + cols, dtype=source, residual=with_residual, bias=with_bias)
    scale, amax, ref_amax = torch.tensor(0.75), torch.tensor(0.5), torch.tensor(0.5)
    q, qt, s, mean, rstd = _run(x, r, w, b, scale, amax, block_m=block_m, block_n=block_n, programs=programs)
    _, _, ref_s, ref_mean, ref_rstd = fp8_layernorm.ln_cast_transpose_reference(x, r, w, b, EPS, scale, E4M3, ref_amax)
    if with_residual:
        assert s.dtype == source and torch.equal(s, ref_s)
    else:
        assert ref_s is None
    torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rstd, ref_rstd, rtol=1e-5, atol=0)
    summed = (x if r is None else ref_s).float()
    y = (summed - mean[:, None]) * rstd[:, None] * w
    y16 = (y if b is None else y + b).to(torch.bfloat16).float()
    assert torch.equal(q, (y16 * scale).clamp(-FMAX, FMAX)) and torch.equal(qt, q.t())
    assert (q.abs() == FMAX).any() and (y16 * scale).abs().max() > FMAX  # the clamp was exercised
    ref = F.layer_norm(summed, (cols,), w, b, EPS).to(torch.bfloat16).float()
    off = q != (ref * scale).clamp(-FMAX, FMAX)
    assert off.sum() <= max(1, q.numel() // 500), off.sum()
    assert ((y16 - ref).abs()[off] <= ref.abs()[off] * 2**-7).all()  # one bf16 ulp at most
    assert amax == ref_amax == y16.abs().max() and amax > 0.5


@pytest.mark.parametrize("programs", [1, 3])
def test_kernel_records_the_largest_magnitude(programs):
    """Delayed scaling's record: the kernel raises ``amax`` to the largest |y| wherever it lies (here in the last,
    partial tile), whichever program's loop visits it, and never lowers it; without ``amax`` none is recorded."""
    _skip_without_interpreter()
    x, r, w, b = _inputs(70, 45, seed=1)
    x[69, 44], w[15], w[44] = -60.0, 1.0, 300.0  # the largest |y|: the last row, the last column
    scale = torch.tensor(0.5)
    amax = torch.tensor(5.0)
    _run(x, r, w, b, scale, amax, block_m=32, block_n=16, programs=programs)
    want = torch.tensor(0.0)
    fp8_layernorm.ln_cast_transpose_reference(x, r, w, b, EPS, scale, E4M3, want)
    y = F.layer_norm((x + r).float(), (45,), w, b, EPS).to(torch.bfloat16).float()
    assert amax == want == y[69, 44].abs() and want > 1000
    amax.fill_(1e5)
    _run(x, r, w, b, scale, amax, block_m=32, block_n=16, programs=programs)
    assert amax.item() == 1e5


def test_kernel_casts_to_the_formats_range():
    """Into e4m3 and e5m2 outputs: clamped to the format's own largest value (not NaN), both layouts the same bytes,
    and every value the format holds exactly written exactly. (Only those: Triton 3.9's interpreter rounds to FP8
    otherwise than the GPU, and a mantissa that rounds up past its top bit comes out halved, 127.9 as 64.)"""
    _skip_without_interpreter()
    x, r, w, b = _inputs(40, 96, seed=2)
    # every other column's output is its bias alone, a value both formats hold once scaled by a power of 2
    w[1::2], b[1::2] = 0.0, torch.tensor([0.5, -1.0, 1.5, -3.0]).repeat(12)
    for dtype, scale in ((E4M3, torch.tensor(0.5)), (E5M2, torch.tensor(64.0))):
        q, qt = torch.empty(40, 96, dtype=dtype), torch.empty(96, 40, dtype=dtype)
        mean, rstd, s = torch.empty(40), torch.empty(40), torch.empty_like(x)
        fp8_layernorm._launch(x, r, w, b, EPS, scale, q, qt, mean, rstd, s, block_m=16, block_n=32)
        y16 = F.layer_norm((x + r).float(), (96,), w, b, EPS).to(torch.bfloat16).float()
        want = (y16 * scale).clamp(-torch.finfo(dtype).max, torch.finfo(dtype).max)
        exact = want.to(dtype).float() == want
        assert exact.float().mean() >= 0.5 and torch.equal(q.float()[exact], want[exact])
        assert torch.equal(qt.view(torch.uint8), q.t().view(torch.uint8))
        assert not q.float().isnan().any() and q.float().abs().max() == torch.finfo(dtype).max


@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("with_residual", [True, False])
def test_reference_is_the_unfused_arithmetic(source, with_residual):
    """The reference casts what the unfused path casts: F.layer_norm (in fp32, as CUDA's bf16 autocast runs it) of x +
    residual added in x's dtype, rounded to bf16, cast by cast_transpose_reference with the amax recorded; the
    statistics are LayerNorm's (mean, 1 / sqrt(biased variance + eps)), the sum returned only with a residual."""
    x, r, w, b = _inputs(33, 48, seed=3, dtype=source, residual=with_residual)
    scale, amax, want_amax = torch.tensor(4.0), torch.tensor(0.0), torch.tensor(0.0)
    q, qt, s, mean, rstd = fp8_layernorm.ln_cast_transpose_reference(x, r, w, b, EPS, scale, E4M3, amax)
    summed = x if r is None else x + r
    y = F.layer_norm(summed.float(), (48,), w, b, EPS)  # in fp32, as CUDA's bf16 autocast runs it
    wq, wqt = fp8_cast.cast_transpose_reference(y.to(torch.bfloat16), scale, E4M3, True, want_amax)
    assert q.dtype == E4M3 and q.shape == (33, 48) and qt.shape == (48, 33) and qt.is_contiguous()
    assert torch.equal(q.view(torch.uint8), wq.view(torch.uint8)) and torch.equal(qt.view(torch.uint8),
                                                                                    wqt.view(torch.uint8))  # fmt: skip
    assert amax == want_amax == y.to(torch.bfloat16).float().abs().max()
    assert (s is None) == (r is None) and (s is None or (s.dtype == source and torch.equal(s, summed)))
    assert mean.shape == rstd.shape == (33,) and mean.dtype == rstd.dtype == torch.float32
    torch.testing.assert_close(mean, summed.float().mean(1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rstd, (summed.float().var(1, correction=0) + EPS).rsqrt(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("with_residual", [True, False])
def test_op_off_cuda_is_the_reference(with_residual):
    """The custom op on CPU tensors: the reference's bytes, shapes and statistics, the amax written in place (the
    caller sees it), an empty tensor for the sum without a residual."""
    x, r, w, b = _inputs(24, 32, seed=4, residual=with_residual)
    scale, amax, want_amax = torch.tensor(2.0), torch.tensor(0.0), torch.tensor(0.0)
    q, qt, s, mean, rstd = fp8_layernorm.ln_cast_transpose_kernel(x, r, w, b, EPS, scale, E4M3, amax)
    wq, wqt, ws, wmean, wrstd = fp8_layernorm.ln_cast_transpose_reference(x, r, w, b, EPS, scale, E4M3, want_amax)
    assert q.dtype == qt.dtype == E4M3 and q.shape == (24, 32) and qt.shape == (32, 24)
    assert torch.equal(q.view(torch.uint8), wq.view(torch.uint8)) and torch.equal(qt.view(torch.uint8),
                                                                                    wqt.view(torch.uint8))  # fmt: skip
    assert torch.equal(mean, wmean) and torch.equal(rstd, wrstd) and amax == want_amax > 0
    assert torch.equal(s, ws) if with_residual else s.shape == (0,)
    assert fp8_layernorm.ln_cast_transpose_kernel is torch.ops.gpt2train.fp8_ln_cast_transpose.default


def test_opcheck():
    """torch.library.opcheck: the schema matches what the op does (the amax write declared), the shape function
    matches its outputs, and it dispatches under AOTAutograd as torch.compile runs it."""
    x, r, w, b = _inputs(32, 16, seed=5)
    tests = ["test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"]
    for args in [(x, r, w, b, EPS, torch.tensor(2.0), E4M3, torch.zeros(())),
                 (x, None, w.to(torch.bfloat16), None, EPS, torch.tensor(0.5), E5M2, None)]:  # fmt: skip
        torch.library.opcheck(torch.ops.gpt2train.fp8_ln_cast_transpose.default, args, test_utils=tests)


def test_compiled_op_writes_and_returns_as_eager():
    """Under torch.compile (one graph): the op's outputs and its amax write equal eager's, their shapes and dtypes
    from the fake registration."""
    x, r, w, b = _inputs(64, 32, seed=6)
    scale = torch.tensor(4.0)

    def f(x, r, amax):
        q, qt, s, mean, rstd = fp8_layernorm.ln_cast_transpose_kernel(x * 2, r, w, b, EPS, scale, E4M3, amax)
        return q, qt, s + 1, mean, rstd

    eager_amax, compiled_amax = torch.zeros(()), torch.zeros(())
    want = f(x, r, eager_amax)
    try:
        got = torch.compile(f, backend="aot_eager", fullgraph=True)(x, r, compiled_amax)
    finally:
        torch._dynamo.reset()
    for g, e in zip(got, want):
        assert g.dtype == e.dtype and g.shape == e.shape
        assert torch.equal(g.view(torch.uint8), e.view(torch.uint8)) if g.dtype == E4M3 else torch.equal(g, e)
    assert compiled_amax.item() == eager_amax.item() > 0


_COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gpt2train.kernels import fp8_layernorm

fn = fp8_layernorm._kernel(False)
names = ["x_ptr", "r_ptr", "s_ptr", "w_ptr", "b_ptr", "scale_ptr", "q_ptr", "qt_ptr", "amax_ptr", "mean_ptr",
         "rstd_ptr", "M", "N", "eps", "fmax"]
for ptrs, consts in [
    # ln_1 (no residual before it) and ln_2 (after attention's residual add), fp32 weights, e4m3, the amax record
    (["*bf16"] * 3 + ["*fp32"] * 3 + ["*fp8e4nv"] * 2 + ["*fp32"] * 3, dict(RESIDUAL=False, AMAX=True)),
    (["*bf16"] * 3 + ["*fp32"] * 3 + ["*fp8e4nv"] * 2 + ["*fp32"] * 3, dict(RESIDUAL=True, AMAX=False)),
]:
    consts.update(ROUND_SUM=True, BIAS=True, ROUND_BITS=False, BLOCK_M=fp8_layernorm.BLOCK_M,
                  BLOCK_N=fp8_layernorm.BLOCK_N)
    sig = dict(zip(names, ptrs + ["i32", "i32", "fp32", "fp32"]), **{k: "constexpr" for k in consts})
    # as launched: pointers and sizes in multiples of 16 (Triton specializes on it)
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(names) if name not in ("scale_ptr", "eps",
                                                                                             "fmax", "amax_ptr")}
    src = ASTSource(fn=fn, signature=sig, constexprs={(list(sig).index(k),): v for k, v in consts.items()},
                    attrs=attrs)
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": fp8_layernorm.WARPS})
    assert "cubin" in kernel.asm, consts
    assert ("bar.sync" in kernel.asm["ptx"]) or not consts["RESIDUAL"]  # the sum's stores seen before it is read
print("compiled")
"""


def test_kernel_compiles_for_hopper():
    """The interpreter runs the kernel as Python; Triton's compiler is stricter. Both passes the trainer would
    launch (ln_1's, no residual; ln_2's, with the residual add) compile for sm_90 down to a cubin with the ptxas
    Triton ships, no GPU needed (in a process without TRITON_INTERPRET)."""
    assert_compiles_for_hopper(_COMPILE_FOR_HOPPER)


@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
def test_layer_norm_backward_is_autograds(source):
    """The backward from the statistics the forward returned: the gradients of the LayerNorm's input, weight and
    bias that autograd computes through F.layer_norm in fp32 (as bf16 autocast runs it), in the input's and the
    weight's dtypes."""
    x, r, w, b = _inputs(24, 40, seed=7, dtype=source)
    s = (x + r).requires_grad_()
    wg, bg = w.clone().requires_grad_(), b.clone().requires_grad_()
    dy = torch.randn(24, 40, generator=torch.Generator().manual_seed(8)).to(source)
    want = torch.autograd.grad(F.layer_norm(s.float(), (40,), wg, bg, EPS), (s, wg, bg), dy.float())
    _, _, _, mean, rstd = fp8_layernorm.ln_cast_transpose_reference(x, r, w, b, EPS, torch.tensor(1.0), E4M3)
    got = fp8_layernorm.layer_norm_backward(dy, s.detach(), w, mean, rstd)
    for g, e in zip(got, want):
        assert g.dtype == e.dtype and g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)
    assert got[1].abs().sum() > 0 and got[0].abs().sum() > 0
