"""The MLP of ``--fp8``'s blocks with GELU inside its FP8 casts (``--fp8-gelu-cast``).

Unfused, the MLP ``c_proj(gelu(c_fc(x)))`` with both linears in FP8 (kernels/fp8_linear.py) passes over its widest
tensors (4C a token) more often than the arithmetic needs. Forward: c_fc's matmul writes h, a fused kernel reads it
to add the bias and write GELU's output in bf16, and the cast kernel reads that to write c_proj's e4m3 input in both
layouts. Backward: c_proj's input-gradient matmul writes GELU's output gradient, a fused kernel reads it and h to
write c_fc's output gradient dh in bf16, the bias gradient reads dh, and the cast kernel reads it again for c_fc's
gradient matmuls. Here the cast kernel (kernels/fp8_cast.py, its GELU passes) does each side in one pass: from h
(before the bias) straight to the e4m3 copies of GELU's output; from h and the output gradient straight to dh's FP8
copies and the bias gradient's column sums: by our count 10 bytes an element of h between the matmuls, against
20-22 unfused.

Pieces:

* :func:`fp8_gelu_mlp` -- the autograd function; its matmuls, scales and casts are ``fp8_linear``'s (the same
  operands, histories and formats), with delayed scaling only (a dynamic scale would need a pass over GELU's output
  before its cast, which is what this removes).
* The reference is the unfused MLP itself: ``c_proj(gelu(c_fc(x)))`` with both linears through ``fp8_linear``
  (``--fp8-gelu-cast 0``); tests/test_kernels_fp8_mlp.py compares the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt2train.kernels.fp8_cast import gelu_cast_transpose_kernel
from gpt2train.kernels.fp8_linear import (
    E4M3,
    FIRST_AMAX_GRAD,
    FIRST_AMAX_X,
    _fits,
    _out_dtype,
    delayed_scale,
    quantize_transposed,
    scaled_mm,
)


class _FP8GeluMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w_fc: torch.Tensor, b_fc: torch.Tensor | None, w_proj: torch.Tensor,
                b_proj: torch.Tensor | None, out_dtype: torch.dtype, backward_fast_accum: bool,
                grad_dtype: torch.dtype, fc_x_history: torch.Tensor, fc_grad_history: torch.Tensor,
                proj_x_history: torch.Tensor, proj_grad_history: torch.Tensor, *weight_copies):  # fmt: skip
        x2 = x.reshape(-1, x.shape[-1])
        # as fp8_linear: each operand K-major for every matmul it enters, the backward's copies kept
        xq, xqt, sx = quantize_transposed(x2, E4M3, kernel=1, history=fc_x_history, first_amax=FIRST_AMAX_X)
        fc_copies, proj_copies = weight_copies[:3], weight_copies[3:]
        wq_fc, wqt_fc, sw_fc = fc_copies if fc_copies[0] is not None else quantize_transposed(w_fc, E4M3, kernel=1)
        h = scaled_mm(xq, wq_fc.t(), sx, sw_fc, out_dtype, use_fast_accum=True)
        # c_proj's input: GELU of h + b_fc, cast in both layouts in one pass (its amax recorded as c_proj's input's)
        scale, record, sa = delayed_scale(proj_x_history, E4M3, FIRST_AMAX_X)
        aq, aqt, _ = gelu_cast_transpose_kernel(h, b_fc, None, scale, E4M3, record)
        wq_proj, wqt_proj, sw_proj = (proj_copies if proj_copies[0] is not None
                                      else quantize_transposed(w_proj, E4M3, kernel=1))  # fmt: skip
        y = scaled_mm(aq, wq_proj.t(), sa, sw_proj, out_dtype, use_fast_accum=True)
        if b_proj is not None:
            y = y + b_proj.to(out_dtype)
        # h is kept before its bias (GELU's backward adds it again): the one bf16 tensor saved, as unfused
        ctx.save_for_backward(xqt, sx, wqt_fc, sw_fc, h, b_fc, aqt, sa, wqt_proj, sw_proj, fc_grad_history,
                              proj_grad_history)  # fmt: skip
        ctx.has_proj_bias = b_proj is not None
        ctx.weight_dtype, ctx.x_dtype = w_fc.dtype, x.dtype
        ctx.fast_accum, ctx.grad_dtype = backward_fast_accum, grad_dtype
        return y.reshape(*x.shape[:-1], w_proj.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        xqt, sx, wqt_fc, sw_fc, h, b_fc, aqt, sa, wqt_proj, sw_proj, fc_grad_history, proj_grad_history = (
            ctx.saved_tensors
        )
        mm = dict(use_fast_accum=ctx.fast_accum)
        dy2 = dy.reshape(-1, dy.shape[-1]).contiguous()
        gq, gqt, sg = quantize_transposed(dy2, ctx.grad_dtype, kernel=1, history=proj_grad_history,
                                          first_amax=FIRST_AMAX_GRAD)  # fmt: skip
        # c_proj: the gradient of GELU's output, its weight's and bias's
        da = scaled_mm(gq, wqt_proj.t(), sg, sw_proj, dy.dtype, **mm)
        dw_proj = scaled_mm(gqt, aqt.t(), sg, sa, ctx.weight_dtype, **mm)
        db_proj = dy2.sum(0).to(ctx.weight_dtype) if ctx.has_proj_bias else None
        # c_fc's output gradient, GELU's derivative times da, cast in both layouts with its column sums in one pass
        scale, record, sh = delayed_scale(fc_grad_history, ctx.grad_dtype, FIRST_AMAX_GRAD)
        hq, hqt, db_fc = gelu_cast_transpose_kernel(h, b_fc, da, scale, ctx.grad_dtype, record)
        dx = scaled_mm(hq, wqt_fc.t(), sh, sw_fc, dy.dtype, **mm)
        dw_fc = scaled_mm(hqt, xqt.t(), sh, sx, ctx.weight_dtype, **mm)
        db_fc = db_fc.to(ctx.weight_dtype) if b_fc is not None else None
        dx = dx.reshape(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        return dx, dw_fc, db_fc, dw_proj, db_proj, *[None] * 13


def fp8_gelu_mlp(x: torch.Tensor, c_fc: torch.nn.Linear, c_proj: torch.nn.Linear, *, backward_fast_accum: bool = False,
                 grad_dtype: torch.dtype = E4M3, histories: tuple[torch.Tensor, ...],
                 weight_copies: tuple[torch.Tensor | None, ...] = (None,) * 6) -> torch.Tensor:  # fmt: skip
    """``c_proj(gelu(c_fc(x)))`` (GELU tanh) with both linears' matmuls in FP8 as ``fp8_linear`` makes them with
    delayed scaling, GELU computed inside the casts (module docstring). ``histories``: c_fc's input and output
    gradient's :func:`~gpt2train.kernels.fp8_linear.amax_history` states, then c_proj's; ``weight_copies``: c_fc's
    (fp8, fp8 transposed, scale), then c_proj's, or Nones (cast here). Without gradients, or where the shapes do not
    suit ``_scaled_mm``, the plain MLP in bf16."""
    m = x.numel() // x.shape[-1] if x.shape[-1] else 0
    if not torch.is_grad_enabled() or not (_fits(m, x.shape[-1], c_fc.weight.shape[0])
                                           and _fits(m, c_fc.weight.shape[0], c_proj.weight.shape[0])):  # fmt: skip
        return c_proj(F.gelu(c_fc(x), approximate="tanh"))
    return _FP8GeluMLP.apply(x, c_fc.weight, c_fc.bias, c_proj.weight, c_proj.bias, _out_dtype(x), backward_fast_accum,
                             grad_dtype, *histories, *weight_copies)  # fmt: skip
