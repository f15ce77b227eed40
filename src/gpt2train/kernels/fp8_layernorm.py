"""A LayerNorm fused into the FP8 cast of its output: (the residual add,) LayerNorm, the bf16 rounding and the FP8
cast in both layouts, in one kernel that never writes the LayerNorm's output.

``ln_1`` and ``ln_2`` feed FP8 linears (c_attn, c_fc). Hopper's ``torch._scaled_mm`` takes its operands K-major
only, so the linear needs the e4m3 copy of ``x`` (M, C) row-major for ``y = x @ W.T`` and its transpose (C, M)
row-major for ``dW = dy.T @ x``. Unfused, the LayerNorm's output is written in bf16 and read again by the cast
(kernels/fp8_cast.py): 200 MB per LayerNorm per d12 micro-step that need not move. Here a program owns whole rows,
computes their statistics, then normalizes, rounds to bf16 (what the unfused path casts), scales, clamps and writes
both FP8 copies, with the mean and 1/std that LayerNorm's backward needs; the residual add before it (the new
residual stream, which the trainer keeps) can come along in the same read.

Pieces:

* :func:`ln_cast_transpose_reference` -- the same arithmetic in plain PyTorch (the test oracle, and the path off
  CUDA): ``s = x + residual`` in ``x``'s dtype, ``F.layer_norm`` of ``s`` in fp32 (as under bf16 autocast), rounded
  to bf16, then :func:`~gpt2train.kernels.fp8_cast.cast_transpose_reference` (``amax`` too).
* :func:`ln_cast_transpose_kernel` -- the custom op ``gpt2train::fp8_ln_cast_transpose``: the Triton kernel on CUDA
  for a bf16 ``x``, opaque to torch.compile (its shapes registered with ``register_fake``), the reference elsewhere.
* :func:`layer_norm_backward` -- LayerNorm's backward from the saved mean and rstd (the linear's input gradient
  into the gradients of the LayerNorm's input, weight and bias), where autograd's LayerNorm would save its own.
* :func:`_launch` -- the kernel over given outputs, with its tiling (``block_m``, ``block_n``, ``warps``,
  ``programs``) as arguments, so a GPU sweep can time configurations.

The kernel: a program takes BLOCK_M rows at a time (a persistent grid, WAVES programs per SM on CUDA) and walks
their columns in chunks of BLOCK_N (C is 768, 1024, 1280 or 1600: not always a power of 2, the last chunk masked)
twice. The first walk keeps a running mean and sum of squared deviations per (row, column lane), Welford's update,
combined across the lanes at the end (one read of ``x`` for the statistics where two passes, mean then variance,
would read it twice); with a residual it writes the sum ``s`` as it goes, and the second walk reads ``s`` back
instead of both addends. The second walk normalizes, rounds, records the largest ``|y|`` element-wise (one
``atomic_max`` per program at the end: delayed scaling's record), casts, and stores row-major and transposed.
"""

from __future__ import annotations

import functools

import torch

from gpt2train.kernels._library import op
from gpt2train.kernels._triton import interpreting, triton_available
from gpt2train.kernels.fp8_cast import KERNEL_SOURCES, _sm_count, cast_transpose_reference

# a program's rows and the columns of one chunk; warps; programs per SM (each loops over row blocks). The fastest of
# a sweep on an H200 (torch 2.11, triton 3.6; bf16 x, e4m3, the amax record): at (65536, 768) 0.116 ms without a
# residual, 0.163 with (64x128 and 4 warps: 0.146 and 0.208); at (16384, 1600) 0.068 and 0.092. Inductor's add and
# LayerNorm (writing the sum) then the cast kernel: 0.116-0.135, 0.204, 0.172 and 0.210 ms. 32x128, 4 warps within 1%;
# num_stages 1-4 and one program per row block instead of WAVES per SM made no difference
BLOCK_M, BLOCK_N, WARPS, WAVES = 32, 64, 8, 4


