"""Issue 21, eighteenth session: GELU inside cuBLASLt's FP8 matmul epilogues (c_fc forward: GELU_AUX_BIAS with an
e4m3 output; c_proj's input gradient: DGELU_BGRAD) against the cast kernel's GELU passes, d12's MLP shapes."""
import json, os, statistics, traceback
import torch
import torch.nn.functional as F
from gpt2train.kernels import cublaslt, fp8_cast
from gpt2train.kernels.fp8_linear import quantize_transposed, scaled_mm, E4M3

dev = torch.device("cuda")
out_dir = os.environ.get("OUT", "/tmp")
M, C = 65536, 768
N = 4 * C
g = torch.Generator().manual_seed(0)
x = torch.randn(M, C, generator=g).to(dev, torch.bfloat16)
w_fc = (torch.randn(N, C, generator=g) * 0.02).to(dev, torch.bfloat16)
b_fc = (torch.randn(N, generator=g) * 0.05).to(dev, torch.bfloat16)
w_proj = (torch.randn(C, N, generator=g) * 0.02).to(dev, torch.bfloat16)
dy = (torch.randn(M, C, generator=g) * 1e-3).to(dev, torch.bfloat16)
xq, xqt, sx = quantize_transposed(x, E4M3, kernel=1)
wq, wqt, sw = quantize_transposed(w_fc, E4M3, kernel=1)
pq, pqt, sp = quantize_transposed(w_proj, E4M3, kernel=1)
gq, gqt, sg = quantize_transposed(dy, E4M3, kernel=1)
res = []


