"""Weight gradients accumulated by the matmul that computes them, as llm.c accumulates micro-steps.

Plain PyTorch computes a micro-step's weight gradient dW = dy^T x into a new tensor, then autograd
adds it into ``.grad``: one more pass over every gradient per micro-step (at d48, 1.56B bf16 values
read twice and written once) and one kernel launch per parameter. llm.c lets cuBLAS do the sum:
``.grad += dy^T x`` with the matmul's beta = 1, one rounding to bf16 instead of two.

:func:`linear_accumulate` is ``F.linear`` whose backward does that: :func:`addmm_into` adds the
weight gradient into ``weight.grad``, the bias gradient is summed straight into ``bias.grad``, and
it returns no gradient for either, so autograd's own accumulation does not run for them.
:func:`gpt2train.kernels.gelu_mlp.gelu_mlp` takes the same buffers for the MLP's two layers.

Preconditions, which the trainer checks before it switches this on (``--accumulate-in-matmul``):
``.grad`` exists and persists between micro-steps, zeroed only between steps (one process, the flat
gradient buffer of ``train.optim.flatten_parameters_``), has the matmul's dtype (bf16 parameters),
and nothing waits on autograd producing the gradient (DDP and ZeRO-1 hook it, so not with those).

Reference: ``F.linear`` with autograd accumulating (``tests/test_kernels_grad_accum.py`` compares the
gradients after several micro-steps, eager and compiled).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt2train.kernels._library import op


@op("gpt2train::addmm_into", mutates_args=("out",))
def addmm_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """out += a @ b in place (cuBLAS's beta = 1: the product is added before it is rounded)."""
    out.addmm_(a, b)


@torch.library.register_fake(addmm_into)
def _(out, a, b):
    return None


def accumulating(layer: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight.grad, bias.grad) of ``layer`` if its backward should add into them, else None."""
    if not getattr(layer, "accumulate_grad", False) or not torch.is_grad_enabled():
        return None
    wgrad, dev = layer.weight.grad, layer.weight.device.type
    if wgrad is None or wgrad.dtype != layer.weight.dtype:
        return None
    if torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) != wgrad.dtype:
        return None  # the matmul would run in another dtype than the buffer's
    bias = layer.bias
    if bias is not None and (bias.grad is None or bias.grad.dtype != bias.dtype):
        return None
    return wgrad, bias.grad if bias is not None else None


def weight_grad(buf: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """The weight gradient a @ b: added into ``buf`` (returning None, nothing for autograd to add) when a
    buffer is given, else returned in ``dtype``."""
    if buf is None:
        return a.mm(b).to(dtype)
    torch.ops.gpt2train.addmm_into(buf, a, b)
    return None


def bias_grad(buf: torch.Tensor | None, db: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """The bias gradient ``db``: added into ``buf`` (returning None) when given (under torch.compile the add
    fuses into the reduction that made ``db``), else returned in ``dtype``."""
    if buf is None:
        return db.to(dtype)
    buf.add_(db.to(buf.dtype))
    return None


class LinearAccumulate(torch.autograd.Function):
    """y = x W^T + b whose backward adds dW and db into the given gradient buffers."""

    @staticmethod
    def forward(ctx, x, weight, bias, wgrad, bgrad):
        with torch.autocast(x.device.type, enabled=False):
            x_c = x.to(weight.dtype)  # what autocast would cast to (bf16 parameters: its dtype)
            y = F.linear(x_c, weight, bias)
        ctx.save_for_backward(x_c, weight)
        # the buffers ride on ctx, not in save_for_backward: they are views of one flat buffer that the
        # other layers' backward writes into, which would trip autograd's version check
        ctx.grads = (wgrad, bgrad)
        ctx.x_dtype = x.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        x_c, weight = ctx.saved_tensors
        wgrad, bgrad = ctx.grads
        with torch.autocast(dy.device.type, enabled=False):
            dy2 = dy.reshape(-1, dy.shape[-1]).to(weight.dtype)
            dx = dy2.mm(weight).view(x_c.shape).to(ctx.x_dtype) if ctx.needs_input_grad[0] else None
            weight_grad(wgrad, dy2.t(), x_c.reshape(-1, x_c.shape[-1]), weight.dtype)
            if bgrad is not None:
                bias_grad(bgrad, dy2.sum(0), bgrad.dtype)
        return dx, None, None, None, None


def linear_accumulate(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, wgrad: torch.Tensor, bgrad: torch.Tensor | None
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` whose backward adds the weight and bias gradients into ``wgrad`` and
    ``bgrad`` (normally ``weight.grad`` and ``bias.grad``) instead of returning them. Matmuls run in the
    weight's dtype (under autocast with bf16 parameters, autocast's)."""
    return LinearAccumulate.apply(x, weight, bias, wgrad, bgrad)