def ln_cast_transpose_reference(x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor,
                                bias: torch.Tensor | None, eps: float, scale: torch.Tensor, dtype: torch.dtype,
                                amax: torch.Tensor | None = None) -> tuple[torch.Tensor | None, ...]:  # fmt: skip
    """LayerNorm of ``s`` (``x + residual`` in ``x``'s dtype, or ``x``; both (M, C)) over its C columns in fp32 with
    ``weight`` and ``bias`` (None: no bias), rounded to bf16 and cast as
    :func:`~gpt2train.kernels.fp8_cast.cast_transpose_reference` (``amax``, if given, raised in place to the largest
    ``|y|``). Returns (q (M, C), q transposed (C, M) contiguous, ``s`` or None without ``residual``, mean (M,) fp32,
    rstd (M,) fp32 = 1 / sqrt(biased variance + eps)): mean and rstd as LayerNorm's backward takes them (as (M, 1))."""
    s = x if residual is None else x + residual
    # native_layer_norm is what F.layer_norm runs (on fp32 here, as bf16 autocast runs it), with its statistics
    y, mean, rstd = torch.native_layer_norm(
        s.float(), (s.shape[-1],), weight.float(), None if bias is None else bias.float(), eps
    )
    q, qt = cast_transpose_reference(y.to(torch.bfloat16), scale, dtype, True, amax)
    return q, qt, (None if residual is None else s), mean.view(-1), rstd.view(-1)


def layer_norm_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
                        rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """LayerNorm's backward from the statistics its forward kept: (the gradient of ``x`` in ``x``'s dtype, of the
    weight and of the bias in the weight's) for the output gradient ``dy`` (M, C), ``x`` (M, C) the LayerNorm's
    input (``s`` with a residual), ``mean`` and ``rstd`` (M,) as :func:`ln_cast_transpose_kernel` returns them. In
    fp32, as bf16 autocast's LayerNorm runs its backward (the statistics are not computed again)."""
    dx, dweight, _ = torch.ops.aten.native_layer_norm_backward(
        dy.float(), x.float(), [x.shape[-1]], mean.view(-1, 1), rstd.view(-1, 1), weight.float(), None,
        [True, True, False],
    )  # fmt: skip
    # the bias's gradient is dy's column sums (asked of native_layer_norm_backward, it wants a bias tensor)
    return dx.to(x.dtype), dweight.to(weight.dtype), dy.float().sum(0).to(weight.dtype)


