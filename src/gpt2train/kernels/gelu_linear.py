"""GELU followed by a linear layer, storing only the GELU input (llm.c's ``-r 1``).

Reference: the plain path ``F.linear(F.gelu(h, approximate="tanh"), W, b)`` (see
:func:`gelu_linear_reference`), which keeps both h (for GELU's backward) and gelu(h) (for the
linear layer's weight gradient): two activations of 4C per token per layer.

:class:`GeluLinear` keeps only h (and W). Backward recomputes gelu(h), an elementwise op, for dW;
it does not redo any matmul. ``torch.utils.checkpoint`` around GELU + c_proj saves the same memory
but recomputes the c_proj matmul in backward.

Wiring: train/accelerate.py's MLP for eager -r 1 returns ``gelu_linear(h, c_proj.weight, c_proj.bias)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt2train.kernels import grad_accum


def gelu_linear_reference(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The plain path: gelu_tanh(h) @ weight^T + bias, with autograd saving gelu(h)."""
    return F.linear(F.gelu(h, approximate="tanh"), weight, bias)


def _matmul_dtype(h: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype F.linear runs in here: autocast's if on (custom Functions see raw dtypes)."""
    dev = h.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else weight.dtype


class GeluLinear(torch.autograd.Function):
    """out = gelu_tanh(h) @ W^T + b, saving h and W only; gelu(h) is recomputed in backward.

    Dtypes follow the plain path under autocast: GELU runs in h's dtype, the matmul in the
    autocast dtype, and each gradient comes back in its input's dtype.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, grads=None):
        cdt = _matmul_dtype(h, weight)
        with torch.autocast(h.device.type, enabled=False):
            w = weight.to(cdt)
            b = bias.to(cdt) if bias is not None else None
            out = F.linear(F.gelu(h, approximate="tanh").to(cdt), w, b)
        ctx.save_for_backward(h, w)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        ctx.has_bias = bias is not None
        ctx.grads = grads  # (weight, bias) buffers to add into, as grad_accum's
        return out

    @staticmethod
    def backward(ctx, dout):
        h, w = ctx.saved_tensors
        w_dt, b_dt = ctx.dtypes
        d2 = dout.to(w.dtype).reshape(-1, dout.shape[-1])
        dh = dw = db = None
        if ctx.needs_input_grad[0]:
            # the same ops autograd runs for the plain path, so fp32 results match it bit for bit
            dg = d2.mm(w).reshape(h.shape).to(h.dtype)
            dh = torch.ops.aten.gelu_backward(dg, h, approximate="tanh")
        wbuf, bbuf = ctx.grads or (None, None)
        if ctx.needs_input_grad[1]:
            g = F.gelu(h, approximate="tanh").to(w.dtype)  # the recompute: elementwise only
            dw = grad_accum.weight_grad(wbuf, d2.t(), g.reshape(-1, g.shape[-1]), w_dt)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = grad_accum.bias_grad(bbuf, d2.sum(0), b_dt)
        return dh, dw, db, None


def gelu_linear(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    grads: tuple[torch.Tensor, torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """gelu_tanh(h) @ weight^T + bias, keeping only h for backward when autograd is recording.

    ``h`` is (..., K), ``weight`` (N, K), ``bias`` (N,) or None; returns (..., N). Works under
    ``torch.autocast`` (the matmul runs in the autocast dtype, gradients come back in the input
    dtypes). Without autograd it is the plain expression. With ``grads`` (buffers for the weight and
    bias) backward adds their gradients into them and returns none (:mod:`gpt2train.kernels.grad_accum`).
    """
    if torch.is_grad_enabled() and (
        h.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return GeluLinear.apply(h, weight, bias, grads)
    return gelu_linear_reference(h, weight, bias)
