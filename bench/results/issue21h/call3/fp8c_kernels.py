"""--fp8-classifier's two passes over the logits, variants against the landed kernels at d12's chunk (16384 x 50304
bf16): the loss pass (log-sum-exp per row) and the gradient pass (softmax - onehot to e5m2, both layouts). Each
variant is checked against the landed kernel's output (lse to 1e-5, float8 bytes equal) and timed."""
import json, sys
import torch
import triton
import triton.language as tl
from gpt2train.kernels import fused_classifier as fc

dev = torch.device("cuda")
n, VP, V = 16384, 50304, 50257
res = {}


def ms(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / reps


@triton.jit
def lse_rows(logits_ptr, stride_row, targets_ptr, loss_ptr, lse_ptr, n, V, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n
    m = tl.full([BLOCK_M], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK_M], tl.float32)
    for start in range(0, V, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        x = tl.load(logits_ptr + rows[:, None] * stride_row + cols[None, :], mask=row_ok[:, None] & (cols[None, :] < V),
                    other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
        m = m_new
    lse = m + tl.log(s)
    target = tl.load(targets_ptr + rows, mask=row_ok, other=-1)
    in_vocab = (target >= 0) & (target < V)
    x_t = tl.load(logits_ptr + rows * stride_row + tl.where(in_vocab, target, 0), mask=row_ok, other=0.0).to(tl.float32)
    tl.store(loss_ptr + rows, tl.where(in_vocab, lse - x_t, tl.where(target != -1, float("nan"), 0.0)), mask=row_ok)
    tl.store(lse_ptr + rows, lse, mask=row_ok)


@triton.jit
def grad_tile(logits_ptr, stride_row, lse_ptr, targets_ptr, row_scale_ptr, g_ptr, gt_ptr, n, V, Vp, fmax,
              SPAN: tl.constexpr, TRANS: tl.constexpr, EVICT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    target = tl.load(targets_ptr + rows, mask=row_ok, other=-1)
    in_vocab = (target >= 0) & (target < V)
    scale = tl.load(row_scale_ptr + rows, mask=row_ok, other=0.0)
    col0 = tl.program_id(1).to(tl.int64) * SPAN
    for start in range(0, SPAN, BLOCK_N):
        cols = col0 + start + tl.arange(0, BLOCK_N)
        mask = row_ok[:, None] & (cols[None, :] < Vp)
        if EVICT:
            x = tl.load(logits_ptr + rows[:, None] * stride_row + cols[None, :], mask=mask, other=0.0,
                        eviction_policy="evict_first").to(tl.float32)
        else:
            x = tl.load(logits_ptr + rows[:, None] * stride_row + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        p = tl.where(cols[None, :] < V, tl.exp(x - lse[:, None]), 0.0)
        hit = (cols[None, :] == target[:, None]) & in_vocab[:, None]
        q = tl.clamp((p - tl.where(hit, 1.0, 0.0)) * scale[:, None], -fmax, fmax).to(g_ptr.dtype.element_ty)
        tl.store(g_ptr + rows[:, None] * Vp + cols[None, :], q, mask=mask)
        if TRANS:
            tl.store(gt_ptr + cols[:, None] * n + rows[None, :], tl.trans(q), mask=tl.trans(mask))
        else:
            tl.store(gt_ptr + cols[None, :] * n + rows[:, None], q, mask=mask)


g = torch.Generator().manual_seed(0)
logits = (torch.randn(n, VP, generator=g) * 3).to(dev, torch.bfloat16)
t = torch.randint(0, V, (n,), generator=g).to(dev)
scale = torch.full((n,), 57344.0, device=dev)
lse0 = torch.empty(n, device=dev)
loss0, _ = fc._chunk_loss_and_dlogits_triton(logits, t, V, None, 0.0, lse=lse0)
res["landed loss pass"] = ms(lambda: fc._chunk_loss_and_dlogits_triton(logits, t, V, None, 0.0, lse=lse0))
loss_rows, lse1 = torch.empty(n, device=dev), torch.empty(n, device=dev)
for bm, bn, w in ((1, 4096, 8), (2, 4096, 8), (4, 2048, 8), (4, 4096, 8), (8, 1024, 8), (8, 2048, 8), (16, 1024, 8), (16, 512, 4), (32, 256, 4)):
    k = lambda: lse_rows[(triton.cdiv(n, bm),)](logits, logits.stride(0), t, loss_rows, lse1, n, V, BLOCK_M=bm, BLOCK_N=bn, num_warps=w)
    k()
    ok = bool(torch.allclose(lse1, lse0, rtol=1e-5, atol=1e-5)) and bool(torch.allclose(loss_rows.sum(), loss0, rtol=1e-5))
    res[f"lse rows {bm}x{bn} w{w} ok={ok}"] = ms(k)
q0 = torch.empty(n, VP, dtype=fc.FP8_GRAD, device=dev)
qt0 = torch.empty(VP, n, dtype=fc.FP8_GRAD, device=dev)
fc._launch_fp8_grad(logits, lse0, t, scale, V, 0.0, q0, qt0)
res["landed grad 64x64 w4"] = ms(lambda: fc._launch_fp8_grad(logits, lse0, t, scale, V, 0.0, q0, qt0))
q1, qt1 = torch.empty_like(q0), torch.empty_like(qt0)
for bm, bn, span, trans, evict, w in ((64, 64, 64, 0, 0, 4), (64, 64, 64, 1, 0, 4), (64, 64, 64, 0, 1, 4),
                                      (32, 128, 128, 1, 0, 4), (64, 128, 128, 1, 0, 4), (128, 64, 64, 1, 0, 4),
                                      (128, 128, 128, 1, 0, 8), (64, 64, 1024, 0, 0, 4), (64, 64, 1024, 1, 1, 4),
                                      (32, 128, 2048, 1, 1, 4), (64, 128, 1024, 1, 1, 8), (128, 64, 512, 1, 1, 8)):
    grid = (triton.cdiv(n, bm), triton.cdiv(VP, span))
    k = lambda: grad_tile[grid](logits, logits.stride(0), lse0, t, scale, q1, qt1, n, V, VP, 57344.0, SPAN=span,
                                TRANS=trans, EVICT=evict, BLOCK_M=bm, BLOCK_N=bn, num_warps=w)
    q1.zero_(); qt1.zero_()
    k()
    ok = bool(torch.equal(q1.view(torch.uint8), q0.view(torch.uint8))) and bool(torch.equal(qt1.view(torch.uint8), qt0.view(torch.uint8)))
    res[f"grad {bm}x{bn} span{span} trans{trans} evict{evict} w{w} ok={ok}"] = ms(k)
res["copy 1.65 GB (bandwidth yardstick)"] = ms(lambda: logits.clone())
for k, v in res.items():
    print(f"{k:55s} {v:7.3f}", flush=True)
json.dump(res, open(sys.argv[1], "w"), indent=1)