@functools.lru_cache(maxsize=2)
def _kernel(interpret: bool):
    # built on first use: triton.jit picks the interpreter from TRITON_INTERPRET at decoration time
    import triton
    import triton.language as tl

    @triton.jit
    def fp8_ln_cast_transpose_kernel(x_ptr, r_ptr, s_ptr, w_ptr, b_ptr, scale_ptr, q_ptr, qt_ptr, amax_ptr,
                                     mean_ptr, rstd_ptr, M, N, eps, fmax, RESIDUAL: tl.constexpr,
                                     ROUND_SUM: tl.constexpr, BIAS: tl.constexpr, AMAX: tl.constexpr,
                                     ROUND_BITS: tl.constexpr, BLOCK_M: tl.constexpr,
                                     BLOCK_N: tl.constexpr):  # fmt: skip
        scale = tl.load(scale_ptr)
        lanes = tl.arange(0, BLOCK_N)
        # how many chunks of a row each column lane sees: the count its running moments are over
        lane_n = tl.where(lanes < N, (N - 1 - lanes) // BLOCK_N + 1, 0).to(tl.float32)[None, :]
        largest = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)  # |y| so far, element-wise over this program's
        for block in tl.range(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.num_programs(0)):
            rows = block * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
            row_ok = rows < M
            # the statistics: Welford's running mean and squared deviations per (row, lane), in fp32
            mean_acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            m2_acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for start in tl.range(0, N, BLOCK_N):
                cols = start + lanes.to(tl.int64)
                mask = row_ok[:, None] & (cols < N)[None, :]
                at = rows[:, None] * N + cols[None, :]
                v = tl.load(x_ptr + at, mask=mask, other=0.0).to(tl.float32)
                if RESIDUAL:  # the new residual stream, rounded to x's dtype as PyTorch's add rounds it
                    v = v + tl.load(r_ptr + at, mask=mask, other=0.0).to(tl.float32)
                    if ROUND_SUM and ROUND_BITS:  # to nearest even on the bits, as y below
                        bits = v.to(tl.uint32, bitcast=True)
                        rounded = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).to(tl.float32, bitcast=True)
                        v = tl.where(v == v, rounded, v)
                    elif ROUND_SUM:
                        v = v.to(tl.bfloat16).to(tl.float32)
                    tl.store(s_ptr + at, v.to(s_ptr.dtype.element_ty), mask=mask)
                inv = 1.0 / (start // BLOCK_N + 1)  # the lane's count so far (valid lanes only)
                delta = v - mean_acc
                mean_acc = tl.where(mask, mean_acc + delta * inv, mean_acc)  # masked lanes count nothing
                m2_acc = tl.where(mask, m2_acc + delta * (v - mean_acc), m2_acc)
            # the lanes' moments combined (Chan et al.): the mean of their means weighted by their counts, and
            # their squared deviations plus each lane mean's from the row's, count times
            # (divisions and the square root correctly rounded, where tl.sqrt and / may approximate on a GPU:
            # once per row)
            mean = tl.div_rn(tl.sum(mean_acc * lane_n, 1), N.to(tl.float32))
            dev = mean_acc - mean[:, None]
            var = tl.div_rn(tl.sum(m2_acc + lane_n * dev * dev, 1), N.to(tl.float32))
            rstd = tl.div_rn(1.0, tl.sqrt_rn(var + eps))
            tl.store(mean_ptr + rows, mean, mask=row_ok)
            tl.store(rstd_ptr + rows, rstd, mask=row_ok)
            if RESIDUAL:  # s is read back below, maybe by other threads of this program: its stores seen first
                tl.debug_barrier()
            for start in tl.range(0, N, BLOCK_N):
                cols = start + lanes.to(tl.int64)
                col_ok = cols < N
                mask = row_ok[:, None] & col_ok[None, :]
                at = rows[:, None] * N + cols[None, :]
                if RESIDUAL:  # one read where x and residual would be two
                    v = tl.load(s_ptr + at, mask=mask, other=0.0).to(tl.float32)
                else:
                    v = tl.load(x_ptr + at, mask=mask, other=0.0).to(tl.float32)
                w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
                y = (v - mean[:, None]) * rstd[:, None] * w[None, :]
                if BIAS:
                    y = y + tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
                # rounded to bf16 (to nearest even) as the unfused path casts it: by the conversion on a GPU, on the
                # bits in Triton's CPU interpreter, whose conversion truncates (a NaN kept one)
                if ROUND_BITS:
                    bits = y.to(tl.uint32, bitcast=True)
                    rounded = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).to(tl.float32, bitcast=True)
                    y = tl.where(y == y, rounded, y)
                else:
                    y = y.to(tl.bfloat16).to(tl.float32)
                y = tl.where(mask, y, 0.0)  # masked elements 0: out of the amax record
                if AMAX:
                    largest = tl.maximum(largest, tl.abs(y))
                q = tl.clamp(y * scale, -fmax, fmax).to(q_ptr.dtype.element_ty)
                tl.store(q_ptr + at, q, mask=mask)
                # qt is (N, M) row-major: Triton converts the tile's layout so this store runs along qt's rows
                tl.store(qt_ptr + cols[None, :] * M + rows[:, None], q, mask=mask)
        if AMAX:  # the largest |y| so far, for the next call's scale (delayed scaling): one atomic per program
            tl.atomic_max(amax_ptr, tl.max(largest))

    return fp8_ln_cast_transpose_kernel


