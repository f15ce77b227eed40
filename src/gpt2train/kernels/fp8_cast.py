"""The FP8 cast of ``--fp8``'s linears in one pass (``--fp8-cast-kernel``, on with ``--fp8`` on CUDA): a bf16
matrix, scaled, clamped and cast to FP8, written both as it is and transposed.

Hopper's FP8 matmul (``torch._scaled_mm``) takes its operands K-major only, so each FP8 operand is needed in two
layouts: ``x`` (M, K) for ``y = x @ W.T`` and its transpose for ``dW = dy.T @ x``; ``dy`` likewise for ``dx`` and
``dW``; ``W`` for ``y`` and ``dx``. Compiled as plain PyTorch, Inductor writes the transposed copy with one side's
accesses strided, and on d48 these casts ran at 1-2 TB/s, 200 ms of the step (BENCHMARKS.md, issue 21). This
kernel reads a tile once and writes both copies coalesced (the transpose goes through shared memory).

Pieces:

* :func:`cast_transpose_reference` -- the same arithmetic in plain PyTorch (the test oracle, and the CPU path).
* :func:`cast_transpose_kernel` -- the custom op ``gpt2train::fp8_cast_transpose``: the Triton kernel on CUDA,
  opaque to torch.compile, the reference elsewhere. On an H200 its bytes equal the reference's from bf16 (one fp32
  multiply by the same scale, the same clamp, the same round-to-nearest-even cast); from fp32 a quarter of the
  transposed copy's bytes came out wrong (``fp8_linear`` rounds those to bf16 first), so:
* :func:`cast_transpose` -- the kernel for bf16 matrices (``KERNEL_SOURCES``), the reference for others, traced
  into the compiled graph where Inductor fuses it with its producer.
* :func:`transpose_kernel` -- the custom op ``gpt2train::fp8_transpose``: the same kernel's copy-only pass, the
  transpose of a matrix already cast; and :func:`cast_then_transpose` (``--fp8-cast-kernel 2``): the reference's
  cast, which Inductor fuses into the operand's producer, then that transpose.
* :func:`grad_cast_transpose_kernel` -- the custom op ``gpt2train::fp8_grad_cast_transpose``: an output gradient's
  cast in both layouts with its column sums (the layer's bias gradient) from the same pass, where a separate sum read
  the gradient again (c_attn's and the c_proj layers' bias gradients, 12.7 ms of d12's step on an H200: BENCHMARKS.md,
  issue 21's thirteenth session).

* :func:`activation_cast_transpose_kernel` -- the custom op ``gpt2train::fp8_activation_cast_transpose``
  (``--fp8-gelu-cast``, kernels/fp8_fused.py): the same kernel's activation passes, which cast GELU (or ReLU²) of
  ``h + bias`` (c_fc's output into c_proj's FP8 input), or a gradient times the activation's derivative there with
  the bias gradient's column sums (c_fc's FP8 output gradient), computed in the pass itself;
  :func:`activation_cast_transpose_reference` is the same in plain PyTorch.

Either can also record the largest ``|t|`` into an fp32 scalar (``amax``) as it casts: delayed scaling
(``--fp8-scaling delayed``) takes its next scale from these records, so no pass over ``t`` precedes the cast.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from gpt2train.kernels._library import op
from gpt2train.kernels._triton import interpreting, triton_available

# a tile: BLOCK_M rows by BLOCK_N columns of the input; the grid: WAVES programs per SM, each looping over tiles with
# the next tile's load in flight (STAGES). Against one 64x64 tile per program: 3.3-3.4 TB/s instead of 3.0-3.1 on an
# H200's d12 and d48 activations (BENCHMARKS.md, issue 21's tenth session), and one amax atomic per program
BLOCK_M, BLOCK_N, WARPS, STAGES, WAVES = 64, 128, 4, 2, 4
# with an output gradient's column sums (an accumulator per program as large as a tile): 8 programs per SM. The two
# launches for sums (this and FUSED_SUMS_WARPS below) took d12's step to 768.0/765.6 ms from 771.7/775.9 (H200,
# BENCHMARKS.md, issue 21's nineteenth session; the passes alone, timed apart, varied by up to 2x between sweeps)
SUMS_WAVES = 8
# from fp32 (a LayerNorm's output under autocast) a quarter of the transposed copy's bytes came out wrong on an H200
# (triton 3.6, shapes in multiples of 16; transposed by tl.trans or by the store's addresses alike), from bf16 none:
# fp8_linear rounds fp32 operands to bf16 before the kernel
KERNEL_SOURCES = (torch.bfloat16,)
# the kernel's ACT: what it computes from its input before the cast (0: nothing), by MLP activation (model.ACTIVATIONS)
# and direction: (the activation of h, a gradient times its derivative at h)
ACT_PASSES = {"gelu": (1, 2), "relu2": (3, 4)}
# the passes that compute before they cast (GELU's, the gather of q, k and v's gradients): tiles, warps and programs
# per SM (0: one program per tile). For GELU's the fastest of ten launches on an H200, 2.0-2.3 TB/s where the cast's
# own ran them at 1.0-1.9 (BENCHMARKS.md, issue 21's eleventh session); then, of 26 variants, 12 programs per SM
# with the amax reduced per tile (fewer registers than the plain cast's running max per element): d12's forward
# and backward passes 0.352 and 0.574 ms against 0.378 and 0.613, d48's 0.200 and 0.301 against 0.214 and 0.345
# (fifteenth session). The gather's is not measured. The backward pass, with its sums accumulator (nineteenth
# session), in 8 warps (SUMS_WAVES above says what it gained)
FUSED_BLOCK_M, FUSED_BLOCK_N, FUSED_WARPS, FUSED_WAVES = 64, 64, 4, 12
FUSED_SUMS_WARPS = 8


def cast_transpose_reference(t: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, transpose: bool = True,
                             amax: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """``t`` (M, N) times ``scale`` (an fp32 scalar tensor) in fp32, clamped to ``dtype``'s range, cast:
    (that, its transpose made contiguous or None). ``amax`` (an fp32 scalar), if given, is raised in place to the
    largest ``|t|`` (what delayed scaling records for the next call's scale)."""
    if amax is not None:
        amax.copy_(torch.maximum(amax, t.detach().abs().amax().float()))
    fmax = torch.finfo(dtype).max
    q = (t.float() * scale).clamp(-fmax, fmax).to(dtype)
    return q, (q.t().contiguous() if transpose else None)


@functools.lru_cache(maxsize=2)
def _kernel(interpret: bool):
    # built on first use: triton.jit picks the interpreter from TRITON_INTERPRET at decoration time
    import triton
    import triton.language as tl

    @triton.jit
    def fp8_cast_transpose_kernel(x_ptr, scale_ptr, q_ptr, qt_ptr, amax_ptr, bias_ptr, g_ptr, sums_ptr, k_ptr, v_ptr,
                                  M, N, fmax, seq, width, head_dim, stride_b, stride_h, stride_t, CAST: tl.constexpr,
                                  WRITE_T: tl.constexpr, AMAX: tl.constexpr, ACT: tl.constexpr, BIAS: tl.constexpr,
                                  GATHER: tl.constexpr, SUMS: tl.constexpr, BLOCK_M: tl.constexpr,
                                  BLOCK_N: tl.constexpr, STAGES: tl.constexpr, TILE_AMAX: tl.constexpr):  # fmt: skip
        tiles_n = tl.cdiv(N, BLOCK_N)
        if CAST:  # loaded once per program, as in the variant measured (BENCHMARKS.md, issue 21's tenth session)
            scale = tl.load(scale_ptr)
        # |x| so far over this program's tiles: element-wise (the plain cast's faster form), or one value reduced
        # from each tile (TILE_AMAX: the passes that compute before they cast, where registers are short)
        if TILE_AMAX:
            largest = 0.0
        else:
            largest = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if SUMS:  # the launch gives each program one column block (programs a multiple of tiles_n): its tiles' sum,
            # element by element, reduced to column sums once at the end. Reduced tile by tile (across warps), the
            # sums cost d12's GELU backward pass 0.630 ms against 0.528, the gather 0.526 against 0.361 on an H200
            # (BENCHMARKS.md, issue 21's nineteenth session)
            total = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for tile in tl.range(tl.program_id(0), tl.cdiv(M, BLOCK_M) * tiles_n, tl.num_programs(0), num_stages=STAGES):
            rows = (tile // tiles_n).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
            cols = (tile % tiles_n).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
            mask = (rows[:, None] < M) & (cols[None, :] < N)
            if GATHER:  # x (M = B*T, N = 3*width) is q|k|v's gradient: column j from x_ptr, k_ptr or v_ptr by
                # j // width, each (B, heads, T, head_dim) with the strides given and head_dim's stride 1. BLOCK_N
                # divides head_dim, so a tile's columns are one head's, contiguous in one source: its rows load as
                # the plain cast's do. (Gathered column by column, Triton 3.6 loaded the tile in the transposed
                # copy's layout and converted the e4m3 tile for the other store: half its bytes came out wrong on
                # an H200, BENCHMARKS.md, issue 21's twelfth session.)
                col = (tile % tiles_n) * BLOCK_N
                part, head, d = col // width, (col % width) // head_dim, tl.multiple_of(col % head_dim, BLOCK_N)
                src = tl.where(part == 0, x_ptr, tl.where(part == 1, k_ptr, v_ptr))
                batch, t = rows // seq, rows % seq
                at = (batch * stride_b + t * stride_t)[:, None] + (head * stride_h + d + tl.arange(0, BLOCK_N))[None, :]
                x = tl.load(src + at, mask=mask, other=0.0).to(tl.float32)
            elif CAST:
                x = tl.load(x_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            if CAST:
                if BIAS:  # h = x + bias, rounded to bf16 as the unfused path's bias add rounds it
                    b = tl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(tl.bfloat16).to(tl.float32)
                    x = (x + b[None, :]).to(tl.bfloat16).to(tl.float32)
                if ACT == 1 or ACT == 2:  # GELU (tanh) of h or its backward: gelu(h) = h sigmoid(2u), u = k (h + ch^3)
                    s = tl.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x))
                    if ACT == 1:
                        x = x * s
                    else:  # g * gelu'(h), gelu'(h) = s + h s (1 - s) 2k (1 + 3c h^2)
                        g = tl.load(g_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                        x = g * (s + x * s * (1.0 - s) * 1.5957691216057308 * (1.0 + 0.134145 * x * x))
                elif ACT == 3:  # ReLU² of h
                    x = tl.maximum(x, 0.0) * tl.maximum(x, 0.0)
                elif ACT == 4:  # g * 2h where h > 0, else +0 (as autograd's ReLU backward masks it)
                    g = tl.load(g_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                    x = tl.where(x > 0.0, g * (2.0 * x), 0.0)
                if ACT != 0:  # rounded to bf16 as the unfused path writes it; masked elements 0 (gelu(bias) is not)
                    x = tl.where(mask, x.to(tl.bfloat16).to(tl.float32), 0.0)
                if SUMS:  # masked elements are 0
                    total += x
                if AMAX and TILE_AMAX:  # masked elements are 0
                    largest = tl.maximum(largest, tl.max(tl.abs(x)))
                elif AMAX:
                    largest = tl.maximum(largest, tl.abs(x))
                q = tl.clamp(x * scale, -fmax, fmax).to(q_ptr.dtype.element_ty)
                tl.store(q_ptr + rows[:, None] * N + cols[None, :], q, mask=mask)
            else:  # x is already cast (its bytes): only the transposed copy
                q = tl.load(x_ptr + rows[:, None] * N + cols[None, :], mask=mask)
            if WRITE_T:  # qt is (N, M) row-major: Triton converts the tile's layout (through shared memory) so the
                # store runs along qt's rows (as fast as a tl.trans in registers, bench/kernels_gpu_check.py)
                tl.store(qt_ptr + cols[None, :] * M + rows[:, None], q, mask=mask)
        if AMAX:  # the largest |x| so far, for the next call's scale (delayed scaling): one atomic per program
            tl.atomic_max(amax_ptr, largest if TILE_AMAX else tl.max(largest))
        if SUMS:  # a bias gradient's share from this program's column block: a row of sums per tiles_n programs
            cols = (tl.program_id(0) % tiles_n).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
            tl.store(sums_ptr + (tl.program_id(0) // tiles_n) * N + cols, tl.sum(total, axis=0), mask=cols < N)

    return fp8_cast_transpose_kernel


@functools.lru_cache(maxsize=8)
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _launch(t: torch.Tensor, scale: torch.Tensor | None, q: torch.Tensor | None, qt: torch.Tensor | None,
            amax: torch.Tensor | None = None, block_m: int = BLOCK_M, block_n: int = BLOCK_N,
            warps: int = WARPS, programs: int | None = None, act: int = 0, bias: torch.Tensor | None = None,
            g: torch.Tensor | None = None, sums: bool = False,
            gather: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor | None:  # fmt: skip
    """The kernel over ``t`` (M, N), contiguous, into ``q`` (M, N) and ``qt`` (N, M) (or only ``q``); ``amax``, an
    fp32 scalar, raised to the largest ``|t|`` if given. Without ``scale`` and ``q``, ``t`` is already cast (as
    uint8 bytes) and only ``qt`` is written: its transpose. ``act`` (a pair of ACT_PASSES): what is cast is the
    activation of ``h = t + bias`` (``bias`` (N,) or None), or ``g`` (M, N) times its derivative at ``h``. ``sums``: also
    the column sums of what is cast, (N,) in fp32, returned (else None).
    ``gather`` (k's and v's gradients): ``t`` is q's, (B, heads, T, head_dim) as attention returns it, and the
    matrix cast is (B*T, 3C) q|k|v's gradient, gathered in the pass (``block_n`` must divide head_dim).
    ``programs``: how many loop over the tiles (WAVES per SM on CUDA by default, one per tile elsewhere; with
    ``sums``, rounded down to whole column blocks, at least one)."""
    if gather is None:
        m, n = t.shape
        dims, gather = (0,) * 6, (t, t)  # the gathered tensors' T, width, head_dim and strides
    else:
        b, heads, seq, head_dim = t.shape
        m, n = b * seq, 3 * heads * head_dim
        if head_dim % block_n:
            raise ValueError(f"the gather pass needs block_n ({block_n}) to divide head_dim ({head_dim})")
        dims = (seq, heads * head_dim, head_dim, t.stride(0), t.stride(1), t.stride(2))
    tiles_n = (n + block_n - 1) // block_n
    tiles = ((m + block_m - 1) // block_m) * tiles_n
    if programs is None:
        programs = _sm_count(t.device) * WAVES if t.is_cuda else tiles
    programs = max(1, min(tiles, programs))
    row_sums = None  # with sums: a row of column sums per tiles_n programs, summed after
    if sums:  # programs a multiple of tiles_n: each one's tiles are then in one column block (the kernel's SUMS)
        programs = max(1, programs // tiles_n) * tiles_n
        row_sums = torch.empty((programs // tiles_n, n), dtype=torch.float32, device=t.device)
    interpret = interpreting()  # read once: this runs 2,312 times a d48 step
    kwargs = {} if interpret else {"num_warps": warps}
    cast, write_t = q is not None, qt is not None
    fmax = torch.finfo(q.dtype).max if cast else 0.0
    # a pointer a pass does not touch (q without CAST, qt without WRITE_T, amax without AMAX...) is another tensor's
    _kernel(interpret)[(programs,)](
        t, t if scale is None else scale, q if cast else qt, qt if write_t else q, t if amax is None else amax,
        t if bias is None else bias, t if g is None else g, t if row_sums is None else row_sums, *gather, m, n, fmax,
        *dims, CAST=cast, WRITE_T=write_t, AMAX=amax is not None, ACT=act, BIAS=bias is not None,
        GATHER=dims[0] > 0, SUMS=sums, BLOCK_M=block_m, BLOCK_N=block_n, STAGES=STAGES,
        TILE_AMAX=act != 0 or dims[0] > 0, **kwargs)  # fmt: skip
    return None if row_sums is None else row_sums.sum(0)


@op("gpt2train::fp8_cast_transpose", mutates_args=("amax",))
def cast_transpose_kernel(t: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, transpose: bool,
                          amax: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(q, q transposed or an empty tensor): :func:`cast_transpose_reference`'s (``amax`` too), from the Triton
    kernel on CUDA."""
    if not (t.is_cuda and triton_available()):
        q, qt = cast_transpose_reference(t, scale, dtype, transpose, amax)
        return q, (q.new_empty(0) if qt is None else qt)
    t = t.contiguous()
    q = torch.empty(t.shape, dtype=dtype, device=t.device)
    qt = torch.empty((t.shape[1], t.shape[0]) if transpose else 0, dtype=dtype, device=t.device)
    _launch(t, scale, q, qt if transpose else None, amax)
    return q, qt


@torch.library.register_fake(cast_transpose_kernel)
def _(t, scale, dtype, transpose, amax):  # shapes and dtypes for torch.compile
    return t.new_empty(t.shape, dtype=dtype), t.new_empty((t.shape[1], t.shape[0]) if transpose else 0, dtype=dtype)


@op("gpt2train::fp8_transpose", mutates_args=())
def transpose_kernel(q: torch.Tensor) -> torch.Tensor:
    """``q`` (M, N), already cast, transposed and made contiguous: by the kernel's copy-only pass over its bytes on
    CUDA, ``q.t().contiguous()`` elsewhere."""
    if not (q.is_cuda and triton_available()):
        return q.t().contiguous()
    q = q.contiguous()
    qt = torch.empty((q.shape[1], q.shape[0]), dtype=q.dtype, device=q.device)
    _launch(q.view(torch.uint8), None, None, qt.view(torch.uint8))
    return qt


@torch.library.register_fake(transpose_kernel)
def _(q):
    return q.new_empty((q.shape[1], q.shape[0]))


def grad_cast_transpose_reference(g: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype,
                                  amax: torch.Tensor | None = None,
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """A linear's output gradient ``g`` (M, N) as :func:`cast_transpose_reference` casts it in both layouts
    (``amax`` too), with its column sums in fp32: the layer's bias gradient."""
    q, qt = cast_transpose_reference(g, scale, dtype, True, amax)
    return q, qt, g.float().sum(0)


@op("gpt2train::fp8_grad_cast_transpose", mutates_args=("amax",))
def grad_cast_transpose_kernel(g: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, amax: torch.Tensor | None,
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`grad_cast_transpose_reference`'s result, on CUDA from one pass of the Triton kernel over a bf16 ``g``:
    the column sums come from the cast's own pass instead of a pass of their own."""
    if not (g.is_cuda and triton_available() and g.dtype in KERNEL_SOURCES):
        return grad_cast_transpose_reference(g, scale, dtype, amax)
    g = g.contiguous()
    m, n = g.shape
    q = torch.empty((m, n), dtype=dtype, device=g.device)
    qt = torch.empty((n, m), dtype=dtype, device=g.device)
    return q, qt, _launch(g, scale, q, qt, amax, programs=_sm_count(g.device) * SUMS_WAVES, sums=True)


@torch.library.register_fake(grad_cast_transpose_kernel)
def _(g, scale, dtype, amax):
    m, n = g.shape
    return g.new_empty((m, n), dtype=dtype), g.new_empty((n, m), dtype=dtype), g.new_empty(n, dtype=torch.float32)


def cast_transpose(t: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, transpose: bool = True,
                   amax: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """:func:`cast_transpose_reference`'s result, in one pass of the Triton kernel on CUDA for a bf16 ``t``; the
    reference itself (compiled with its neighbours) for other dtypes."""
    if t.dtype not in KERNEL_SOURCES:
        return cast_transpose_reference(t, scale, dtype, transpose, amax)
    out = cast_transpose_kernel(t, scale, dtype, transpose, amax)
    return out[0], (out[1] if transpose else None)


def cast_then_transpose(t: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, transpose: bool = True,
                        amax: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """:func:`cast_transpose_reference`'s result in two steps (``--fp8-cast-kernel 2``): the cast (and the amax
    record) as plain PyTorch, which Inductor can fuse into ``t``'s producer so ``t`` need not be written at all, then
    the transposed copy by the kernel's copy-only pass (a byte read and written per element, where the one-pass kernel
    reads ``t``'s two and writes two)."""
    q, _ = cast_transpose_reference(t, scale, dtype, False, amax)
    return q, (transpose_kernel(q) if transpose else None)


def _fused_launch(device: torch.device, m: int, n: int, warps: int = FUSED_WARPS) -> tuple[int, int, int, int]:
    """(block_m, block_n, warps, programs) of a pass that computes before it casts, over an (m, n) matrix."""
    tiles = -(-m // FUSED_BLOCK_M) * -(-n // FUSED_BLOCK_N)
    return FUSED_BLOCK_M, FUSED_BLOCK_N, warps, _sm_count(device) * FUSED_WAVES if FUSED_WAVES else tiles


def activation_before_cast(h: torch.Tensor, g: torch.Tensor | None, activation: str) -> torch.Tensor:
    """The unfused MLP's arithmetic before the cast, in ``h``'s dtype: the activation of ``h`` (``gelu``: GELU
    (tanh); ``relu2``: relu(h)²), or with ``g`` the gradient times its derivative at ``h``."""
    if activation not in ACT_PASSES:
        raise ValueError(f"activation {activation!r}: use one of {', '.join(ACT_PASSES)}")
    if activation == "relu2":  # as autograd differentiates relu(h).square(): g * 2h (one rounding) where h > 0, else +0
        return F.relu(h).square() if g is None else torch.where(h > 0, g.to(h.dtype) * (2 * h), 0.0)
    if g is None:
        return F.gelu(h, approximate="tanh")
    return torch.ops.aten.gelu_backward(g.to(h.dtype), h, approximate="tanh")


def activation_cast_transpose_reference(h: torch.Tensor, bias: torch.Tensor | None, g: torch.Tensor | None,
                                        scale: torch.Tensor, dtype: torch.dtype, amax: torch.Tensor | None = None,
                                        activation: str = "gelu",
                                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """What ``--fp8``'s MLP casts around its activation (``--fp8-gelu-cast``), as the unfused path computes it: with
    ``g`` None, the activation (``gelu``: GELU (tanh); ``relu2``: relu(x)²) of ``h + bias`` (c_proj's input); else
    ``g`` times its derivative there (c_fc's output gradient). Either in ``h``'s dtype, then rounded to bf16 and cast
    as :func:`cast_transpose_reference` (``amax`` too). Returns (q, q transposed, the gradient's column sums in fp32,
    c_fc's bias gradient; None without ``g``)."""
    if bias is not None:
        h = h + bias.to(h.dtype)
    t = activation_before_cast(h, g, activation)
    q, qt = cast_transpose_reference(t.to(torch.bfloat16), scale, dtype, True, amax)
    return q, qt, (None if g is None else t.float().sum(0))


@op("gpt2train::fp8_activation_cast_transpose", mutates_args=("amax",))
def activation_cast_transpose_kernel(h: torch.Tensor, bias: torch.Tensor | None, g: torch.Tensor | None,
                                     scale: torch.Tensor, dtype: torch.dtype, amax: torch.Tensor | None,
                                     activation: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`activation_cast_transpose_reference`'s (q, qt, column sums or an empty tensor), in one pass of the
    Triton kernel on CUDA for a bf16 ``h`` (in fp32; GELU from its sigmoid form, the reference's tanh up to
    rounding)."""
    if not (h.is_cuda and triton_available() and h.dtype in KERNEL_SOURCES):
        q, qt, sums = activation_cast_transpose_reference(h, bias, g, scale, dtype, amax, activation)
        return q, qt, (h.new_empty(0, dtype=torch.float32) if sums is None else sums)
    h = h.contiguous()
    m, n = h.shape
    q = torch.empty((m, n), dtype=dtype, device=h.device)
    qt = torch.empty((n, m), dtype=dtype, device=h.device)
    launch = _fused_launch(h.device, m, n, FUSED_WARPS if g is None else FUSED_SUMS_WARPS)
    sums = _launch(h, scale, q, qt, amax, *launch, act=ACT_PASSES[activation][g is not None], bias=bias,
                   g=None if g is None else g.contiguous(), sums=g is not None)  # fmt: skip
    return q, qt, (h.new_empty(0, dtype=torch.float32) if sums is None else sums)


@torch.library.register_fake(activation_cast_transpose_kernel)
def _(h, bias, g, scale, dtype, amax, activation):
    m, n = h.shape
    return (
        h.new_empty((m, n), dtype=dtype),
        h.new_empty((n, m), dtype=dtype),
        h.new_empty(0 if g is None else n, dtype=torch.float32),
    )


def qkv_grad_cast_transpose_reference(dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor, scale: torch.Tensor,
                                      dtype: torch.dtype, amax: torch.Tensor | None = None,
                                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """c_attn's output gradient as the unfused path makes it from attention's q, k and v gradients (each (B, heads,
    T, head_dim)): concatenated into (B*T, 3C), rounded to bf16 and cast as :func:`cast_transpose_reference`
    (``amax`` too). Returns (q, q transposed, its column sums in fp32: c_attn's bias gradient)."""
    b, heads, seq, head_dim = dq.shape
    t = torch.cat([g.transpose(1, 2).reshape(b * seq, heads * head_dim) for g in (dq, dk, dv)], dim=1)
    q, qt = cast_transpose_reference(t.to(torch.bfloat16), scale, dtype, True, amax)
    return q, qt, t.float().sum(0)


@op("gpt2train::fp8_qkv_grad_cast_transpose", mutates_args=("amax",))
def qkv_grad_cast_transpose_kernel(dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor, scale: torch.Tensor,
                                   dtype: torch.dtype, amax: torch.Tensor | None,
                                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`qkv_grad_cast_transpose_reference`'s result, the three gradients gathered by the Triton kernel in its
    cast pass on CUDA (bf16, the same strides, head_dim's 1), so the concatenated gradient is never written."""
    b, heads, seq, head_dim = dq.shape
    m, n = b * seq, 3 * heads * head_dim
    block_n = math.gcd(FUSED_BLOCK_N, head_dim)  # a tile's columns within one head (16 at least: 16-byte loads)
    same = dk.stride() == dq.stride() == dv.stride() and dq.stride(3) == 1
    if not (dq.is_cuda and triton_available() and dq.dtype in KERNEL_SOURCES and same and block_n >= 16):
        return qkv_grad_cast_transpose_reference(dq, dk, dv, scale, dtype, amax)
    block_m, _, warps, programs = _fused_launch(dq.device, m, n)
    q = torch.empty((m, n), dtype=dtype, device=dq.device)
    qt = torch.empty((n, m), dtype=dtype, device=dq.device)
    return q, qt, _launch(dq, scale, q, qt, amax, block_m, block_n, warps, programs, sums=True, gather=(dk, dv))


@torch.library.register_fake(qkv_grad_cast_transpose_kernel)
def _(dq, dk, dv, scale, dtype, amax):
    b, heads, seq, head_dim = dq.shape
    m, n = b * seq, 3 * heads * head_dim
    return dq.new_empty((m, n), dtype=dtype), dq.new_empty((n, m), dtype=dtype), dq.new_empty(n, dtype=torch.float32)
