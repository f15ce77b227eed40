"""``--fp8``'s linears fused with their neighbours: the MLP's activation (GELU, or ReLU²) inside its FP8 casts
(``--fp8-gelu-cast``), and q, k and v's gradients gathered inside c_attn's (``--fp8-qkv-cast``).

**The MLP** (GELU's figures; ReLU²'s passes are the same bytes). Unfused, the MLP ``c_proj(gelu(c_fc(x)))`` with
both linears in FP8 (kernels/fp8_linear.py) passes over its widest tensors (4C a token) more often than the
arithmetic needs. Forward: c_fc's matmul writes h, a fused kernel reads it to add the bias and write GELU's output
in bf16, and the cast kernel reads that to write c_proj's e4m3 input in both layouts. Backward: c_proj's
input-gradient matmul writes GELU's output gradient, a fused kernel reads it and h to write c_fc's output gradient
dh in bf16, the bias gradient reads dh, and the cast kernel reads it again for c_fc's gradient matmuls. Here the
cast kernel (kernels/fp8_cast.py, its activation passes) does each side in one pass: from h (before the bias)
straight to the e4m3 copies of GELU's output; from h and the output gradient straight to dh's FP8 copies and the
bias gradient's column sums: by our count 10 bytes an element of h between the matmuls, against 20-22 unfused.

**q, k and v.** Unfused, c_attn's output (B, T, 3C) is split into q, k and v views for attention, and attention's
backward returns their gradients as three tensors that autograd concatenates back into (B, T, 3C) (a copy, 13.2 ms
of d12's step on an H200), whose bias gradient is summed (6.6 ms) before the cast kernel reads it again for c_attn's
FP8 gradient matmuls (BENCHMARKS.md, issue 21's tenth-session profile). Here c_attn and the split are one autograd
function: its backward hands the three gradients to the cast kernel's gather pass (kernels/fp8_cast.py), which reads
them where attention wrote them and writes the e4m3 copies of the concatenated gradient in both layouts with the
bias gradient's column sums, so the concatenation is never written.

Pieces:

* :func:`fp8_mlp` and :func:`fp8_qkv` -- the autograd functions (where ``fp8_linear.fp8_runs``); their matmuls,
  scales and casts are ``fp8_linear``'s (the same operands, histories and formats), with delayed scaling only (a
  dynamic scale would need a pass over the tensor before its cast, which is what this removes).
* The references are the unfused modules themselves: the MLP ``c_proj(act(c_fc(x)))`` and
  ``CausalSelfAttention.qkv`` over ``fp8_linear`` (``--fp8-gelu-cast 0``, ``--fp8-qkv-cast 0``);
  tests/test_kernels_fp8_mlp.py and tests/test_kernels_fp8_qkv.py compare each pair.
"""

from __future__ import annotations

import torch

from gpt2train.kernels.fp8_cast import activation_cast_transpose_kernel, qkv_grad_cast_transpose_kernel
from gpt2train.kernels.fp8_linear import (
    E4M3,
    FIRST_AMAX_GRAD,
    FIRST_AMAX_X,
    _out_dtype,
    backward_matmuls,
    delayed_scale,
    forward_matmul,
    input_gradient,
    input_operand,
    quantize_transposed,
    weight_operand,
)