def _launch(x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor | None,
            eps: float, scale: torch.Tensor, q: torch.Tensor, qt: torch.Tensor, mean: torch.Tensor,
            rstd: torch.Tensor, s: torch.Tensor | None = None, amax: torch.Tensor | None = None,
            block_m: int = BLOCK_M, block_n: int = BLOCK_N, warps: int = WARPS, programs: int | None = None,
            fmax: float | None = None, round_bits: bool | None = None, stages: int | None = None) -> None:  # fmt: skip
    """The kernel over ``x`` (M, C) contiguous, bf16 or fp32 (and ``residual``, the same, with ``s`` (M, C) in
    ``x``'s dtype receiving their sum): LayerNorm with ``weight`` (C,) and ``bias`` (C,) or None, rounded to bf16,
    times ``scale``, clamped to +-``fmax`` (``q``'s format's largest value by default) into ``q`` (M, C) and ``qt``
    (C, M); ``mean`` and ``rstd`` (M,) fp32; ``amax``, an fp32 scalar, raised to the largest ``|y|`` if given.
    ``programs``: how many loop over the row blocks (WAVES per SM on CUDA by default, one per block elsewhere).
    ``round_bits``: round to bf16 on the bits (the interpreter's way, by default under it) instead of by the
    conversion. ``stages``: Triton's ``num_stages`` (its software pipelining of the column loops; None: its default)."""
    m, n = x.shape
    if x.dtype not in (torch.bfloat16, torch.float32) or (residual is not None and residual.dtype != x.dtype):
        raise ValueError(f"the kernel takes bf16 or fp32 x, a residual of the same dtype: {x.dtype}")
    blocks = -(-m // block_m)
    if programs is None:
        programs = _sm_count(x.device) * WAVES if x.is_cuda else blocks
    interpret = interpreting()
    kwargs = {} if interpret else {"num_warps": warps, **({} if stages is None else {"num_stages": stages})}
    # a pointer a pass does not touch (residual and s without RESIDUAL, bias, amax) is another tensor's
    _kernel(interpret)[(max(1, min(blocks, programs)),)](
        x, x if residual is None else residual, x if s is None else s, weight, weight if bias is None else bias,
        scale, q, qt, scale if amax is None else amax, mean, rstd, m, n, eps,
        torch.finfo(q.dtype).max if fmax is None else fmax, RESIDUAL=residual is not None,
        ROUND_SUM=x.dtype == torch.bfloat16, BIAS=bias is not None, AMAX=amax is not None,
        ROUND_BITS=interpret if round_bits is None else round_bits, BLOCK_M=block_m, BLOCK_N=block_n, **kwargs)  # fmt: skip


@op("gpt2train::fp8_ln_cast_transpose", mutates_args=("amax",))
def ln_cast_transpose_kernel(x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor,
                             bias: torch.Tensor | None, eps: float, scale: torch.Tensor, dtype: torch.dtype,
                             amax: torch.Tensor | None,
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`ln_cast_transpose_reference`'s (q, qt, s or an empty tensor, mean, rstd) (``amax`` too), from one
    Triton kernel on CUDA for a bf16 ``x`` (and a bf16 ``residual``); the reference elsewhere."""
    same = residual is None or residual.dtype == x.dtype
    if not (x.is_cuda and triton_available() and x.dtype in KERNEL_SOURCES and same):
        q, qt, s, mean, rstd = ln_cast_transpose_reference(x, residual, weight, bias, eps, scale, dtype, amax)
        return q, qt, (x.new_empty(0) if s is None else s), mean, rstd
    x = x.contiguous()
    m, n = x.shape
    q = torch.empty((m, n), dtype=dtype, device=x.device)
    qt = torch.empty((n, m), dtype=dtype, device=x.device)
    s = torch.empty_like(x) if residual is not None else x.new_empty(0)
    mean = torch.empty(m, dtype=torch.float32, device=x.device)
    rstd = torch.empty(m, dtype=torch.float32, device=x.device)
    _launch(x, None if residual is None else residual.contiguous(), weight.contiguous(),
            None if bias is None else bias.contiguous(), eps, scale, q, qt, mean, rstd,
            s if residual is not None else None, amax)  # fmt: skip
    return q, qt, s, mean, rstd


@torch.library.register_fake(ln_cast_transpose_kernel)
def _(x, residual, weight, bias, eps, scale, dtype, amax):  # shapes and dtypes for torch.compile
    m, n = x.shape
    s = x.new_empty(0) if residual is None else x.new_empty((m, n), dtype=torch.result_type(x, residual))
    mean, rstd = (x.new_empty(m, dtype=torch.float32) for _ in range(2))
    return x.new_empty((m, n), dtype=dtype), x.new_empty((n, m), dtype=dtype), s, mean, rstd
