# issue 21, fifteenth session: variants of the FP8 cast kernel's passes (GELU forward/backward, the plain cast, the
# gradient cast with column sums) timed against the product kernel on d12's and d48's shapes; bytes checked equal.
import json
import os
import statistics
import sys
import traceback

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from gpt2train.kernels import fp8_cast  # noqa: E402

OUT = os.environ.get("OUT", "/tmp")
CPU = os.environ.get("TRITON_INTERPRET") == "1"
dev = torch.device("cpu" if CPU else "cuda")
rows_out = []


def log(**kw):
    rows_out.append(kw)
    print(json.dumps(kw), flush=True)


@triton.jit
def k_ptr(x_ptr, scale_ptr, q_ptr, qt_ptr, amax_ptr, bias_ptr, g_ptr, sums_ptr, M, N, fmax, ACT: tl.constexpr,
          BIAS: tl.constexpr, SUMS: tl.constexpr, WRITE_T: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
          STAGES: tl.constexpr, EVICT: tl.constexpr, AMAX_TILE: tl.constexpr, TRANS: tl.constexpr):  # fmt: skip
    tiles_n = tl.cdiv(N, BLOCK_N)
    scale = tl.load(scale_ptr)
    if AMAX_TILE:
        largest_s = 0.0
    else:
        largest = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for tile in tl.range(tl.program_id(0), tl.cdiv(M, BLOCK_M) * tiles_n, tl.num_programs(0), num_stages=STAGES):
        rows = (tile // tiles_n).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = (tile % tiles_n).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (rows[:, None] < M) & (cols[None, :] < N)
        if EVICT:
            x = tl.load(x_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0, eviction_policy="evict_first")
        else:
            x = tl.load(x_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0)
        x = x.to(tl.float32)
        if BIAS:
            b = tl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(tl.bfloat16).to(tl.float32)
            x = (x + b[None, :]).to(tl.bfloat16).to(tl.float32)
        if ACT != 0:
            s = tl.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x))
            if ACT == 1:
                x = x * s
            else:
                if EVICT:
                    g = tl.load(g_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0,
                                eviction_policy="evict_first")  # fmt: skip
                else:
                    g = tl.load(g_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0)
                g = g.to(tl.float32)
                x = g * (s + x * s * (1.0 - s) * 1.5957691216057308 * (1.0 + 0.134145 * x * x))
            x = tl.where(mask, x.to(tl.bfloat16).to(tl.float32), 0.0)
        if SUMS:
            tl.store(sums_ptr + (tile // tiles_n) * N + cols, tl.sum(x, axis=0), mask=cols < N)
        if AMAX_TILE:
            largest_s = tl.maximum(largest_s, tl.max(tl.abs(x)))
        else:
            largest = tl.maximum(largest, tl.abs(x))
        xs = tl.clamp(x * scale, -fmax, fmax)
        q = xs.to(q_ptr.dtype.element_ty)
        if EVICT:
            tl.store(q_ptr + rows[:, None] * N + cols[None, :], q, mask=mask, eviction_policy="evict_first")
        else:
            tl.store(q_ptr + rows[:, None] * N + cols[None, :], q, mask=mask)
        if WRITE_T:
            if TRANS == 0:
                tl.store(qt_ptr + cols[None, :] * M + rows[:, None], q, mask=mask)
            elif TRANS == 1:  # the fp32 tile transposed in registers, then cast
                qT = tl.trans(xs).to(qt_ptr.dtype.element_ty)
                tl.store(qt_ptr + cols[:, None] * M + rows[None, :], qT, mask=mask.T)
            else:  # the fp8 tile's bytes transposed as uint8
                qT = tl.trans(q.to(tl.uint8, bitcast=True))
                tl.store(qt_ptr.to(tl.pointer_type(tl.uint8)) + cols[:, None] * M + rows[None, :], qT, mask=mask.T)
    if AMAX_TILE:
        tl.atomic_max(amax_ptr, largest_s)
    else:
        tl.atomic_max(amax_ptr, tl.max(largest))


@triton.jit
def k_tma(x_desc, g_desc, q_desc, qt_desc, scale_ptr, amax_ptr, bias_ptr, sums_ptr, M, N, fmax, ACT: tl.constexpr,
          BIAS: tl.constexpr, SUMS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, STAGES: tl.constexpr,
          TRANS32: tl.constexpr):  # fmt: skip
    tiles_n = tl.cdiv(N, BLOCK_N)
    scale = tl.load(scale_ptr)
    largest_s = 0.0
    for tile in tl.range(tl.program_id(0), tl.cdiv(M, BLOCK_M) * tiles_n, tl.num_programs(0), num_stages=STAGES):
        r0 = (tile // tiles_n) * BLOCK_M
        c0 = (tile % tiles_n) * BLOCK_N
        cols = c0 + tl.arange(0, BLOCK_N)
        x = x_desc.load([r0, c0]).to(tl.float32)
        if BIAS:
            b = tl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(tl.bfloat16).to(tl.float32)
            x = (x + b[None, :]).to(tl.bfloat16).to(tl.float32)
        if ACT != 0:
            s = tl.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x))
            if ACT == 1:
                x = x * s
            else:
                g = g_desc.load([r0, c0]).to(tl.float32)
                x = g * (s + x * s * (1.0 - s) * 1.5957691216057308 * (1.0 + 0.134145 * x * x))
            x = x.to(tl.bfloat16).to(tl.float32)
        if SUMS:
            tl.store(sums_ptr + (tile // tiles_n) * N + cols, tl.sum(x, axis=0), mask=cols < N)
        largest_s = tl.maximum(largest_s, tl.max(tl.abs(x)))
        xs = tl.clamp(x * scale, -fmax, fmax)
        q_desc.store([r0, c0], xs.to(q_desc.dtype))
        if TRANS32:
            qt_desc.store([c0, r0], tl.trans(xs).to(qt_desc.dtype))
        else:
            qt_desc.store([c0, r0], tl.trans(xs.to(qt_desc.dtype)))
    tl.atomic_max(amax_ptr, largest_s)


SM = 2 if CPU else torch.cuda.get_device_properties(dev).multi_processor_count


def launch_ptr(t, scale, q, qt, amax, act, bias, g, sums, bm, bn, warps, waves, stages=2, evict=0, amax_tile=0, trans=0):
    m, n = t.shape
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    progs = min(tiles, SM * waves) if waves else tiles
    k_ptr[(progs,)](t, scale, q, qt, amax, t if bias is None else bias, t if g is None else g,
                    t if sums is None else sums, m, n, 448.0, ACT=act, BIAS=bias is not None, SUMS=sums is not None,
                    WRITE_T=True, BLOCK_M=bm, BLOCK_N=bn, STAGES=stages, EVICT=evict, AMAX_TILE=amax_tile,
                    TRANS=trans, num_warps=warps)  # fmt: skip


def launch_tma(t, scale, q, qt, amax, act, bias, g, sums, bm, bn, warps, waves, stages=2, trans32=0):
    from triton.tools.tensor_descriptor import TensorDescriptor

    m, n = t.shape
    xd = TensorDescriptor.from_tensor(t, [bm, bn])
    gd = TensorDescriptor.from_tensor(t if g is None else g, [bm, bn])
    qd = TensorDescriptor.from_tensor(q, [bm, bn])
    qtd = TensorDescriptor.from_tensor(qt, [bn, bm])
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    progs = min(tiles, SM * waves) if waves else tiles
    k_tma[(progs,)](xd, gd, qd, qtd, scale, amax, t if bias is None else bias, t if sums is None else sums, m, n,
                    448.0, ACT=act, BIAS=bias is not None, SUMS=sums is not None, BLOCK_M=bm, BLOCK_N=bn,
                    STAGES=stages, TRANS32=trans32, num_warps=warps)  # fmt: skip


def time_ms(fn, reps=25):
    if CPU:
        return 1.0
    for _ in range(3):
        fn()
    (None if CPU else torch.cuda.synchronize())
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        (None if CPU else torch.cuda.synchronize())
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def case(name, m, n, act, with_bias, with_sums, variants):
    gen = torch.Generator().manual_seed(m + n + act)
    t = (torch.randn(m, n, generator=gen) * 2).to(dev, torch.bfloat16)
    g = (torch.randn(m, n, generator=gen) * 1e-3).to(dev, torch.bfloat16) if act == 2 else None
    bias = (torch.randn(n, generator=gen) * 0.3).to(dev, torch.bfloat16) if with_bias else None
    scale = torch.tensor(4e4 if (act == 2 or with_sums) else 40.0, device=dev)
    if act == 0 and with_sums:
        t = t * 1e-3
    dt = torch.float8_e4m3fn
    # the product kernel: the reference bytes and the baseline time
    amax0 = torch.zeros((), device=dev)
    q0, qt0 = torch.empty(m, n, dtype=dt, device=dev), torch.empty(n, m, dtype=dt, device=dev)
    sums0 = fp8_cast._column_sums(m, n, dev, fp8_cast.FUSED_BLOCK_M if act else fp8_cast.BLOCK_M) if with_sums else None
    if act:
        prod = lambda: fp8_cast._launch(t, scale, q0, qt0, amax0, *fp8_cast._fused_launch(dev, m, n), act=act,  # noqa
                                        bias=bias, g=g, sums=sums0)  # fmt: skip
    else:
        prod = lambda: fp8_cast._launch(t, scale, q0, qt0, amax0, sums=sums0)  # noqa
    prod()
    (None if CPU else torch.cuda.synchronize())
    ref_sums = None if sums0 is None else sums0.sum(0).clone()
    ref_amax = amax0.item()
    gbytes = m * n * (2 + 2 * (act == 2) + 2) / 1e9
    ms = time_ms(prod)
    log(case=name, variant="product", ms=round(ms, 4), gb_s=round(gbytes / ms * 1e3, 1), ok=True)
    for vname, kind, kw in variants:
        try:
            amax = torch.zeros((), device=dev)
            q, qt = torch.zeros(m, n, dtype=dt, device=dev), torch.zeros(n, m, dtype=dt, device=dev)
            bm = kw["bm"]
            sums = torch.empty((-(-m // bm), n), dtype=torch.float32, device=dev) if with_sums else None
            launch = launch_ptr if kind == "ptr" else launch_tma
            fn = lambda: launch(t, scale, q, qt, amax, act, bias, g, sums, **kw)  # noqa
            fn()
            (None if CPU else torch.cuda.synchronize())
            wq = int((q.view(torch.uint8) != q0.view(torch.uint8)).sum())
            wqt = int((qt.view(torch.uint8) != qt0.view(torch.uint8)).sum())
            serr = 0.0 if sums is None else ((sums.sum(0) - ref_sums).norm() / ref_sums.norm()).item()
            ok = wq == 0 and wqt == 0 and abs(amax.item() - ref_amax) <= 1e-6 * abs(ref_amax) and serr < 1e-5
            ms = time_ms(fn)
            log(case=name, variant=vname, ms=round(ms, 4), gb_s=round(gbytes / ms * 1e3, 1), ok=ok, wrong=[wq, wqt],
                sums_err=serr)  # fmt: skip
        except Exception as e:  # noqa: BLE001
            log(case=name, variant=vname, error=f"{type(e).__name__}: {str(e)[:300]}")
            traceback.print_exc()


def ptr(bm, bn, warps, waves, stages=2, evict=0, amax_tile=0, trans=0):
    return (f"ptr {bm}x{bn} w{warps} p{waves} s{stages} e{evict} a{amax_tile} t{trans}", "ptr",
            dict(bm=bm, bn=bn, warps=warps, waves=waves, stages=stages, evict=evict, amax_tile=amax_tile, trans=trans))


def tma(bm, bn, warps, waves, stages=2, trans32=0):
    return (f"tma {bm}x{bn} w{warps} p{waves} s{stages} t32{trans32}", "tma",
            dict(bm=bm, bn=bn, warps=warps, waves=waves, stages=stages, trans32=trans32))


GELU_VARIANTS = [
    ptr(64, 64, 4, 8),  # the product's launch, through this copy
    ptr(64, 64, 4, 8, evict=1),
    ptr(64, 64, 4, 8, amax_tile=1),
    ptr(64, 64, 4, 8, evict=1, amax_tile=1),
    ptr(64, 64, 4, 8, trans=1),
    ptr(64, 64, 4, 8, trans=2),
    ptr(128, 64, 4, 4, amax_tile=1),
    ptr(128, 64, 8, 4, amax_tile=1),
    ptr(128, 64, 8, 4, evict=1, amax_tile=1),
    ptr(64, 128, 8, 4, amax_tile=1),
    ptr(128, 128, 8, 2, amax_tile=1),
    ptr(128, 128, 16, 1, amax_tile=1),
    ptr(64, 64, 4, 12, amax_tile=1),
    ptr(64, 64, 4, 16, amax_tile=1),
    ptr(32, 64, 2, 16, amax_tile=1),
    ptr(64, 64, 4, 8, stages=1, amax_tile=1),
    ptr(64, 64, 4, 8, stages=3, amax_tile=1),
    ptr(64, 64, 4, 0, amax_tile=1),
    tma(64, 64, 4, 8),
    tma(64, 64, 4, 8, trans32=1),
    tma(128, 64, 4, 4),
    tma(128, 64, 8, 4),
    tma(64, 128, 4, 4),
    tma(128, 128, 8, 2),
    tma(64, 64, 4, 8, stages=3),
    tma(64, 64, 4, 16),
]
CAST_VARIANTS = [
    ptr(64, 128, 4, 4),  # the product's cast launch
    ptr(64, 128, 4, 4, evict=1),
    ptr(64, 128, 4, 4, amax_tile=1),
    ptr(128, 64, 4, 4, amax_tile=1),
    ptr(128, 128, 8, 2, amax_tile=1),
    ptr(64, 64, 4, 8, amax_tile=1),
    tma(64, 128, 4, 4),
    tma(128, 64, 4, 4),
    tma(128, 128, 8, 2),
    tma(64, 64, 4, 8),
]

if __name__ == "__main__":
    which = sys.argv[1:] or ["gelu_fwd", "gelu_bwd", "cast", "grad"]
    if CPU:
        fp8_cast._sm_count = lambda d: 2
        case("cpu gelu fwd", 256, 192, 1, True, False, GELU_VARIANTS[:6] + GELU_VARIANTS[18:20])
        case("cpu gelu bwd", 256, 192, 2, True, True, GELU_VARIANTS[:6] + GELU_VARIANTS[18:20])
        case("cpu grad", 256, 256, 0, False, True, CAST_VARIANTS[:3] + CAST_VARIANTS[6:7])
        which = []
    try:
        if "gelu_fwd" in which:
            case("d12 gelu fwd 65536x3072", 65536, 3072, 1, True, False, GELU_VARIANTS)
        if "gelu_bwd" in which:
            case("d12 gelu bwd 65536x3072", 65536, 3072, 2, True, True, GELU_VARIANTS)
        if "cast" in which:
            case("d12 cast 65536x768", 65536, 768, 0, False, False, CAST_VARIANTS)
        if "grad" in which:
            case("d12 grad+sums 65536x2304", 65536, 2304, 0, False, True, CAST_VARIANTS)
        if "d48" in which:
            case("d48 gelu fwd 16384x6400", 16384, 6400, 1, True, False, GELU_VARIANTS)
            case("d48 gelu bwd 16384x6400", 16384, 6400, 2, True, True, GELU_VARIANTS)
    finally:
        with open(os.path.join(OUT, "sweep.json"), "w") as f:
            json.dump(rows_out, f, indent=1)
