"""Issue 21, nineteenth session: the cast kernel's column sums, per tile (old tree) against one accumulator per program
(new tree), at d12's and d48's shapes. Run as `python sums_sweep.py TAG` with PYTHONPATH at the tree's src."""
import hashlib, json, os, statistics, sys
import torch
from gpt2train.kernels import fp8_cast

tag = sys.argv[1]
dev = torch.device("cuda")
out = os.environ.get("OUT", "/tmp")
E4 = torch.float8_e4m3fn
gen = torch.Generator().manual_seed(1)


def rnd(*shape, s=1.0):
    return (torch.randn(*shape, generator=gen) * s).to(dev, torch.bfloat16)


def t_ms(fn, reps=30):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def digest(*ts):
    h = hashlib.sha1()
    for t in ts:
        h.update(t.contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()[:12]


res = []


def record(name, fn, check):
    try:
        ms = t_ms(fn)
        q, qt, sums, want = check()
        rel = ((sums - want).norm() / want.norm()).item()
        d = {"tree": tag, "variant": name, "ms": ms, "digest": digest(q, qt), "sums_rel": rel}
    except Exception as e:  # noqa
        d = {"tree": tag, "variant": name, "error": f"{type(e).__name__}: {str(e)[:300]}"}
    res.append(d)
    print(json.dumps(d), flush=True)


s_bwd = torch.tensor(4e4, device=dev)
for model, rows, c, heads in (("d12", 65536, 768, 12), ("d48", 16384, 1600, 25)):
    h, g, bias = rnd(rows, 4 * c, s=2.0), rnd(rows, 4 * c, s=1e-3), rnd(4 * c, s=0.3)
    amax = torch.zeros((), device=dev)
    want = torch.ops.aten.gelu_backward(g, h + bias, approximate="tanh").float().sum(0)
    op = lambda: fp8_cast.activation_cast_transpose_kernel(h, bias, g, s_bwd, E4, amax, "gelu")
    record(f"{model} gelu bwd op", op, lambda: (*op(), want))
    if tag == "new":
        for waves in (8, 12, 16):
            old = fp8_cast.FUSED_WAVES
            fp8_cast.FUSED_WAVES = waves
            record(f"{model} gelu bwd op {waves}/SM", op, lambda: (*op(), want))
            fp8_cast.FUSED_WAVES = old
        for bm, bn, w, waves in ((64, 64, 8, 12), (128, 64, 8, 8), (32, 64, 4, 16), (64, 32, 4, 16), (32, 128, 4, 12)):
            q = torch.empty(rows, 4 * c, dtype=E4, device=dev)
            qt = torch.empty(4 * c, rows, dtype=E4, device=dev)
            sm = torch.cuda.get_device_properties(dev).multi_processor_count
            fn = lambda: fp8_cast._launch(h, s_bwd, q, qt, amax, bm, bn, w, sm * waves, act=2, bias=bias, g=g, sums=True)
            record(f"{model} gelu bwd {bm}x{bn} w{w} {waves}/SM", fn, lambda: (q, qt, fn(), want))
    # a linear's output gradient with its bias's sums (c_proj's: C wide)
    gp = rnd(rows, c, s=1e-3)
    wantp = gp.float().sum(0)
    op = lambda: fp8_cast.grad_cast_transpose_kernel(gp, s_bwd, E4, amax)
    record(f"{model} grad cast op", op, lambda: (*op(), wantp))
    if tag == "new":
        for bm, bn, w, waves in ((64, 128, 8, 4), (64, 64, 4, 8), (64, 64, 4, 12), (32, 128, 4, 8), (64, 128, 4, 8)):
            q = torch.empty(rows, c, dtype=E4, device=dev)
            qt = torch.empty(c, rows, dtype=E4, device=dev)
            sm = torch.cuda.get_device_properties(dev).multi_processor_count
            fn = lambda: fp8_cast._launch(gp, s_bwd, q, qt, amax, bm, bn, w, sm * waves, sums=True)
            record(f"{model} grad cast {bm}x{bn} w{w} {waves}/SM", fn, lambda: (q, qt, fn(), wantp))
    # q, k and v's gradients as attention returns them ((B, T, heads, 64) memory, (B, heads, T, 64) views)
    b = rows // 1024
    dq, dk, dv = (rnd(b, 1024, heads, 64, s=1e-3).transpose(1, 2) for _ in range(3))
    wantq = torch.cat([t.transpose(1, 2).reshape(rows, -1) for t in (dq, dk, dv)], 1).float().sum(0)
    op = lambda: fp8_cast.qkv_grad_cast_transpose_kernel(dq, dk, dv, s_bwd, E4, amax)
    record(f"{model} qkv gather op", op, lambda: (*op(), wantq))
    if tag == "new":
        for waves in (8, 16):
            old = fp8_cast.FUSED_WAVES
            fp8_cast.FUSED_WAVES = waves
            record(f"{model} qkv gather op {waves}/SM", op, lambda: (*op(), wantq))
            fp8_cast.FUSED_WAVES = old
        q = torch.empty(rows, 3 * c, dtype=E4, device=dev)
        qt = torch.empty(3 * c, rows, dtype=E4, device=dev)
        sm = torch.cuda.get_device_properties(dev).multi_processor_count
        for w, waves in ((8, 12), (8, 8)):
            fn = lambda: fp8_cast._launch(dq, s_bwd, q, qt, amax, 64, 64, w, sm * waves, sums=True, gather=(dk, dv))
            record(f"{model} qkv gather 64x64 w{w} {waves}/SM", fn, lambda: (q, qt, fn(), wantq))
try:  # registers and spills of each compiled variant
    k = fp8_cast._kernel(False)
    for cache in getattr(k, "device_caches", {}).values():
        for key, ck in cache[0].items():
            res.append({"tree": tag, "kernel": str(key)[:400], "n_regs": getattr(ck, "n_regs", None),
                        "n_spills": getattr(ck, "n_spills", None)})
except Exception as e:  # noqa
    res.append({"tree": tag, "regs_error": str(e)[:300]})
with open(f"{out}/sums_sweep_{tag}.json", "w") as f:
    json.dump(res, f, indent=1)
