"""GPT-2's MLP with GELU fused into cuBLASLt matmul epilogues (llm.c's ``-ge``).

Reference: :func:`gelu_mlp_reference`, the plain ``c_proj(gelu_tanh(c_fc(x)))``. Its forward runs
GELU as its own memory-bound kernel after the c_fc matmul, and its backward runs GELU's backward
as another after the c_proj input-gradient matmul.

:func:`gelu_mlp` computes the same thing with those two kernels folded into the matmuls:

forward   a, h = linear_gelu_aux(x, W_fc, b_fc)   one cuBLASLt matmul, epilogue GELU_AUX_BIAS:
                                                  h = x W_fc^T + b_fc (the aux output), a = gelu(h)
          y = a W_proj^T + b_proj                 a plain addmm
backward  dW_proj = dy^T a, db_proj = sum_rows dy plain torch
          dh = (dy W_proj) * gelu'(h), db_fc = sum_rows dh, by ``backward``:
            "plain"        a matmul, then GELU's backward and the row sum (one fused kernel under
                           torch.compile): llm.c's -ge 1
            "dgelu"        one cuBLASLt matmul with epilogue DGELU, then the row sum: llm.c's -ge 2
            "dgelu_bgrad"  one cuBLASLt matmul with epilogue DGELU_BGRAD (the row sum too)
          dW_fc = dh^T x, dx = dh W_fc            plain torch

On an H100 (cuBLASLt 13, 2026-11-28; BENCHMARKS.md) "dgelu" is the fastest: cuBLASLt runs DGELU_BGRAD
as the matmul plus a separate generic epilogue kernel, slower than the compiled GELU backward it
replaces, while DGELU alone stays inside the matmul. The trainer's default is therefore -ge 2.

Saved for backward: x, h, a and the weights in the matmul dtype, as the plain autocast path saves.
Dtypes follow the plain path: under autocast the matmuls run in the autocast dtype and each
gradient comes back in its input's dtype (fp32 for fp32 parameters).

The two cuBLASLt calls are ``torch.library.custom_op`` s (``gpt2train::linear_gelu_aux`` and
``gpt2train::matmul_dgelu_bgrad``) with fake (shape) functions, so torch.compile sees opaque ops
and no graph break. Where cuBLASLt cannot take the call (no CUDA or no library, a dtype other
than bf16/fp16, dimensions not multiples of 8, non-contiguous operands, or no cuBLASLt
algorithm) the ops run the same math in plain torch, so the CPU tests cover the whole formula.
:data:`STATS` counts which path each op took.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from gpt2train.kernels import cublaslt, grad_accum
from gpt2train.kernels._library import op

STATS: dict[str, dict[str, int]] = {
    "linear_gelu_aux": {"cublaslt": 0, "torch": 0},
    "matmul_dgelu_bgrad": {"cublaslt": 0, "torch": 0},
    "matmul_dgelu": {"cublaslt": 0, "torch": 0},
}
BACKWARDS = ("plain", "dgelu", "dgelu_bgrad")
_warned: set[str] = set()
_cuda_ok: bool | None = None


def gelu_mlp_reference(
    x: torch.Tensor, w_fc: torch.Tensor, b_fc: torch.Tensor, w_proj: torch.Tensor, b_proj: torch.Tensor
) -> torch.Tensor:
    """The plain path: gelu_tanh(x @ w_fc^T + b_fc) @ w_proj^T + b_proj."""
    return F.linear(F.gelu(F.linear(x, w_fc, b_fc), approximate="tanh"), w_proj, b_proj)


def _fusable(*ts: torch.Tensor) -> bool:
    """Whether cuBLASLt can take these operands (the first is the (M, K) activation)."""
    global _cuda_ok
    t0 = ts[0]
    if not t0.is_cuda or t0.dtype not in (torch.bfloat16, torch.float16):
        return False
    if any(t.dtype != t0.dtype or t.device != t0.device or not t.is_contiguous() for t in ts):
        return False
    if not all(d % 8 == 0 and d > 0 for t in ts for d in t.shape):
        return False
    if _cuda_ok is None:
        _cuda_ok = cublaslt.available("cuda")
    return _cuda_ok


def _fell_back(op: str, err: Exception) -> None:
    if op not in _warned:
        _warned.add(op)
        warnings.warn(f"gpt2train::{op}: cuBLASLt declined ({err}); using plain torch for it", stacklevel=3)


# -- the two cuBLASLt calls as custom ops ---------------------------------------------------------


@op("gpt2train::linear_gelu_aux", mutates_args=())
def linear_gelu_aux(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gelu_tanh(h), h) with h = x @ weight^T + bias; x (M, K), weight (N, K), bias (N,)."""
    if _fusable(x, weight, bias):
        h = torch.empty((x.shape[0], weight.shape[0]), dtype=x.dtype, device=x.device)
        try:
            a = cublaslt.matmul(x, weight, epilogue=cublaslt.CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias=bias, aux=h)
            STATS["linear_gelu_aux"]["cublaslt"] += 1
            return a, h
        except cublaslt.CublasLtUnsupported as e:
            _fell_back("linear_gelu_aux", e)
    STATS["linear_gelu_aux"]["torch"] += 1
    h = torch.addmm(bias, x, weight.t())
    return F.gelu(h, approximate="tanh"), h


