"""FP8 matmuls for the blocks' linear layers (``--fp8 1``; on by default from d12 up on one Hopper GPU, ``--fp8 -1``):
Hopper's FP8 tensor cores through ``torch._scaled_mm``, with dynamic per-tensor scaling.

Forward, ``y = x @ W.T + b``: ``x`` and ``W`` are scaled so their largest magnitude lands on
float8_e4m3's largest value (448), cast to e4m3, and multiplied by ``_scaled_mm`` with the two scales,
accumulating in fp32 and writing bf16 (or fp32 outside autocast). Backward: the output gradient is
scaled to float8_e4m3 as well (``grad_dtype``; float8_e5m2, with more range and one mantissa bit less, is the
usual choice for gradients, but per-tensor scaling leaves e4m3 range enough, and e4m3 held the 200-step loss check
where e5m2 cost 0.007 on average, BENCHMARKS.md issue 21) and both gradient matmuls run in FP8 too:
``dx = dy @ W`` and ``dW = dy.T @ x``, from the e4m3 copies saved by the forward pass (one byte
per element where the plain path saves two). The bias, the LayerNorms, attention and the classifier stay
in bf16.

Pieces:

* :func:`fp8_linear_reference` -- the same arithmetic in plain PyTorch: the same FP8 operands, dequantized
  and multiplied in fp32 (the test oracle; the CPU has no FP8 matmul units).
* ``GRAD_FORMATS`` -- ``--fp8-grad``'s names for the output gradient's format.
* :func:`fp8_linear` -- the autograd function (``torch._scaled_mm``); compiled, the scaling, casting and
  transposes fuse into the neighbouring kernels.
* :func:`fp8_supported` -- whether a device runs it: CUDA capability 8.9 (Ada) or 9.0 (Hopper) and up,
  or the CPU (slow, for tests).

Two backward options, off by default: ``backward_fast_accum`` (``--fp8 2``) lets the gradient matmuls accumulate
in FP8's fast mode (the forward always does; torchao keeps the gradients exact), and ``weight_grad_bf16``
(``--fp8-bf16 weight-grads``) computes dW in a bf16 matmul from dy and the saved e4m3 input, which needs no
transposed FP8 copy of dy and keeps dy's full precision. ``cast_kernel`` (``--fp8-cast-kernel``, on by default on
CUDA) casts every operand with kernels/fp8_cast.py's one-pass kernel, fp32 ones rounded to bf16 first, instead of
leaving the casts to Inductor. ``histories``
(``--fp8-scaling delayed``) scales x and dy by the amaxes of the previous calls (:func:`delayed_amax`), recorded by
the casts themselves, instead of a pass over each tensor first.

``_scaled_mm`` wants both inner dimensions and the output width divisible by 16 (GPT-2's are); other shapes
fall back to the plain matmul, as does anything run without gradients (evaluation and sampling are bf16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt2train.kernels import fp8_cast
from gpt2train.kernels.fp8_cast import KERNEL_SOURCES, cast_then_transpose, cast_transpose, cast_transpose_reference
from gpt2train.kernels.fp8_layernorm import layer_norm_backward, ln_cast_transpose_kernel

E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2
GRAD_FORMATS = {"e4m3": E4M3, "e5m2": E5M2}  # --fp8-grad: the output gradient's float8 format
# delayed scaling, before any amax is recorded (the first micro-step after a start): inputs quantized as they are
# (scale 1 in e4m3); a gradient's window (e4m3 spans 2^17, e5m2 2^30) from 1/16 down, far above a mean-reduced
# loss's gradients
FIRST_AMAX_X = torch.finfo(E4M3).max
FIRST_AMAX_GRAD = 2.0**-4


def fp8_supported(device: torch.device) -> bool:
    """FP8 matmuls on ``device``: Ada/Hopper or newer CUDA cards, or the CPU (emulated by torch, slow)."""
    if device.type == "cpu":
        return hasattr(torch, "_scaled_mm")
    if device.type != "cuda":
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def quantize(t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``t`` scaled so its largest magnitude is ``dtype``'s largest value, cast to ``dtype``; returns
    (fp8 tensor, fp32 dequantization scale), so ``fp8.float() * scale`` approximates ``t``."""
    q, _, inv = quantize_transposed(t, dtype, transpose=False)
    return q, inv


