"""Output layer + cross-entropy without ever holding the full (B*T, Vp) logits.

Reference: :func:`plain_classifier_loss` (logits = x @ W^T, sliced to ``vocab_size``, fp32 mean
cross-entropy, ``ignore_index=-1``): the model's own loss head (model.py) unless the fast path is swapped in.

The fast path, :func:`chunked_classifier_loss`, walks the rows of x in chunks. For each chunk it
computes the logits, the fp32 log-softmax over the real vocabulary, the loss, and at once the
gradient of the mean loss with respect to those logits; it then turns that gradient into the
chunk's rows of dx and adds its share of dW, and drops the logits. Backward only scales the stored
dx and dW by the incoming gradient (1.0 in training). Peak extra memory is one chunk of logits
(in the compute dtype and in fp32) plus dx and an fp32 dW, instead of the full logits, their fp32
copy and their gradient.

Padded vocabulary columns (``vocab_size <= j < Vp``) are never predicted: their logits are masked
to -inf before the softmax, so their gradient and the gradient of the padded rows of W are zero,
exactly as in the reference. A target outside ``[0, vocab_size)`` other than -1 is never used as an
index (no read out of bounds): its row's loss is NaN, so the loss fails loudly (the reference raises);
the shard readers refuse such tokens before training (formats/shards.py check_token_ids).

With ``fp8`` (``--fp8-classifier 1``) the three matmuls of each chunk run in FP8 (:func:`_fp8_chunks`): the
logits from e4m3 copies of x and W, and the gradient of the logits, written in e5m2 at a fixed scale as it is and
transposed by one Triton pass (``ce_grad_fp8_kernel``), for dx and dW. Its reference is the same chunk's PyTorch
gradient cast in PyTorch (:func:`_chunk_loss_and_fp8_grads`). ``--fp8-classifier 3`` rounds that gradient to e5m2
stochastically (:func:`stochastic_round_e5m2`) instead of to nearest: rounding to nearest is biased the same way for
every token whose gradient takes the same value, stochastic rounding is unbiased at the cost of noise.
``--fp8-classifier 4`` keeps each row's target term (-1/N, the row's largest entry) out of the float8 gradient and
adds it exactly (:func:`_target_term`, times the same e4m3 copies of W and x), and writes dx's copy in e4m3 with
each row scaled by its own largest probability (``ROW_SCALED``); dW's stays e5m2 at the fixed scale.

Under ``torch.autocast`` the matmuls run in the autocast dtype (like ``F.linear`` would) and the
returned gradients are cast back to the dtypes of x and W. The function is plain tensor code with
a Python loop over chunks, so ``torch.compile`` can trace it (the loop is unrolled for a fixed
number of rows); ``bench/kernels_gpu_check.py`` checks that on the GPU.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from gpt2train.config import FP8_CLASSIFIER_GRAD_MODES
from gpt2train.kernels._triton import interpreting, triton_available
from gpt2train.kernels.fp8_linear import scaled_mm

DEFAULT_CHUNK_ROWS = 16384  # 16384 x 50304 bf16 logits = 1.6 GB; big enough to keep the GPU busy


def plain_classifier_loss(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int, softcap: float = 0.0
) -> torch.Tensor:
    """Reference output layer + mean cross-entropy over the unpadded vocabulary, in fp32.

    ``softcap`` > 0 squashes the logits to (-softcap, softcap) by softcap * tanh(logits / softcap) first
    (the modern recipe's ``--logit-softcap``)."""
    logits = F.linear(x, weight)[..., :vocab_size].float()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1), ignore_index=-1)


