"""Where --fp8-classifier's time goes at d12 (N=65536 rows, C=768, Vp=50304): each piece timed alone on CUDA, and
the gradient kernel's tile sizes and the gradient matmuls' fast accumulation tried."""
import json, sys, time
import torch
from gpt2train.kernels import fused_classifier as fc
from gpt2train.kernels.fp8_linear import E4M3, quantize_transposed

dev = torch.device("cuda")
N, C, VP, V = 65536, 768, 50304, 50257
out = {}

def ms(fn, reps=10):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    ev[0].record()
    for _ in range(reps):
        fn()
    ev[1].record()
    torch.cuda.synchronize()
    return ev[0].elapsed_time(ev[1]) / reps

g = torch.Generator().manual_seed(0)
x = (torch.randn(N, C, generator=g)).to(dev, torch.bfloat16)
w = (torch.randn(VP, C, generator=g) * 0.02).to(dev, torch.bfloat16)
t = torch.randint(0, V, (N,), generator=g).to(dev)
for rows in (8192, 16384, 32768):
    xc = x[:rows]
    tc = t[:rows]
    wq, wqt, sw = quantize_transposed(w, E4M3, kernel=True)
    xq, _, sx = quantize_transposed(xc, E4M3, transpose=False, kernel=True)
    scale = torch.full((rows,), 57344.0, device=dev)
    r = {}
    r["bf16 logits"] = ms(lambda: xc @ w.t())
    r["fp8 logits"] = ms(lambda: torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16, use_fast_accum=True))
    logits = torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16, use_fast_accum=True)
    lse = torch.empty(rows, device=dev)
    r["CE loss pass (lse)"] = ms(lambda: fc._chunk_loss_and_dlogits_triton(logits, tc, V, None, 0.0, lse=lse))
    r["CE loss+bf16 grad (bf16 path)"] = ms(lambda: fc._chunk_loss_and_dlogits_triton(logits.clone(), tc, V, scale, 0.0)) - ms(lambda: logits.clone())
    q = torch.empty(rows, VP, dtype=fc.FP8_GRAD, device=dev)
    qt = torch.empty(VP, rows, dtype=fc.FP8_GRAD, device=dev)
    for bm, bn, warps in ((64, 64, 4), (128, 64, 4), (64, 128, 4), (128, 128, 8), (32, 128, 4), (128, 32, 4), (64, 256, 8)):
        fc.FP8_TILE_M, fc.FP8_TILE_N, fc.FP8_WARPS = bm, bn, warps
        r[f"fp8 grad kernel {bm}x{bn} w{warps}"] = ms(lambda: fc._launch_fp8_grad(logits, lse, tc, scale, V, 0.0, q, qt))
    fc.FP8_TILE_M, fc.FP8_TILE_N, fc.FP8_WARPS = 64, 64, 4
    bf = torch.randn(rows, VP, device=dev).to(torch.bfloat16)
    r["bf16 dx"] = ms(lambda: bf @ w)
    r["bf16 dW"] = ms(lambda: bf.t() @ xc)
    sg = torch.tensor(1e-5, device=dev)
    for fast in (False, True):
        r[f"fp8 dx fast={fast}"] = ms(lambda: torch._scaled_mm(q, wqt.t(), scale_a=sg, scale_b=sw, out_dtype=torch.bfloat16, use_fast_accum=fast))
        xt = xq.t().contiguous()
        r[f"fp8 dW fast={fast}"] = ms(lambda: torch._scaled_mm(qt, xt.t(), scale_a=sg, scale_b=sx, out_dtype=torch.float32, use_fast_accum=fast))
    r["x transpose (fp8)"] = ms(lambda: xq.t().contiguous())
    del bf, logits, q, qt
    for impl_fp8 in (False, True):
        xx = x.clone().requires_grad_(); ww = w.clone().requires_grad_()
        def step():
            xx.grad = ww.grad = None
            fc.chunked_classifier_loss(xx, ww, t, V, chunk_rows=rows, fp8=impl_fp8).backward()
        r[f"whole classifier N={N} fp8={impl_fp8}"] = ms(step, reps=5)
    out[rows] = r
    print(rows, json.dumps({k: round(v, 3) for k, v in r.items()}, indent=0), flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