class _FP8MLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, residual: torch.Tensor | None, w_fc: torch.Tensor, b_fc: torch.Tensor | None,
                w_proj: torch.Tensor, b_proj: torch.Tensor | None, activation: str, out_dtype: torch.dtype,
                backward_fast_accum: bool, grad_dtype: torch.dtype, fc_x_history: torch.Tensor,
                fc_grad_history: torch.Tensor, proj_x_history: torch.Tensor, proj_grad_history: torch.Tensor,
                norm_weight: torch.Tensor | None, norm_bias: torch.Tensor | None, norm_eps: float | None,
                *weight_copies):  # fmt: skip
        x2 = x.reshape(-1, x.shape[-1])
        # as fp8_linear: each operand K-major for every matmul it enters, the backward's copies kept; x normalized
        # in its cast's pass with --fp8-norm-cast (x + residual, the sum written in the same pass)
        norm = None if norm_eps is None else (norm_weight, norm_bias, norm_eps)
        r2 = None if residual is None else residual.reshape(x2.shape)
        (xq, xqt, sx), norm_saved = input_operand(x2, 1, fc_x_history, norm, r2)
        wq_fc, wqt_fc, sw_fc = weight_operand(w_fc, weight_copies[:3], 1)
        h = forward_matmul(xq, sx, wq_fc, sw_fc, None, out_dtype)  # its bias is added in GELU's pass
        # c_proj's input: the activation of h + b_fc, cast in both layouts in one pass (its amax recorded as c_proj's
        # input's)
        scale, record, sa = delayed_scale(proj_x_history, E4M3, FIRST_AMAX_X)
        aq, aqt, _ = activation_cast_transpose_kernel(h, b_fc, None, scale, E4M3, record, activation)
        wq_proj, wqt_proj, sw_proj = weight_operand(w_proj, weight_copies[3:], 1)
        y = forward_matmul(aq, sa, wq_proj, sw_proj, b_proj, out_dtype)
        # h is kept before its bias (the activation's backward adds it again): the one bf16 tensor saved, as unfused
        ctx.save_for_backward(xqt, sx, wqt_fc, sw_fc, h, b_fc, aqt, sa, wqt_proj, sw_proj, fc_grad_history,
                              proj_grad_history, *norm_saved)  # fmt: skip
        ctx.has_proj_bias, ctx.norm_bias = b_proj is not None, norm_bias is not None
        ctx.weight_dtype, ctx.x_dtype = w_fc.dtype, x.dtype
        ctx.fast_accum, ctx.grad_dtype, ctx.activation = backward_fast_accum, grad_dtype, activation
        y = y.reshape(*x.shape[:-1], w_proj.shape[0])
        return y if residual is None else (y, norm_saved[0].view(x.shape))

    @staticmethod
    def backward(ctx, dy: torch.Tensor, *d_sum):
        xqt, sx, wqt_fc, sw_fc, h, b_fc, aqt, sa, wqt_proj, sw_proj, fc_grad_history, proj_grad_history, *norm_saved = (
            ctx.saved_tensors
        )
        dy2 = dy.reshape(-1, dy.shape[-1]).contiguous()
        gq, gqt, sg, *db_proj = quantize_transposed(dy2, ctx.grad_dtype, kernel=1, history=proj_grad_history,
                                                    first_amax=FIRST_AMAX_GRAD,
                                                    column_sums=ctx.has_proj_bias)  # fmt: skip
        # c_proj: the gradient of the activation's output, its weight's and bias's (dy's column sums, from the cast's
        # pass)
        da, dw_proj = backward_matmuls(gq, gqt, sg, aqt, sa, wqt_proj, sw_proj, dy.dtype, ctx.weight_dtype,
                                       ctx.fast_accum)  # fmt: skip
        db_proj = db_proj[0].to(ctx.weight_dtype) if ctx.has_proj_bias else None
        # c_fc's output gradient, the activation's derivative times da, cast in both layouts with its column sums in
        # one pass
        scale, record, sh = delayed_scale(fc_grad_history, ctx.grad_dtype, FIRST_AMAX_GRAD)
        hq, hqt, db_fc = activation_cast_transpose_kernel(h, b_fc, da, scale, ctx.grad_dtype, record, ctx.activation)
        dx, dw_fc = backward_matmuls(hq, hqt, sh, xqt, sx, wqt_fc, sw_fc, dy.dtype, ctx.weight_dtype, ctx.fast_accum)
        db_fc = db_fc.to(ctx.weight_dtype) if b_fc is not None else None
        dx, dnorm_weight, dnorm_bias = input_gradient(dx, norm_saved, ctx.norm_bias)
        dx = dx.reshape(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        if d_sum:  # x + residual was an output too (the residual stream): both addends take its whole gradient
            dx = dx if d_sum[0] is None else dx + d_sum[0]
            return dx, dx, dw_fc, db_fc, dw_proj, db_proj, *[None] * 8, dnorm_weight, dnorm_bias, *[None] * 7
        return dx, None, dw_fc, db_fc, dw_proj, db_proj, *[None] * 8, dnorm_weight, dnorm_bias, *[None] * 7


def fp8_mlp(x: torch.Tensor, c_fc: torch.nn.Linear, c_proj: torch.nn.Linear, activation: str, *,
            backward_fast_accum: bool = False, grad_dtype: torch.dtype = E4M3, histories: tuple[torch.Tensor, ...],
            weight_copies: tuple[torch.Tensor | None, ...] = (None,) * 6, norm: tuple | None = None,
            residual: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``c_proj(act(c_fc(x)))`` (``activation``: ``gelu``, GELU tanh, or ``relu2``) with both linears' matmuls in FP8
    as ``fp8_linear`` makes them with delayed scaling, the activation computed inside the casts (module docstring).
    ``histories``: c_fc's input and output gradient's :func:`~gpt2train.kernels.fp8_linear.amax_history` states, then c_proj's; ``weight_copies``: c_fc's
    (fp8, fp8 transposed, scale), then c_proj's, or Nones (cast here); ``norm``: the LayerNorm before c_fc,
    (weight, bias, eps), computed inside c_fc's input cast (``x`` is its input: ``fp8_linear.input_operand``);
    ``residual``: with ``norm``, the LayerNorm's input is ``x + residual``, summed in the same pass, and the result is
    (the MLP's output, that sum). Only where ``fp8_runs(x, 4C, C)``."""
    return _FP8MLP.apply(x, residual, c_fc.weight, c_fc.bias, c_proj.weight, c_proj.bias, activation, _out_dtype(x),
                         backward_fast_accum, grad_dtype, *histories, *(norm or (None, None, None)),
                         *weight_copies)  # fmt: skip


class _FP8QKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, n_head: int,
                out_dtype: torch.dtype, backward_fast_accum: bool, grad_dtype: torch.dtype, x_history: torch.Tensor,
                grad_history: torch.Tensor, wq: torch.Tensor | None, wqt: torch.Tensor | None,
                sw: torch.Tensor | None):  # fmt: skip
        B, T, C = x.shape
        xq, xqt, sx = quantize_transposed(x.reshape(-1, C), E4M3, kernel=1, history=x_history, first_amax=FIRST_AMAX_X)
        wq, wqt, sw = weight_operand(weight, (wq, wqt, sw), 1)
        y = forward_matmul(xq, sx, wq, sw, bias, out_dtype)
        ctx.save_for_backward(xqt, sx, wqt, sw, grad_history)
        ctx.has_bias, ctx.weight_dtype, ctx.x_dtype = bias is not None, weight.dtype, x.dtype
        ctx.fast_accum, ctx.grad_dtype = backward_fast_accum, grad_dtype
        # the views CausalSelfAttention.qkv makes: (B, n_head, T, head_dim) each, over one (B, T, 3C) tensor
        return tuple(t.transpose(1, 2) for t in y.view(B, T, 3, n_head, C // n_head).unbind(2))

    @staticmethod
    def backward(ctx, dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor):
        xqt, sx, wqt, sw, grad_history = ctx.saved_tensors
        grads = [g for g in (dq, dk, dv) if g is not None]
        dq, dk, dv = (torch.zeros_like(grads[0]) if g is None else g for g in (dq, dk, dv))
        scale, record, sg = delayed_scale(grad_history, ctx.grad_dtype, FIRST_AMAX_GRAD)
        # the three gradients gathered into c_attn's output gradient, cast in both layouts with its column sums
        gq, gqt, db = qkv_grad_cast_transpose_kernel(dq, dk, dv, scale, ctx.grad_dtype, record)
        dx, dw = backward_matmuls(gq, gqt, sg, xqt, sx, wqt, sw, dq.dtype, ctx.weight_dtype, ctx.fast_accum)
        B, T = dq.shape[0], dq.shape[2]
        db = db.to(ctx.weight_dtype) if ctx.has_bias else None
        return dx.view(B, T, -1).to(ctx.x_dtype), dw, db, *[None] * 9


def fp8_qkv(x: torch.Tensor, c_attn: torch.nn.Linear, n_head: int, *, backward_fast_accum: bool = False,
            grad_dtype: torch.dtype = E4M3, histories: tuple[torch.Tensor, torch.Tensor],
            weight_copies: tuple[torch.Tensor | None, ...] = (None,) * 3) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """``CausalSelfAttention.qkv``: q, k and v (B, n_head, T, head_dim) from ``c_attn`` with its matmuls in FP8 as
    ``fp8_linear`` makes them with delayed scaling, their gradients gathered inside the cast of c_attn's output
    gradient (module docstring). ``histories``: c_attn's input and output gradient's amax histories;
    ``weight_copies``: its (fp8, fp8 transposed, scale) or Nones. Only where ``fp8_runs(x, 3C)``."""
    return _FP8QKV.apply(x, c_attn.weight, c_attn.bias, n_head, _out_dtype(x), backward_fast_accum, grad_dtype,
                         *histories, *weight_copies)  # fmt: skip