def _accumulate_fp32(dw: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``dw += a @ b`` into the fp32 ``dw``; a and b are in the compute dtype."""
    if a.dtype == torch.float32:
        dw.addmm_(a, b)
    elif a.is_cuda and hasattr(torch.ops.aten.addmm, "dtype_out") and not torch.compiler.is_compiling():
        # cuBLAS accumulates into the fp32 output itself: no bf16 rounding, no separate add kernel
        # (not under torch.compile, e.g. --compile-scope model: dynamo's fake addmm.dtype_out fails on torch 2.11)
        torch.addmm(dw, a, b, out_dtype=torch.float32, out=dw)
    else:
        dw.add_(a @ b)  # one rounding to the compute dtype per chunk, accumulated in fp32


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype F.linear would use here: the autocast dtype if autocast is on, else x's dtype."""
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return x.dtype


def _chunk_loss_and_dlogits(
    logits: torch.Tensor, targets: torch.Tensor, vocab_size: int, row_scale: torch.Tensor | None, softcap: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed cross-entropy of one chunk and, if ``row_scale`` is given, d(loss)/d(logits).

    ``logits`` is (n, Vp) in the compute dtype; the gradient is written back into it (same dtype)
    to avoid a second (n, Vp) buffer. ``row_scale`` is (n,) fp32: 1/N for valid rows, 0 for rows
    whose target is -1.
    """
    lf = logits.float()  # a copy for bf16; the same tensor for fp32 (then we work in place)
    if softcap:
        if lf is logits:
            lf = lf.clone()  # the raw logits stay for the tanh's derivative
        lf.div_(softcap).tanh_().mul_(softcap)
    if lf.shape[1] > vocab_size:
        lf[:, vocab_size:] = float("-inf")  # padded columns: probability 0, gradient 0
    valid = targets != -1
    # a target outside the real vocabulary (a bad shard) is never read: its row's loss is NaN, loudly
    in_vocab = (targets >= 0) & (targets < vocab_size)
    safe_t = torch.where(in_vocab, targets, torch.zeros_like(targets)).unsqueeze(1)
    target_logit = lf.gather(1, safe_t).squeeze(1)
    # log-sum-exp by hand, in place: torch.logsumexp would allocate another (n, Vp) fp32 temp
    row_max = lf.amax(dim=1)
    lf.sub_(row_max.unsqueeze(1)).exp_()
    row_sum = lf.sum(dim=1)
    lse = row_max + row_sum.log()
    row_loss = torch.where(in_vocab, lse - target_logit, torch.where(valid, float("nan"), 0.0))
    loss_sum = row_loss.sum()
    if row_scale is None:
        return loss_sum, None
    # softmax - onehot, scaled per row by 1/N (0 for ignored rows)
    probs = lf.mul_((row_scale / row_sum).unsqueeze(1))
    probs.scatter_add_(1, safe_t, -(in_vocab.to(probs.dtype) * row_scale).unsqueeze(1))
    if softcap:  # d(c*tanh(l/c))/dl = 1 - tanh(l/c)^2
        probs.mul_(1 - torch.tanh(logits.float() / softcap).square())
    if probs is not logits:
        logits.copy_(probs)
    return loss_sum, logits


@functools.lru_cache(maxsize=2)
def _ce_kernel(interpret: bool):
    # built on first use: triton.jit picks the interpreter from TRITON_INTERPRET at decoration time
    import triton
    import triton.language as tl

    @triton.jit
    def ce_grad_kernel(
        logits_ptr,  # (n, Vp), bf16 or fp32; overwritten with d(loss)/d(logits) when HAS_GRAD
        stride_row,
        targets_ptr,  # (n,) int64, -1 = ignore
        row_scale_ptr,  # (n,) fp32: 1/N, or 0 for ignored rows
        loss_ptr,  # (n,) fp32 out: per-row cross-entropy (0 for ignored rows)
        V,
        Vp,
        softcap,  # > 0 when HAS_CAP: logits become softcap * tanh(logits / softcap), tanh(u) written as
        # 1 - 2 / (exp(2u) + 1): exact limits at +-inf and no libdevice, so the CPU interpreter runs it too
        lse_ptr,  # (n,) fp32 out when WRITE_LSE: each row's log-sum-exp (for ce_grad_fp8_kernel)
        max_ptr,  # (n,) fp32 out when WRITE_LSE: each row's largest (capped) logit
        HAS_GRAD: tl.constexpr,
        HAS_CAP: tl.constexpr,
        WRITE_LSE: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        base = logits_ptr + row * stride_row
        target = tl.load(targets_ptr + row)
        valid = target != -1
        # bounds check: a target outside [0, V) (a bad shard) is never loaded; its row's loss is NaN, loudly
        in_vocab = (target >= 0) & (target < V)
        # pass 1: per-lane online max and sum of exp over the real vocabulary, in fp32
        m_vec = tl.full([BLOCK], float("-inf"), tl.float32)
        s_vec = tl.zeros([BLOCK], tl.float32)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            x = tl.load(base + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
            if HAS_CAP:
                x = tl.where(cols < V, softcap * (1.0 - 2.0 / (tl.exp(2.0 * x / softcap) + 1.0)), float("-inf"))
            new_m = tl.maximum(m_vec, x)
            # a lane that has seen only masked columns has max -inf: shift by 0 there (no inf - inf)
            shift = tl.where(new_m == float("-inf"), 0.0, new_m)
            s_vec = s_vec * tl.exp(m_vec - shift) + tl.exp(x - shift)
            m_vec = new_m
        m = tl.max(m_vec, axis=0)
        lse = m + tl.log(tl.sum(s_vec * tl.exp(m_vec - m), axis=0))
        x_t = tl.load(base + tl.where(in_vocab, target, 0)).to(tl.float32)
        if HAS_CAP:
            x_t = softcap * (1.0 - 2.0 / (tl.exp(2.0 * x_t / softcap) + 1.0))
        tl.store(loss_ptr + row, tl.where(in_vocab, lse - x_t, tl.where(valid, float("nan"), 0.0)))
        if WRITE_LSE:
            tl.store(lse_ptr + row, lse)
            tl.store(max_ptr + row, m)
        if HAS_GRAD:
            # pass 2: (softmax - onehot) * scale, written in place; padded columns get 0
            scale = tl.load(row_scale_ptr + row)
            for start in range(0, Vp, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                x = tl.load(base + cols, mask=cols < Vp, other=0.0).to(tl.float32)
                if HAS_CAP:
                    t = 1.0 - 2.0 / (tl.exp(2.0 * x / softcap) + 1.0)
                    x = softcap * t
                p = tl.where(cols < V, tl.exp(x - lse), 0.0)
                g = (p - tl.where((cols == target) & in_vocab, 1.0, 0.0)) * scale
                if HAS_CAP:
                    g = g * (1.0 - t * t)
                tl.store(base + cols, g.to(logits_ptr.dtype.element_ty), mask=cols < Vp)

    @triton.jit
    def ce_grad_fp8_kernel(
        logits_ptr,  # (n, Vp), bf16 or fp32, rows contiguous
        stride_row,
        lse_ptr,  # (n,) fp32: each row's log-sum-exp (ce_grad_kernel's WRITE_LSE)
        max_ptr,  # (n,) fp32: each row's largest logit (ce_grad_kernel's WRITE_LSE; read with ROW_SCALED)
        targets_ptr,  # (n,) int64, -1 = ignore
        row_scale_ptr,  # (n,) fp32: the gradient's scale per row (1/N, or 0 for ignored rows) times the FP8 scale
        seed_ptr,  # (1,) int64: the stochastic rounding's seed (STOCHASTIC)
        g_ptr,  # (n, Vp) float8 out: d(loss)/d(logits), scaled (ROW_SCALED: each row by its own largest value)
        gt_ptr,  # (Vp, n) float8 out: the same, transposed (always at row_scale)
        n,
        V,
        Vp,
        softcap,
        fmax,  # gt's float8 format's largest value
        row_fmax,  # g's (ROW_SCALED)
        HAS_CAP: tl.constexpr,
        STOCHASTIC: tl.constexpr,
        ONEHOT: tl.constexpr,
        ROW_SCALED: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        # one tile of (softmax - onehot) * scale (without ONEHOT: softmax * scale, the target's -1 left to the caller),
        # cast to float8 and written both ways: the gradient matmuls take their FP8 operands K-major only, so
        # dx = g @ W wants g and dW = g.T @ x wants g's transpose. ROW_SCALED (without ONEHOT): g's rows each scaled
        # so that its largest probability, exp(max - lse), becomes row_fmax
        rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < n
        mask = row_ok[:, None] & (cols[None, :] < Vp)
        x = tl.load(logits_ptr + rows[:, None] * stride_row + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        if HAS_CAP:
            t = 1.0 - 2.0 / (tl.exp(2.0 * x / softcap) + 1.0)
            x = softcap * t
        lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
        target = tl.load(targets_ptr + rows, mask=row_ok, other=-1)
        in_vocab = (target >= 0) & (target < V)
        scale = tl.load(row_scale_ptr + rows, mask=row_ok, other=0.0)
        p = tl.where(cols[None, :] < V, tl.exp(x - lse[:, None]), 0.0)
        if ONEHOT:
            hit = (cols[None, :] == target[:, None]) & in_vocab[:, None]
            p = p - tl.where(hit, 1.0, 0.0)
        g = p * scale[:, None]
        if HAS_CAP:
            g = g * (1.0 - t * t)
        if STOCHASTIC:  # to one of e5m2's two neighbours, the upper with the probability of its nearness: random
            # bits added below the 2 mantissa bits e5m2 keeps, then cut (sign and magnitude: both signs alike). The
            # bits hash the element's place with the seed (a 32-bit integer hash, 7 operations, where Philox's tens
            # of operations an element would not hide under this pass's memory traffic)
            h = (rows[:, None] * Vp + cols[None, :]).to(tl.uint32) + tl.load(seed_ptr).to(tl.uint32) * 0x9E3779B9
            h = h ^ (h >> 16)
            h = h * 0x7FEB352D
            h = h ^ (h >> 15)
            h = h * 0x846CA68B
            h = h ^ (h >> 16)
            bits = g.to(tl.uint32, bitcast=True) + (h & 0x1FFFFF)
            g = (bits & 0xFFE00000).to(tl.float32, bitcast=True)
        q = tl.clamp(g, -fmax, fmax).to(gt_ptr.dtype.element_ty)
        tl.store(gt_ptr + cols[None, :] * n + rows[:, None], q, mask=mask)
        if ROW_SCALED:
            row_max = tl.load(max_ptr + rows, mask=row_ok, other=0.0)
            gr = p * tl.where(scale != 0.0, row_fmax * tl.exp(lse - row_max), 0.0)[:, None]
            if HAS_CAP:
                gr = gr * (1.0 - t * t)
            q = tl.clamp(gr, -row_fmax, row_fmax).to(g_ptr.dtype.element_ty)
        tl.store(g_ptr + rows[:, None] * Vp + cols[None, :], q, mask=mask)

    return ce_grad_kernel, ce_grad_fp8_kernel


# columns per tile (25 over 50304) and warps: 1.39 ms a d12 chunk on an H200 against 1.44 at 4096 and 8 (BENCHMARKS.md)
CE_BLOCK = 2048
CE_WARPS = 4


def _chunk_loss_and_dlogits_triton(
    logits: torch.Tensor,
    targets: torch.Tensor,
    vocab_size: int,
    row_scale: torch.Tensor | None,
    softcap: float = 0.0,
    row_stats: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as :func:`_chunk_loss_and_dlogits`, as one Triton kernel: two passes over
    the logits in their own dtype (fp32 math in registers), the gradient written in place. ``row_stats``, a (2, n)
    fp32 buffer, receives each row's log-sum-exp and its largest (capped) logit if given."""
    n, vp = logits.shape
    if logits.stride(1) != 1:
        raise ValueError("logits rows must be contiguous")
    loss_rows = torch.empty(n, dtype=torch.float32, device=logits.device)
    has_grad = row_scale is not None
    kwargs = {} if interpreting() else {"num_warps": CE_WARPS}
    _ce_kernel(interpreting())[0][(n,)](
        logits,
        logits.stride(0),
        targets.contiguous(),
        row_scale if has_grad else loss_rows,  # unused without HAS_GRAD
        loss_rows,
        vocab_size,
        vp,
        float(softcap),
        loss_rows if row_stats is None else row_stats[0],  # unused without WRITE_LSE
        loss_rows if row_stats is None else row_stats[1],
        HAS_GRAD=has_grad,
        HAS_CAP=bool(softcap),
        WRITE_LSE=row_stats is not None,
        BLOCK=min(CE_BLOCK, 1 << (vp - 1).bit_length()),
        **kwargs,
    )
    return loss_rows.sum(), (logits if has_grad else None)


FP8_TILE_M, FP8_TILE_N, FP8_WARPS = 64, 64, 4  # ce_grad_fp8_kernel's tile: rows by columns of the logits
# the gradient's float8 format: its scale is fixed (|softmax - onehot| <= 1), and e5m2's range keeps probabilities
# down to 1e-9 where e4m3's would drop those below 4e-6 (most of a 50,257-token row)
FP8_GRAD = torch.float8_e5m2
# --fp8-classifier 4's gradient for dx: the softmax in e4m3 (3 mantissa bits to e5m2's 2), each row scaled by its own
# largest probability, which keeps a row's small probabilities above e4m3's smallest values
FP8_ROWS = torch.float8_e4m3fn


def stochastic_round_e5m2(g: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """fp32 ``g`` rounded to one of its two neighbours in e5m2 (the 2 mantissa bits it keeps), the upper with the
    probability of its nearness, by ``noise`` (int32, as g's shape): its low 21 bits added below the bits kept, then
    cut; still fp32 (exact in e5m2 from 2^-14 up). ``--fp8-classifier 3``'s rounding of the logits' gradient, the
    reference of ce_grad_fp8_kernel's STOCHASTIC."""
    bits = g.float().view(torch.int32) + (noise & 0x1FFFFF)
    return (bits & -(1 << 21)).view(torch.float32)


def _chunk_loss_and_fp8_grads(
    logits: torch.Tensor,
    targets: torch.Tensor,
    vocab_size: int,
    row_scale: torch.Tensor,
    softcap: float,
    triton: bool,
    seed: torch.Tensor | None = None,
    onehot: bool = True,
    row_scaled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Summed cross-entropy of one chunk, and d(loss)/d(logits) times ``row_scale`` cast to FP8_GRAD (clamped to its
    range) both as it is (n, Vp) and transposed (Vp, n); with ``seed`` (a (1,) int64 tensor) rounded stochastically
    (:func:`stochastic_round_e5m2`) instead of to nearest; without ``onehot`` the gradient less its target term
    (:func:`_target_term`), softmax * row_scale. ``row_scaled`` (without ``onehot``): the (n, Vp) copy in FP8_ROWS
    instead, each row scaled so that its largest probability becomes FP8_ROWS' largest value; the fourth value is
    then those probabilities (n,), else None. ``triton``: the loss pass of ce_grad_kernel, then one pass
    of ce_grad_fp8_kernel writing both float8 copies; else :func:`_chunk_loss_and_dlogits`'s gradient in fp32 cast
    and transposed in PyTorch: the reference (its noise drawn from torch's generator on the gradient's device, not
    from ``seed``: no host sync)."""
    if row_scaled and (onehot or seed is not None):
        raise ValueError("row_scaled takes the softmax alone (onehot=False), rounded to nearest")
    fmax = torch.finfo(FP8_GRAD).max
    n, vp = logits.shape
    if not triton:
        # from an fp32 copy (the gradient is written into it; the logits stay for the target's term), so the gradient
        # is rounded once, as the kernel's
        loss_sum, g = _chunk_loss_and_dlogits(logits.to(torch.float32, copy=True), targets, vocab_size, row_scale,
                                              softcap)  # fmt: skip
        g = g.float()
        if not onehot:
            safe, coef = _target_term(logits, targets, vocab_size, row_scale, softcap)
            g.scatter_add_(1, safe.unsqueeze(1), -coef.unsqueeze(1))
        if seed is not None:
            g = stochastic_round_e5m2(g, torch.randint(0, 1 << 21, g.shape, device=g.device, dtype=torch.int32))
        q = g.clamp(-fmax, fmax).to(FP8_GRAD)
        if not row_scaled:
            return loss_sum, q, q.t().contiguous(), None
        lse, row_max = _row_stats(logits, vocab_size, softcap)
        rmax = torch.finfo(FP8_ROWS).max
        factor = torch.where(row_scale != 0, rmax * torch.exp(lse - row_max) / row_scale, 0.0)  # g / row_scale = p
        rows = (g * factor.unsqueeze(1)).clamp(-rmax, rmax).to(FP8_ROWS)
        return loss_sum, rows, q.t().contiguous(), torch.exp(row_max - lse)
    stats = torch.empty((2, n), dtype=torch.float32, device=logits.device)
    loss_sum, _ = _chunk_loss_and_dlogits_triton(logits, targets, vocab_size, None, softcap, row_stats=stats)
    g = torch.empty((n, vp), dtype=FP8_ROWS if row_scaled else FP8_GRAD, device=logits.device)
    gt = torch.empty((vp, n), dtype=FP8_GRAD, device=logits.device)
    _launch_fp8_grad(logits, stats, targets, row_scale, vocab_size, softcap, g, gt, seed, onehot, row_scaled)
    return loss_sum, g, gt, (torch.exp(stats[1] - stats[0]) if row_scaled else None)


def _row_stats(logits: torch.Tensor, vocab_size: int, softcap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's log-sum-exp and largest logit over the real vocabulary (soft-capped first), in fp32: the reference
    of ce_grad_kernel's WRITE_LSE."""
    lf = logits[:, :vocab_size].float()
    if softcap:
        lf = softcap * torch.tanh(lf / softcap)
    return torch.logsumexp(lf, dim=1), lf.amax(dim=1)


def _target_term(logits: torch.Tensor, targets: torch.Tensor, vocab_size: int, row_scale: torch.Tensor,
                 softcap: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The one-hot part of d(loss)/d(logits) times ``row_scale``: each row's target made safe to index (0 where it
    is -1 or out of the vocabulary) and the gradient at that column, -row_scale (times the soft-cap's derivative
    there), 0 for a row without a target. --fp8-classifier 4 keeps it out of the float8 gradient: it is the row's
    largest entry, and e5m2's 2 mantissa bits would round it by up to 12%."""
    in_vocab = (targets >= 0) & (targets < vocab_size)
    safe = torch.where(in_vocab, targets, torch.zeros_like(targets))
    coef = -(row_scale * in_vocab)
    if softcap:
        t = torch.tanh(logits.gather(1, safe.unsqueeze(1)).squeeze(1).float() / softcap)
        coef = coef * (1.0 - t * t)
    return safe, coef


def _launch_fp8_grad(logits: torch.Tensor, row_stats: torch.Tensor, targets: torch.Tensor, row_scale: torch.Tensor,
                     vocab_size: int, softcap: float, g: torch.Tensor, gt: torch.Tensor,
                     seed: torch.Tensor | None = None, onehot: bool = True,
                     row_scaled: bool = False) -> None:  # fmt: skip
    """ce_grad_fp8_kernel over ``logits`` (n, Vp) into ``g`` (n, Vp) and ``gt`` (Vp, n), clamped to FP8_GRAD's
    range and cast to their dtype (fp32 ones in tests: Triton's interpreter rounds to float8 otherwise than a GPU);
    ``row_stats`` (2, n): each row's log-sum-exp and largest logit (ce_grad_kernel's). With ``seed`` ((1,) int64)
    rounded stochastically, the noise hashed from the seed and each element's place; without ``onehot`` the softmax
    only (the target term left to the caller); ``row_scaled``: g's rows each scaled to FP8_ROWS' range."""
    n, vp = logits.shape
    grid = ((n + FP8_TILE_M - 1) // FP8_TILE_M, (vp + FP8_TILE_N - 1) // FP8_TILE_N)
    kwargs = {} if interpreting() else {"num_warps": FP8_WARPS}
    _ce_kernel(interpreting())[1][grid](logits, logits.stride(0), row_stats[0], row_stats[1], targets.contiguous(),
                                        row_scale, row_scale if seed is None else seed, g, gt, n, vocab_size, vp,
                                        float(softcap), torch.finfo(FP8_GRAD).max, torch.finfo(FP8_ROWS).max,
                                        HAS_CAP=bool(softcap), STOCHASTIC=seed is not None, ONEHOT=onehot,
                                        ROW_SCALED=row_scaled, BLOCK_M=FP8_TILE_M, BLOCK_N=FP8_TILE_N,
                                        **kwargs)  # fmt: skip


def _fp8_fits(n_rows: int, chunk_rows: int, width: int, padded_vocab: int) -> bool:
    """torch._scaled_mm wants every dimension of its operands divisible by 16."""
    return all(d % 16 == 0 for d in (n_rows, min(chunk_rows, n_rows), width, padded_vocab))


def _use_triton(x: torch.Tensor, impl: str) -> bool:
    if impl == "torch":
        return False
    if impl == "triton":
        return True
    if impl != "auto":
        raise ValueError(f"impl must be 'auto', 'torch' or 'triton', got {impl!r}")
    # under torch.compile, inductor fuses the torch version itself
    return x.is_cuda and triton_available() and not torch.compiler.is_compiling()


class ChunkedClassifierLoss(torch.autograd.Function):
    """autograd.Function behind :func:`chunked_classifier_loss` (forward does all the work)."""

    @staticmethod
    def forward(ctx, x, weight, targets, vocab_size: int, chunk_rows: int, impl: str, softcap: float, fp8: int):
        cdt = _compute_dtype(x)
        triton = _use_triton(x, impl)
        x_shape = x.shape
        x2 = x.reshape(-1, x.shape[-1])
        t2 = targets.reshape(-1)
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(x.device.type, enabled=False):
            w = weight.to(cdt)
            xc_all = x2.to(cdt)
            valid = t2 != -1
            # 1/N as a tensor: no host sync; all-ignored gives nan like the reference
            inv_n = 1.0 / valid.sum().to(torch.float32)
            row_scale_all = valid.to(torch.float32) * inv_n
            dx = torch.empty(x2.shape, dtype=x.dtype, device=x.device) if need_dx else None
            dw = torch.zeros(weight.shape, dtype=torch.float32, device=x.device) if need_dw else None
            fits = _fp8_fits(x2.shape[0], chunk_rows, x2.shape[1], weight.shape[0])
            chunks = (functools.partial(_fp8_chunks, stochastic=fp8 == 3, row_scaled=fp8 == 4)
                      if fp8 in FP8_CLASSIFIER_GRAD_MODES and fits
                      else functools.partial(_chunks, fp8_logits=fp8 == 2 and fits))  # fmt: skip
            loss_sum = chunks(xc_all, w, t2, vocab_size, chunk_rows, softcap, row_scale_all, inv_n, triton, dx, dw)
        ctx.x_shape = x_shape
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(dx if dx is not None else torch.empty(0), dw if dw is not None else torch.empty(0))
        return loss_sum * inv_n

    @staticmethod
    def backward(ctx, grad_out):
        dx, dw = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = (dx * grad_out.to(dx.dtype)).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            gw = (dw * grad_out.float()).to(ctx.weight_dtype)
        return gx, gw, None, None, None, None, None, None


def _chunks(x: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, vocab_size: int, chunk_rows: int, softcap: float,
            row_scale: torch.Tensor, inv_n: torch.Tensor, triton: bool, dx: torch.Tensor | None,
            dw: torch.Tensor | None, fp8_logits: bool = False) -> torch.Tensor:  # fmt: skip
    """ChunkedClassifierLoss's chunks in the compute dtype (x's and w's): fills ``dx`` (if given) and adds into the
    fp32 ``dw`` (if given); returns the summed loss. ``triton``: each chunk's loss and gradient by ce_grad_kernel.
    ``fp8_logits``: the logits from e4m3 copies of x and W (``--fp8-classifier 2``), the gradient's matmuls in the
    compute dtype. (``inv_n``, 1/N, is for :func:`_fp8_chunks`'s scales; ``row_scale`` already holds it here.)"""
    chunk_fn = _chunk_loss_and_dlogits_triton if triton else _chunk_loss_and_dlogits
    if fp8_logits:
        from gpt2train.kernels.fp8_linear import E4M3, quantize_transposed

        wq, _, sw = quantize_transposed(w, E4M3, transpose=False, kernel=triton)
        xq, _, sx = quantize_transposed(x, E4M3, transpose=False, kernel=triton)
    loss_sum = torch.zeros((), dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], chunk_rows):
        end = min(start + chunk_rows, x.shape[0])
        xc = x[start:end]
        if fp8_logits:
            logits = _e4m3_logits(xq[start:end], sx, wq, sw, w.dtype)
        else:
            logits = F.linear(xc, w)  # full Vp width keeps the matmul shapes aligned
        chunk_sum, dlogits = chunk_fn(logits, targets[start:end], vocab_size, row_scale[start:end], softcap)
        loss_sum = loss_sum + chunk_sum
        if dx is not None:
            if dx.dtype == x.dtype:
                torch.mm(dlogits, w, out=dx[start:end])
            else:
                dx[start:end] = dlogits @ w
        if dw is not None:
            _accumulate_fp32(dw, dlogits.t(), xc)
        del logits, dlogits
    return loss_sum


def _e4m3_logits(xq: torch.Tensor, sx: torch.Tensor, wq: torch.Tensor, sw: torch.Tensor,
                 out_dtype: torch.dtype) -> torch.Tensor:  # fmt: skip
    """A chunk's logits x @ W.T from e4m3 copies of its rows ``xq`` and of W ``wq`` with their dequantization scales,
    in FP8's fast accumulation (as the FP8 linears' forward), written in ``out_dtype``."""
    return scaled_mm(xq, wq.t(), sx, sw, out_dtype, use_fast_accum=True)


def _fp8_chunks(x: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, vocab_size: int, chunk_rows: int,
                softcap: float, row_scale: torch.Tensor, inv_n: torch.Tensor, triton: bool, dx: torch.Tensor | None,
                dw: torch.Tensor | None, stochastic: bool = False,
                row_scaled: bool = False) -> torch.Tensor:  # fmt: skip
    """:func:`_chunks` with the three matmuls in FP8 (``--fp8-classifier``): the logits from e4m3
    copies of x and W scaled by their own largest values (as kernels/fp8_linear.py's), the gradient d(loss)/d(logits)
    in FP8_GRAD at a fixed scale (``stochastic``, ``--fp8-classifier 3``: rounded stochastically, each chunk's seed
    drawn from torch's generator on x's device, which checkpoints keep), dx = g @ W and dW = g.T @ x accumulating
    exactly (no fast accumulation). ``row_scaled`` (``--fp8-classifier 4``): the float8 gradient is the softmax
    only, for dx in FP8_ROWS scaled row by row (cuBLAS's row-wise scaling), and each row's target term
    (:func:`_target_term`) is added in fp32 from the e4m3 row of W (into dx) and of x (into dW's target row): the
    operands the float8 part multiplies, so that a frequent token's two near-opposite parts of dW share x's rounding
    (with bf16 x, 5.4156 against bf16's 5.3962 in the loss check). Fills ``dx`` (if given) and adds into ``dw`` (if
    given); returns the summed loss."""
    from gpt2train.kernels.fp8_linear import E4M3, quantize_transposed

    wq, wqt, sw = quantize_transposed(w, E4M3, kernel=triton)
    xq, _, sx = quantize_transposed(x, E4M3, transpose=False, kernel=triton)
    gmax = torch.finfo(FP8_GRAD).max
    # the gradient of a valid row is (softmax - onehot) / N: stored as (softmax - onehot) * gmax, dequantized by N*gmax
    g_scale = row_scale * (gmax / inv_n)
    g_dequant = inv_n / gmax
    if row_scaled:  # dx's matmul with row-wise scales wants W's as a row too, and the rows' in e4m3 units
        sw_row = sw.reshape(1, 1).expand(1, w.shape[1]).contiguous()
        rows_unit = inv_n / torch.finfo(FP8_ROWS).max
    loss_sum = torch.zeros((), dtype=torch.float32, device=x.device)
    targets_dw, coefs_dw = [], []  # row_scaled: each chunk's target rows and terms, added into dW after the chunks
    for start in range(0, x.shape[0], chunk_rows):
        end = min(start + chunk_rows, x.shape[0])
        logits = _e4m3_logits(xq[start:end], sx, wq, sw, w.dtype)
        seed = torch.randint(0, 1 << 31, (1,), device=x.device) if stochastic else None
        chunk_sum, g, gt, row_amax = _chunk_loss_and_fp8_grads(
            logits, targets[start:end], vocab_size, g_scale[start:end], softcap, triton, seed,
            onehot=not row_scaled, row_scaled=row_scaled)  # fmt: skip
        if row_scaled:
            target, coef = _target_term(logits, targets[start:end], vocab_size, row_scale[start:end], softcap)
            coef = coef.unsqueeze(1)
        del logits
        loss_sum = loss_sum + chunk_sum
        if dx is not None:  # W (Vp, C) column-major is W.T (C, Vp) row-major
            if row_scaled:  # row-wise scales want both operands' so, and a bf16 output
                dxc = scaled_mm(g, wqt.t(), (row_amax * rows_unit).unsqueeze(1), sw_row, torch.bfloat16)
                dx[start:end] = dxc.float().addcmul_(wq.index_select(0, target).float(), coef * sw)
            else:
                dx[start:end] = scaled_mm(g, wqt.t(), g_dequant, sw, dx.dtype)
        if dw is not None:  # x's rows (n, C) column-major: their transpose (C, n) row-major
            xt = xq[start:end].t().contiguous()
            dw.add_(scaled_mm(gt, xt.t(), g_dequant, sx, torch.float32))
            if row_scaled:
                targets_dw.append(target)
                coefs_dw.append(coef)
        del g, gt  # before the next chunk's logits: a chunk holds its bf16 logits and two float8 copies at most
    if targets_dw:  # each row's e4m3 x times its term, summed by target as an embedding's backward sums its rows:
        # deterministic (sorted, then summed by segment), where index_put_ chunk by chunk took 20.9 ms of d12's step
        # on an H200 (BENCHMARKS.md, issue 21's eighteenth session). Its two fp32 buffers (x's shape, W's) come after
        # the chunks' are freed, and are smaller than a chunk's logits and float8 copies, which the planner counts
        terms = xq.float().mul_(torch.cat(coefs_dw) * sx)
        dw.add_(torch.ops.aten.embedding_dense_backward(terms, torch.cat(targets_dw), dw.shape[0], -1, False))
    return loss_sum


def chunked_classifier_loss(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    vocab_size: int,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    impl: str = "auto",
    softcap: float = 0.0,
    fp8: int = 0,
) -> torch.Tensor:
    """Mean cross-entropy of ``x @ weight^T`` over the first ``vocab_size`` columns, chunked.

    Same signature and result as :func:`plain_classifier_loss`: ``x`` is
    (..., C), ``weight`` is (Vp, C) with Vp >= vocab_size, ``targets`` has x's leading shape with
    -1 for positions to ignore. Returns an fp32 scalar. Gradients for x and weight are computed
    during forward, one chunk of ``chunk_rows`` rows at a time, so the full logits never exist.
    Without autograd (no_grad, or neither input requiring grad) only the loss is computed.

    ``impl`` picks the per-chunk softmax / cross-entropy / gradient step: ``"torch"`` (plain ops),
    ``"triton"`` (one fused kernel; CUDA, or CPU under TRITON_INTERPRET=1) or ``"auto"`` (Triton
    on CUDA when installed, except while torch.compile traces, where inductor fuses the ops).
    ``softcap`` > 0 soft-caps the logits first, as :func:`plain_classifier_loss` does. ``fp8`` (with gradients,
    where every dimension is a multiple of 16): 1, the three matmuls in FP8 (:func:`_fp8_chunks`); 3, the same with
    the logits' gradient rounded stochastically; 2, the logits' only; the loss without gradients is always computed
    from bf16 logits.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return ChunkedClassifierLoss.apply(x, weight, targets, vocab_size, chunk_rows, impl, softcap, fp8)
    # inference: the same chunked loss, without the gradient work
    cdt = _compute_dtype(x)
    chunk_fn = _chunk_loss_and_dlogits_triton if _use_triton(x, impl) else _chunk_loss_and_dlogits
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        x2 = x.reshape(-1, x.shape[-1]).to(cdt)
        t2 = targets.reshape(-1)
        w = weight.to(cdt)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        for start in range(0, x2.shape[0], chunk_rows):
            end = min(start + chunk_rows, x2.shape[0])
            s, _ = chunk_fn(F.linear(x2[start:end], w), t2[start:end], vocab_size, None, softcap)
            total = total + s
        return total / (t2 != -1).sum().to(torch.float32)