def t_ms(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def rec(**d):
    res.append(d)
    print(d, flush=True)


def compare(name, got, ref):
    wrong = int((got.view(torch.uint8) != ref.view(torch.uint8)).sum())
    off = ((got.float() - ref.float()).abs() / ref.float().abs().clamp(min=2**-6)).max().item()
    rel = ((got.float() - ref.float()).norm() / ref.float().norm()).item()
    rec(check=name, wrong=wrong, frac=wrong / got.numel(), largest_off=off, rel_err=rel)


def guard(name, fn):
    try:
        fn()
    except Exception as e:  # noqa
        rec(check=name, error=f"{type(e).__name__}: {str(e)[:400]}")
        traceback.print_exc()


print("cublasLt version", cublaslt.version(), flush=True)
# ---- forward: c_fc then GELU and its e4m3 cast
h = scaled_mm(xq, wq.t(), sx, sw, torch.bfloat16, use_fast_accum=True)
a_ref = F.gelu(h + b_fc, approximate="tanh")
scale_a = (448.0 / a_ref.float().abs().amax()).reshape(())
amax_cur, amax_new = torch.zeros((), device=dev), torch.zeros((), device=dev)
aq, aqt, _ = fp8_cast.activation_cast_transpose_kernel(h, b_fc, None, scale_a, E4M3, amax_cur, "gelu")
aux = torch.empty(M, N, dtype=torch.bfloat16, device=dev)


def fwd_new():
    a2 = cublaslt.fp8_matmul(xq, wq, sx, sw, out_dtype=E4M3, epilogue=cublaslt.CUBLASLT_EPILOGUE_GELU_AUX_BIAS,
                             bias=b_fc, aux=aux, out_scale=scale_a, out_amax=amax_new)
    return a2, fp8_cast.transpose_kernel(a2)


def fwd_check():
    a2, a2t = fwd_new()
    torch.cuda.synchronize()
    compare("fwd aux vs h+b", aux, (h + b_fc))
    compare("fwd e4m3 a vs cast kernel", a2, aq)
    compare("fwd e4m3 a^T vs cast kernel", a2t, aqt)
    rec(check="fwd amax", new=amax_new.item(), cur=amax_cur.item(), ref=a_ref.float().abs().amax().item())
    ms_cur = t_ms(lambda: fp8_cast.activation_cast_transpose_kernel(
        scaled_mm(xq, wq.t(), sx, sw, torch.bfloat16, use_fast_accum=True), b_fc, None, scale_a, E4M3, amax_cur, "gelu"))
    ms_new = t_ms(fwd_new)
    ms_mm = t_ms(lambda: scaled_mm(xq, wq.t(), sx, sw, torch.bfloat16, use_fast_accum=True))
    ms_lt = t_ms(lambda: cublaslt.fp8_matmul(xq, wq, sx, sw, out_dtype=torch.bfloat16))
    ms_lt_ep = t_ms(lambda: cublaslt.fp8_matmul(xq, wq, sx, sw, out_dtype=E4M3,
                                                epilogue=cublaslt.CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias=b_fc, aux=aux,
                                                out_scale=scale_a, out_amax=amax_new))
    ms_t = t_ms(lambda: fp8_cast.transpose_kernel(aq))
    rec(timing="forward", current_ms=ms_cur, new_ms=ms_new, scaled_mm_ms=ms_mm, lt_plain_bf16_ms=ms_lt,
        lt_gelu_fp8_ms=ms_lt_ep, transpose_ms=ms_t)


guard("forward", fwd_check)
# ---- backward: c_proj's input gradient, GELU's derivative, c_fc's output gradient in e4m3 with the bias gradient
hb = (h + b_fc)
da = scaled_mm(gq, pqt.t(), sg, sp, torch.bfloat16)
dh_ref = torch.ops.aten.gelu_backward(da, hb, approximate="tanh")
scale_g = (448.0 / dh_ref.float().abs().amax()).reshape(())
amax_c2, amax_n2 = torch.zeros((), device=dev), torch.zeros((), device=dev)
hq, hqt, db = fp8_cast.activation_cast_transpose_kernel(h, b_fc, da, scale_g, E4M3, amax_c2, "gelu")
db_new = torch.empty(N, dtype=torch.bfloat16, device=dev)


def bwd_fp8():
    d = cublaslt.fp8_matmul(gq, pqt, sg, sp, out_dtype=E4M3, epilogue=cublaslt.CUBLASLT_EPILOGUE_DGELU_BGRAD,
                            bias=db_new, aux=hb, out_scale=scale_g, out_amax=amax_n2, fast_accum=False)
    return d, fp8_cast.transpose_kernel(d)


def bwd_bf16():
    d = cublaslt.fp8_matmul(gq, pqt, sg, sp, out_dtype=torch.bfloat16,
                            epilogue=cublaslt.CUBLASLT_EPILOGUE_DGELU_BGRAD, bias=db_new, aux=hb, fast_accum=False)
    return fp8_cast.cast_transpose_kernel(d, scale_g, E4M3, True, amax_n2)


def bwd_cur():
    d = scaled_mm(gq, pqt.t(), sg, sp, torch.bfloat16)
    return fp8_cast.activation_cast_transpose_kernel(h, b_fc, d, scale_g, E4M3, amax_c2, "gelu")


def bwd_check(name, fn):
    amax_n2.zero_()
    q, qt = fn()[:2]
    torch.cuda.synchronize()
    compare(f"bwd {name} dh", q, hq)
    compare(f"bwd {name} dh^T", qt, hqt)
    rec(check=f"bwd {name} db", rel_err=((db_new.float() - db).norm() / db.norm()).item(),
        amax_new=amax_n2.item(), amax_cur=amax_c2.item())
    rec(timing=f"backward {name}", new_ms=t_ms(fn), current_ms=t_ms(bwd_cur))


guard("backward fp8 out", lambda: bwd_check("DGELU_BGRAD e4m3 out", bwd_fp8))
guard("backward bf16 out", lambda: bwd_check("DGELU_BGRAD bf16 out then cast", bwd_bf16))
json.dump(res, open(f"{out_dir}/fp8_epilogue.json", "w"), indent=1)
