"""Issue 21, eighteenth session: what bounds the cast kernel's GELU passes (d12's c_fc output, 65536 x 3072)."""
import json, os, sys, statistics
import torch
from gpt2train.kernels import fp8_cast

dev = torch.device("cuda")
out = os.environ.get("OUT", "/tmp")
rows, cols = 65536, 3072
gen = torch.Generator().manual_seed(1)
h = (torch.randn(rows, cols, generator=gen) * 2).to(dev, torch.bfloat16)
g = (torch.randn(rows, cols, generator=gen) * 1e-3).to(dev, torch.bfloat16)
bias = (torch.randn(cols, generator=gen) * 0.3).to(dev, torch.bfloat16)
E4 = torch.float8_e4m3fn
q = torch.empty(rows, cols, dtype=E4, device=dev)
qt = torch.empty(cols, rows, dtype=E4, device=dev)
amax = torch.zeros((), device=dev)
s_fwd, s_bwd = torch.tensor(40.0, device=dev), torch.tensor(4e4, device=dev)
sums = fp8_cast._column_sums(rows, cols, dev)
sm = torch.cuda.get_device_properties(dev).multi_processor_count


def t_ms(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    return statistics.median(ts)


res = []
def run(name, nbytes, **kw):
    try:
        ms = t_ms(lambda: fp8_cast._launch(**kw))
        res.append({"variant": name, "ms": ms, "tb_s": nbytes / ms / 1e9})
        print(f"{name:70s} {ms:.4f} ms {nbytes / ms / 1e9:.2f} TB/s", flush=True)
    except Exception as e:  # noqa
        print(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)

n = rows * cols
fused = dict(block_m=64, block_n=64, warps=4, programs=sm * 12)
# references: the plain cast on the same matrix
run("plain cast default launch (64x128 w4 4/SM)", n * 4, t=h, scale=s_fwd, q=q, qt=qt, amax=amax)
run("plain cast, fused launch", n * 4, t=h, scale=s_fwd, q=q, qt=qt, amax=amax, **fused)
run("plain cast no transpose, default launch", n * 3, t=h, scale=s_fwd, q=q, qt=None, amax=amax)
for approx in (False, True):
    tag = "tanh.approx" if approx else "sigmoid"
    run(f"fwd {tag} (current launch)", n * 4, t=h, scale=s_fwd, q=q, qt=qt, amax=amax, act=1, bias=bias, tanh_approx=approx, **fused)
    run(f"fwd {tag} no transpose", n * 3, t=h, scale=s_fwd, q=q, qt=None, amax=amax, act=1, bias=bias, tanh_approx=approx, **fused)
    run(f"fwd {tag} no bias", n * 4, t=h, scale=s_fwd, q=q, qt=qt, amax=amax, act=1, tanh_approx=approx, **fused)
    run(f"bwd {tag} (current launch)", n * 6, t=h, scale=s_bwd, q=q, qt=qt, amax=amax, act=2, bias=bias, g=g, sums=sums, tanh_approx=approx, **fused)
    run(f"bwd {tag} no sums", n * 6, t=h, scale=s_bwd, q=q, qt=qt, amax=amax, act=2, bias=bias, g=g, tanh_approx=approx, **fused)
    run(f"bwd {tag} no transpose", n * 5, t=h, scale=s_bwd, q=q, qt=None, amax=amax, act=2, bias=bias, g=g, sums=sums, tanh_approx=approx, **fused)
    run(f"bwd {tag} no amax", n * 6, t=h, scale=s_bwd, q=q, qt=qt, amax=None, act=2, bias=bias, g=g, sums=sums, tanh_approx=approx, **fused)
# launches with tanh.approx
for bm, bn, w, waves in [(64, 64, 4, 8), (64, 64, 4, 16), (64, 128, 4, 4), (64, 128, 4, 8), (64, 128, 8, 4),
                         (128, 64, 4, 4), (128, 64, 8, 4), (32, 128, 4, 8), (128, 128, 8, 2), (64, 64, 2, 16)]:
    lk = dict(block_m=bm, block_n=bn, warps=w, programs=sm * waves)
    sm_ = torch.empty((-(-rows // bm), cols), dtype=torch.float32, device=dev)
    run(f"fwd tanh.approx {bm}x{bn} w{w} {waves}/SM", n * 4, t=h, scale=s_fwd, q=q, qt=qt, amax=amax, act=1, bias=bias, tanh_approx=True, **lk)
    run(f"bwd tanh.approx {bm}x{bn} w{w} {waves}/SM", n * 6, t=h, scale=s_bwd, q=q, qt=qt, amax=amax, act=2, bias=bias, g=g, sums=sm_, tanh_approx=True, **lk)
# numerics: tanh.approx against the reference
for backward in (False, True):
    ref_amax, got_amax = torch.zeros((), device=dev), torch.zeros((), device=dev)
    sc = s_bwd if backward else s_fwd
    ref = fp8_cast.activation_cast_transpose_reference(h, bias, g if backward else None, sc, E4, ref_amax)
    for approx in (False, True):
        got_amax.zero_()
        sums.zero_()
        fp8_cast._launch(h, sc, q, qt, got_amax, act=2 if backward else 1, bias=bias, g=g if backward else None,
                         sums=sums if backward else None, tanh_approx=approx, **fused)
        wrong = [int((a.view(torch.uint8) != b.view(torch.uint8)).sum()) for a, b in ((q, ref[0]), (qt, ref[1]))]
        off = ((q.float() - ref[0].float()).abs() / ref[0].float().abs().clamp(min=2**-6)).max().item()
        serr = ((sums.sum(0) - ref[2]).norm() / ref[2].norm()).item() if backward else 0.0
        d = {"backward": backward, "tanh_approx": approx, "wrong_bytes": wrong, "frac": wrong[0] / n, "largest_off": off,
             "amax_rel": abs(got_amax.item() / ref_amax.item() - 1), "sums_rel": serr}
        res.append(d)
        print(d, flush=True)
json.dump(res, open(f"{out}/gelu_sweep.json", "w"), indent=1)