def quantize_transposed(t: torch.Tensor, dtype: torch.dtype, transpose: bool = True, kernel: int = 0,
                        history: torch.Tensor | None = None, first_amax: float = FIRST_AMAX_X,
                        column_sums: bool = False) -> tuple[torch.Tensor | None, ...]:  # fmt: skip
    """:func:`quantize` of a matrix ``t`` (M, N), the FP8 copy also transposed, (N, M) contiguous: (fp8, fp8
    transposed or None, fp32 dequantization scale). ``kernel`` 1: both from one pass of kernels/fp8_cast.py's kernel,
    an fp32 ``t`` rounded to bf16 first (as autocast rounds a bf16 matmul's operands; the kernel's transposed copy
    from fp32 was wrong on an H200); 2: the same bytes, the cast in plain PyTorch (fused by Inductor into ``t``'s
    producer) and its transpose by the kernel (:func:`~gpt2train.kernels.fp8_cast.cast_then_transpose`); 0: plain
    PyTorch from ``t`` as it is, which Inductor fuses with ``t``'s producer. ``history``:
    delayed scaling (:func:`delayed_amax`, ``first_amax`` before any record) instead of ``t``'s own amax.
    ``column_sums``: a fourth element, ``t``'s column sums in fp32 (a bias gradient), from the kernel's own pass
    where ``kernel`` is 1 with the transposed copy, else summed in PyTorch."""
    if kernel and t.dtype not in KERNEL_SOURCES:
        t = t.to(torch.bfloat16)
    if history is None:
        fmax = torch.finfo(dtype).max
        amax = t.detach().abs().amax().float().clamp(min=1e-12)
        scale, record, inverse = fmax / amax, None, amax / fmax
    else:
        scale, record, inverse = delayed_scale(history, dtype, first_amax)
    t = t.detach()
    # the cast clamps: t * scale can round past fmax, and e4m3fn has no infinity (it would become NaN)
    if column_sums and int(kernel) == 1 and transpose:
        q, qt, sums = fp8_cast.grad_cast_transpose_kernel(t, scale, dtype, record)  # t is bf16 here (above)
        return q, qt, inverse, sums
    cast = {0: cast_transpose_reference, 1: cast_transpose, 2: cast_then_transpose}[int(kernel)]
    q, qt = cast(t, scale, dtype, transpose, record)
    return (q, qt, inverse, t.float().sum(0)) if column_sums else (q, qt, inverse)


AMAX_HISTORY = 16  # delayed scaling: the calls (micro-steps) whose largest |value| sets the next call's scale


def amax_history(device: torch.device | str | None = None) -> torch.Tensor:
    """A fresh delayed-scaling state for one operand: slot 0 records this call's amax, 1.. the previous calls'."""
    return torch.zeros(AMAX_HISTORY + 1, dtype=torch.float32, device=device)


def delayed_amax(history: torch.Tensor, first_amax: float) -> torch.Tensor:
    """Delayed scaling: the amax to scale by, from the previous calls' (TransformerEngine's recipe), so the cast
    needs no pass over its input first. Shifts ``history`` in place (the last call's record into the history,
    slot 0 zeroed for the cast to record into) and returns its largest entry, or ``first_amax`` before any."""
    history.copy_(torch.cat([history.new_zeros(1), history[:-1]]))
    amax = history[1:].amax()
    return torch.where(amax > 0, amax, first_amax)  # a Python scalar: no tensor made (or copied) a call