@torch.library.register_fake(linear_gelu_aux)
def _(x, weight, bias):
    h = x.new_empty((x.shape[0], weight.shape[0]))
    return torch.empty_like(h), h


@op("gpt2train::matmul_dgelu_bgrad", mutates_args=())
def matmul_dgelu_bgrad(dy: torch.Tensor, weight: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dh, db) with dh = (dy @ weight) * gelu_tanh'(h) and db = dh summed over rows;
    dy (M, N), weight (N, H) (the next layer's weight, as nn.Linear stores it), h (M, H)."""
    if _fusable(dy, weight, h):
        db = torch.empty((weight.shape[1],), dtype=dy.dtype, device=dy.device)
        try:
            dh = cublaslt.matmul(
                dy, weight, w_transposed=False, epilogue=cublaslt.CUBLASLT_EPILOGUE_DGELU_BGRAD, bias=db, aux=h
            )
            STATS["matmul_dgelu_bgrad"]["cublaslt"] += 1
            return dh, db
        except cublaslt.CublasLtUnsupported as e:
            _fell_back("matmul_dgelu_bgrad", e)
    STATS["matmul_dgelu_bgrad"]["torch"] += 1
    dh = torch.ops.aten.gelu_backward(dy.mm(weight), h, approximate="tanh")
    return dh, dh.sum(0)


@torch.library.register_fake(matmul_dgelu_bgrad)
def _(dy, weight, h):
    dh = dy.new_empty((dy.shape[0], weight.shape[1]))
    return dh, dy.new_empty((weight.shape[1],))


@op("gpt2train::matmul_dgelu", mutates_args=())
def matmul_dgelu(dy: torch.Tensor, weight: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """dh = (dy @ weight) * gelu_tanh'(h); shapes as :func:`matmul_dgelu_bgrad`."""
    if _fusable(dy, weight, h):
        try:
            dh = cublaslt.matmul(dy, weight, w_transposed=False, epilogue=cublaslt.CUBLASLT_EPILOGUE_DGELU, aux=h)
            STATS["matmul_dgelu"]["cublaslt"] += 1
            return dh
        except cublaslt.CublasLtUnsupported as e:
            _fell_back("matmul_dgelu", e)
    STATS["matmul_dgelu"]["torch"] += 1
    return torch.ops.aten.gelu_backward(dy.mm(weight), h, approximate="tanh")


@torch.library.register_fake(matmul_dgelu)
def _(dy, weight, h):
    return dy.new_empty((dy.shape[0], weight.shape[1]))


# -- autograd -------------------------------------------------------------------------------------


def _matmul_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype F.linear runs in here: autocast's if on (custom Functions see raw dtypes)."""
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else weight.dtype


class GeluMLP(torch.autograd.Function):
    """y = gelu_tanh(x W_fc^T + b_fc) W_proj^T + b_proj with GELU in the matmul epilogues.

    Why an autograd.Function over custom ops rather than ``register_autograd`` on one op: the
    backward fusion spans both layers (c_proj's input gradient feeds GELU's backward), so a
    single op with register_autograd would have to hide the whole MLP, c_proj's matmuls
    included, from the compiler. Dynamo traces an autograd.Function's forward and backward into
    the graph (as gelu_linear.GeluLinear already is inside the compiled blocks), so here only
    the two cuBLASLt calls are opaque and the casts, the addmm and the weight-gradient matmuls
    stay visible to Inductor.
    """

    @staticmethod
    def forward(ctx, x, w_fc, b_fc, w_proj, b_proj, backward="plain", grads=None):
        cdt = _matmul_dtype(x, w_fc)
        with torch.autocast(x.device.type, enabled=False):
            x2 = x.reshape(-1, x.shape[-1]).to(cdt)
            wf, bf, wp, bp = [t.to(cdt) for t in (w_fc, b_fc, w_proj, b_proj)]
            a, h = torch.ops.gpt2train.linear_gelu_aux(x2.contiguous(), wf.contiguous(), bf)
            y = torch.addmm(bp, a, wp.t())
        ctx.save_for_backward(x2, h, a, wf, wp)
        ctx.dtypes = (x.dtype, w_fc.dtype, b_fc.dtype, w_proj.dtype, b_proj.dtype)
        ctx.x_shape = x.shape
        ctx.backward_mode = backward
        ctx.grads = grads  # (c_fc's weight, bias, c_proj's weight, bias) buffers to add into, as grad_accum's
        return y.reshape(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, dy):
        x2, h, a, wf, wp = ctx.saved_tensors
        x_dt, wf_dt, bf_dt, wp_dt, bp_dt = ctx.dtypes
        need = ctx.needs_input_grad
        dx = dwf = dbf = dwp = dbp = None
        wf_buf, bf_buf, wp_buf, bp_buf = ctx.grads or (None,) * 4
        with torch.autocast(dy.device.type, enabled=False):
            dy2 = dy.reshape(-1, dy.shape[-1]).to(a.dtype)
            if need[3]:
                dwp = grad_accum.weight_grad(wp_buf, dy2.t(), a, wp_dt)
            if need[4]:
                dbp = grad_accum.bias_grad(bp_buf, dy2.sum(0), bp_dt)
            if need[0] or need[1] or need[2]:
                if ctx.backward_mode == "dgelu_bgrad":
                    dh, db = torch.ops.gpt2train.matmul_dgelu_bgrad(dy2.contiguous(), wp.contiguous(), h)
                else:
                    if ctx.backward_mode == "dgelu":
                        dh = torch.ops.gpt2train.matmul_dgelu(dy2.contiguous(), wp.contiguous(), h)
                    else:
                        dh = torch.ops.aten.gelu_backward(dy2.mm(wp), h, approximate="tanh")
                    db = dh.sum(0) if need[2] else None
                if need[0]:
                    dx = dh.mm(wf).reshape(ctx.x_shape).to(x_dt)
                if need[1]:
                    dwf = grad_accum.weight_grad(wf_buf, dh.t(), x2, wf_dt)
                if need[2]:
                    dbf = grad_accum.bias_grad(bf_buf, db, bf_dt)
        return dx, dwf, dbf, dwp, dbp, None, None


def gelu_mlp(
    x: torch.Tensor,
    w_fc: torch.Tensor,
    b_fc: torch.Tensor,
    w_proj: torch.Tensor,
    b_proj: torch.Tensor,
    backward: str = "plain",
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """gelu_tanh(x @ w_fc^T + b_fc) @ w_proj^T + b_proj with GELU fused into the matmuls.

    ``x`` (..., C), ``w_fc`` (H, C), ``b_fc`` (H,), ``w_proj`` (C, H), ``b_proj`` (C,); returns
    (..., C). Works under ``torch.autocast`` and ``torch.compile``; on the CPU (or where cuBLASLt
    cannot run) it is the same math in plain torch. With ``grads`` (buffers for w_fc, b_fc, w_proj,
    b_proj in the parameters' dtype) backward adds the parameter gradients into them and returns none
    (:mod:`gpt2train.kernels.grad_accum`).
    """
    if backward not in BACKWARDS:
        raise ValueError(f"gelu_mlp backward={backward!r}: use one of {', '.join(BACKWARDS)}")
    return GeluMLP.apply(x, w_fc, b_fc, w_proj, b_proj, backward, grads)