def delayed_scale(history: torch.Tensor, dtype: torch.dtype, first_amax: float,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Delayed scaling's (scale, record, dequantization scale) for the next cast to ``dtype``: the scale from
    :func:`delayed_amax`, and the slot the cast records this call's amax into."""
    fmax = torch.finfo(dtype).max
    amax = delayed_amax(history, first_amax)
    return fmax / amax, history[0], amax / fmax


def input_operand(x2: torch.Tensor, cast_kernel: int, history: torch.Tensor | None, norm: tuple | None = None,
                  residual: torch.Tensor | None = None,
                  ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:  # fmt: skip
    """A linear's input ``x2`` (M, K) as its FP8 matmuls take it: ((e4m3, e4m3 transposed, dequantization scale),
    what the LayerNorm's backward needs). ``norm`` (``--fp8-norm-cast``): the LayerNorm before the linear, (weight,
    bias or None, eps); ``x2`` is then its input, normalized in the cast's own pass (kernels/fp8_layernorm.py, delayed
    scaling only) and saved with the statistics for :func:`input_gradient`; with ``residual`` (M, K) the LayerNorm's
    input is ``x2 + residual``, summed in the same pass, and the second element starts with that sum (the new
    residual stream). Without ``norm``, :func:`quantize_transposed`."""
    if norm is None:
        return quantize_transposed(x2, E4M3, kernel=cast_kernel, history=history, first_amax=FIRST_AMAX_X), ()
    weight, bias, eps = norm
    scale, record, inverse = delayed_scale(history, E4M3, FIRST_AMAX_X)
    q, qt, s, mean, rstd = ln_cast_transpose_kernel(x2.detach(), None if residual is None else residual.detach(),
                                                    weight.detach(), None if bias is None else bias.detach(), eps,
                                                    scale, E4M3, record)  # fmt: skip
    return (q, qt, inverse), (x2 if residual is None else s, weight, mean, rstd)


def input_gradient(dx: torch.Tensor, norm_saved: tuple, norm_bias: bool) -> tuple[torch.Tensor | None, ...]:
    """(the gradient of the function's input, its LayerNorm's weight's and bias's or Nones) from the linear's input
    gradient ``dx`` (M, K): through the LayerNorm's backward where :func:`input_operand` normalized (``norm_saved``)."""
    if not norm_saved:
        return dx, None, None
    x2, weight, mean, rstd = norm_saved
    dx, dweight, dbias = layer_norm_backward(dx, x2, weight, mean, rstd)
    return dx, dweight, dbias if norm_bias else None


def scaled_mm(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor, out_dtype: torch.dtype,
              use_fast_accum: bool = False, bias: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``torch._scaled_mm(a, b, ...)``, ``a @ b`` of FP8 matrices times their dequantization scales, plus ``bias``
    (bf16 or fp16, out_dtype's) added in fp32 in the matmul's epilogue, written in ``out_dtype``. On the CPU the same
    from the FP8 values in fp32 (each exact there), where oneDNN runs its reference implementation on some CPUs
    (AVX10.1 with AMX: 14 s for one 128x64 by 64x50304 product)."""
    if a.is_cuda:
        return torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, bias=bias, out_dtype=out_dtype,
                                use_fast_accum=use_fast_accum)  # fmt: skip
    y = (a.float() @ b.float()) * (scale_a * scale_b)
    return (y if bias is None else y + bias.float()).to(out_dtype)


def fp8_runs(x: torch.Tensor, *widths: int) -> bool:
    """Whether FP8 matmuls run on ``x`` (..., K) through layers of these output ``widths`` in turn: with gradients
    (evaluation and sampling stay bf16), and every dimension divisible by 16, as ``_scaled_mm`` wants."""
    m = x.numel() // x.shape[-1] if x.shape[-1] else 0
    return torch.is_grad_enabled() and all(d % 16 == 0 for d in (m, x.shape[-1], *widths))


def weight_operand(weight: torch.Tensor, copies: tuple, kernel: int) -> tuple[torch.Tensor, ...]:
    """(W in e4m3, W.T in e4m3, W's dequantization scale): ``copies`` if they were cast before the step's first
    micro-step (``--fp8-cache-weights``), else cast here. A weight is always scaled by its own amax: a small tensor,
    whose pass costs little."""
    return copies if copies[0] is not None else quantize_transposed(weight, E4M3, kernel=kernel)


def forward_matmul(xq: torch.Tensor, sx: torch.Tensor, wq: torch.Tensor, sw: torch.Tensor,
                   bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:  # fmt: skip
    """``x @ W.T + bias`` from their e4m3 copies, in FP8's fast accumulation, written in ``out_dtype``. mat2 must be
    column-major: wq is (N, K) row-major, so wq.t() is (K, N) column-major as it stands. A bf16 or fp16 output takes
    the bias in the matmul's epilogue (a separate add cost d12's step 13.6 ms on an H200 for c_attn alone)."""
    if bias is None or out_dtype not in (torch.bfloat16, torch.float16):
        y = scaled_mm(xq, wq.t(), sx, sw, out_dtype, use_fast_accum=True)
        return y if bias is None else y + bias.to(out_dtype)
    return scaled_mm(xq, wq.t(), sx, sw, out_dtype, use_fast_accum=True, bias=bias.to(out_dtype))


def backward_matmuls(gq: torch.Tensor, gqt: torch.Tensor | None, sg: torch.Tensor, xqt: torch.Tensor,
                     sx: torch.Tensor, wqt: torch.Tensor, sw: torch.Tensor, dx_dtype: torch.dtype,
                     weight_dtype: torch.dtype, fast_accum: bool) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """(dx, dW) from the output gradient's e4m3 copies (``gqt`` None: no dW here) and the forward's saved ones:
    dx = dy @ W, W as (N, K) column-major, which W.T (K, N) row-major is; dW = dy.T @ x, dy.T row-major, x
    column-major (x.T row-major)."""
    dx = scaled_mm(gq, wqt.t(), sg, sw, dx_dtype, use_fast_accum=fast_accum)
    dw = None if gqt is None else scaled_mm(gqt, xqt.t(), sg, sx, weight_dtype, use_fast_accum=fast_accum)
    return dx, dw


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class _FP8Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype,
                backward_fast_accum: bool, weight_grad_bf16: bool, cast_kernel: int, grad_dtype: torch.dtype,
                x_history: torch.Tensor | None, grad_history: torch.Tensor | None, wq: torch.Tensor | None,
                wqt: torch.Tensor | None, sw: torch.Tensor | None, norm_weight: torch.Tensor | None,
                norm_bias: torch.Tensor | None, norm_eps: float | None):  # fmt: skip
        x2 = x.reshape(-1, x.shape[-1])
        # each operand K-major for every matmul it enters: x (M, K) here, x.T (K, M) for dW; W (N, K) here,
        # W.T (K, N) for dx. Only the backward's copies are kept (as many bytes as the forward's)
        norm = None if norm_eps is None else (norm_weight, norm_bias, norm_eps)
        (xq, xqt, sx), norm_saved = input_operand(x2, cast_kernel, x_history, norm)
        wq, wqt, sw = weight_operand(weight, (wq, wqt, sw), cast_kernel)
        y = forward_matmul(xq, sx, wq, sw, bias, out_dtype)
        ctx.save_for_backward(xqt, sx, wqt, sw, grad_history, *norm_saved)
        ctx.has_bias, ctx.norm_bias = bias is not None, norm_bias is not None
        ctx.weight_dtype = weight.dtype
        ctx.x_dtype = x.dtype
        ctx.fast_accum, ctx.weight_grad_bf16, ctx.cast_kernel = backward_fast_accum, weight_grad_bf16, cast_kernel
        ctx.grad_dtype = grad_dtype
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        xqt, sx, wqt, sw, grad_history, *norm_saved = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1]).contiguous()  # _scaled_mm's first operand must be row-major
        # with a bias, its gradient (dy's column sums) from the cast's pass over dy where the kernel runs
        gq, gqt, sg, *db = quantize_transposed(dy2, ctx.grad_dtype, transpose=not ctx.weight_grad_bf16,
                                               kernel=ctx.cast_kernel, history=grad_history,
                                               first_amax=FIRST_AMAX_GRAD, column_sums=ctx.has_bias)  # fmt: skip
        dx, dw = backward_matmuls(gq, gqt, sg, xqt, sx, wqt, sw, dy.dtype, ctx.weight_dtype, ctx.fast_accum)
        if ctx.weight_grad_bf16:  # dW = dy.T @ x in dy's dtype; e4m3 values are exact in bf16, the scale after
            dw = (dy2.t() @ xqt.t().to(dy2.dtype)).float().mul_(sx).to(ctx.weight_dtype)
        db = db[0].to(ctx.weight_dtype) if ctx.has_bias else None
        dx, dnorm_weight, dnorm_bias = input_gradient(dx, norm_saved, ctx.norm_bias)
        dx = dx.reshape(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        return dx, dw, db, *[None] * 10, dnorm_weight, dnorm_bias, None


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
               backward_fast_accum: bool = False, weight_grad_bf16: bool = False, cast_kernel: int = 0,
               grad_dtype: torch.dtype = E4M3, histories: tuple[torch.Tensor, torch.Tensor] | None = None,
               weight_copies: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
               norm: tuple | None = None) -> torch.Tensor:  # fmt: skip
    """``F.linear(x, weight, bias)`` with its matmuls in FP8 (see the module docstring, also for the two
    backward options; ``cast_kernel``: :func:`quantize_transposed`'s; ``grad_dtype``: the output gradient's float8
    format, E4M3 or E5M2; ``histories``: delayed scaling of x and
    of the output gradient, two :func:`amax_history` states; ``weight_copies``: ``weight``'s
    :func:`quantize_transposed` made beforehand, as ``--fp8-cache-weights`` makes it once a step instead of once a
    micro-step; ``norm``: :func:`input_operand`'s, ``F.linear(layer_norm(x), ...)`` with the norm inside the cast,
    which needs ``histories``); the plain ``F.linear`` without gradients or where the shapes do not suit
    ``_scaled_mm`` (where the caller normalizes: ``norm`` is then not applied)."""
    if not fp8_runs(x, weight.shape[0]):
        return F.linear(x, weight, bias)
    return _FP8Linear.apply(x, weight, bias, _out_dtype(x), backward_fast_accum, weight_grad_bf16, cast_kernel,
                            grad_dtype, *(histories or (None, None)), *(weight_copies or (None, None, None)),
                            *(norm or (None, None, None)))  # fmt: skip


def fp8_linear_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The forward arithmetic of :func:`fp8_linear` in plain PyTorch: the same e4m3 operands and scales,
    dequantized and multiplied in fp32, then cast as ``fp8_linear`` casts. Differentiable through the
    dequantized values (the backward's own float8 rounding of dy is not modelled)."""
    out_dtype = _out_dtype(x)
    x2 = x.reshape(-1, x.shape[-1])
    xq, sx = quantize(x2, E4M3)
    wq, sw = quantize(weight, E4M3)
    # straight-through: the values are the dequantized FP8 ones, the gradient flows to x and weight
    xd = x2.float() + (xq.float() * sx - x2.float()).detach()
    wd = weight.float() + (wq.float() * sw - weight.float()).detach()
    y = (xd @ wd.t()).to(out_dtype)
    if bias is not None:
        y = y + bias.to(out_dtype)
    return y.reshape(*x.shape[:-1], weight.shape[0])
