"""Check every fast path in gpt2train.kernels against its reference on the GPU, and time it.

    python bench/kernels_gpu_check.py --out kernels_check.json            # on an H100
    python bench/kernels_gpu_check.py --device cpu --small --out /tmp/k.json   # CPU smoke test

For each piece, on random inputs:
  classifier   chunked_classifier_loss vs plain_classifier_loss: loss / dx / dW relative error,
               fwd+bwd ms (median), peak extra memory (torch.cuda.max_memory_allocated above the
               inputs), then both under torch.compile (compile seconds, ms, peak); in bf16 on an FP8 card also
               with its matmuls in FP8 (--fp8-classifier), and that path's gradient kernel bit for bit.
  gelu_linear  gelu_linear vs the plain path and vs torch.utils.checkpoint (model.py's -r 1):
               error, fwd+bwd ms, bytes saved for backward.
  gelu_mlp     gelu_mlp (GELU in the cuBLASLt GELU_AUX_BIAS / DGELU_BGRAD epilogues, -ge) vs the plain
               MLP under bf16 autocast and vs an fp32 reference: error of y, dx, dW_fc, db_fc, dW_proj,
               db_proj; forward and forward+backward ms of fused, plain and both under torch.compile;
               which path the custom ops took (cuBLASLt or the torch fallback); host overhead per call.
  fp8_cast     the one-pass FP8 cast with its transpose (kernels/fp8_cast.py) vs its reference, bit for bit, for
               e4m3 and e5m2 at the blocks' shapes, and its amax record (--fp8-scaling delayed); ms and GB/s of
               the kernel at a few tile sizes, of the reference eager and compiled.
  fp8_gelu     the cast kernel's activation passes, GELU's and ReLU²'s (--fp8-gelu-cast, kernels/fp8_fused.py) vs
               activation_cast_transpose_reference: bytes off and by how much, the amax record, the bias gradient's
               sums; ms of each pass against the unfused pair (the activation or its backward with the bias sum
               compiled by Inductor, then the cast kernel).
  fp8_qkv      the cast kernel's gather of q, k and v's gradients (--fp8-qkv-cast, kernels/fp8_fused.py) vs
               qkv_grad_cast_transpose_reference, bit for bit, with the bias gradient's sums; ms against the unfused
               pair (the concatenation and bias sum compiled by Inductor, then the cast kernel).
  fp8_norm     the LayerNorm inside the FP8 cast (--fp8-norm-cast, kernels/fp8_layernorm.py) vs
               ln_cast_transpose_reference, with and without the residual add: bytes off, the sum, mean and 1/std,
               the amax record; ms against the unfused pair (Inductor's add and LayerNorm, then the cast kernel); the
               LayerNorm backward the fused linears run (layer_norm_backward) against autograd's.
  op_overhead  host time per call of the FP8 cast op as kernels/_library.py registers it, against the same
               function as a torch.library.custom_op and called directly (tiny tensors; CPU or GPU).
  adamw_bf16   the Triton stochastic-rounding AdamW step vs the plain reference (moments equal,
               every parameter on a bf16 neighbour of the fp32 result), step ms vs the reference
               and vs torch.optim.AdamW(fused=True) on fp32 parameters (the -w 1 path).
Prints a table last; writes the rows and the environment as JSON to --out. Exit status 1 if any
correctness check failed.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpt2train.config import ModelConfig  # noqa: E402
from gpt2train.kernels import cublaslt, fp8_cast, fused_classifier  # noqa: E402
from gpt2train.kernels import master_adamw as ma  # noqa: E402
from gpt2train.kernels import stochastic_round as sr  # noqa: E402
from gpt2train.kernels._triton import triton_available  # noqa: E402
from gpt2train.kernels.fp8_linear import fp8_linear, fp8_linear_reference, fp8_supported  # noqa: E402
from gpt2train.kernels.fused_classifier import chunked_classifier_loss, plain_classifier_loss  # noqa: E402
from gpt2train.kernels.gelu_linear import gelu_linear, gelu_linear_reference  # noqa: E402
from gpt2train.kernels.gelu_mlp import STATS as GELU_MLP_STATS  # noqa: E402
from gpt2train.kernels.gelu_mlp import gelu_mlp, gelu_mlp_reference  # noqa: E402
from gpt2train.model import GPT  # noqa: E402
from gpt2train.train.accelerate import FastPaths, accelerate  # noqa: E402
from gpt2train.train.optim import flatten_parameters_  # noqa: E402

# adamw: both AdamWs
CHECK_NAMES = ("classifier", "gelu_linear", "gelu_mlp", "fp8_linear", "fp8_cast", "fp8_gelu", "fp8_qkv", "fp8_norm",
               "grad_accum", "adamw", "op_overhead")  # fmt: skip
ROWS: list[dict] = []
FAILURES: list[str] = []

SHAPES = {  # name: (rows = B*T, C)
    "d12": (65536, 768),  # B=64, T=1024
    "d48": (65536, 1600),  # B=64 rows; d48 trains at B=16 (16384 rows) but the output layer is the same
}
SMALL_SHAPES = {"small": (512, 64)}
V_REAL, V_PAD = 50257, 50304
TOL = {"fp32": 1e-5, "bf16": 2e-2, "autocast": 2e-2}
TOL_FP8 = 0.1  # --fp8-classifier's relative error: e4m3 logits, an e5m2 gradient (0.027 at d12 on an H200)


# -- helpers --------------------------------------------------------------------------------------


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, dev, reps: int, warmup: int = 2) -> float:
    """Median wall time of fn() in ms (CUDA events on the GPU, perf_counter on the CPU)."""
    for _ in range(warmup):
        fn()
    sync(dev)
    times = []
    for _ in range(reps):
        if dev.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def peak_extra_mib(fn, dev) -> float | None:
    """Peak memory fn() allocates above what is allocated before it, in MiB (CUDA only)."""
    if dev.type != "cuda":
        return None
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in fp64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def top_kernels(fn, reps: int, top: int = 12) -> list[tuple[str, float]]:
    """The ``top`` GPU kernels of ``reps`` calls of ``fn`` (after one warm call): (name, ms per call)."""
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    rows = [(e.key[:90], e.device_time_total / 1000 / reps) for e in prof.key_averages() if e.device_time_total > 0]
    return sorted(rows, key=lambda r: -r[1])[:top]


def record(check: str, case: str, variant: str, ok: bool | None = None, **fields):
    row = dict(check=check, case=case, variant=variant, ok=ok, **fields)
    ROWS.append(row)
    if ok is False:
        FAILURES.append(f"{check} {case} {variant}: {fields}")
    print(json.dumps(row), flush=True)


def guarded(check: str, case: str):
    """Decorator-free try/except wrapper: one failing case must not stop the others."""

    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, et, ev, tb):
            if et is None:
                return False
            msg = "".join(traceback.format_exception_only(et, ev)).strip()
            record(check, case, "ERROR", ok=False, error=msg[-500:])
            traceback.print_exception(et, ev, tb)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return True  # swallow

    return _Guard()


# -- classifier -----------------------------------------------------------------------------------


def classifier_inputs(rows, c, vp, v, dtype_name, dev, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    dt = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    x = torch.randn(rows, c, generator=g).to(dev, dt)
    w = (torch.randn(vp, c, generator=g) * 0.02).to(dev, dt)
    t = torch.randint(0, v, (rows,), generator=g).to(dev)
    t[torch.rand(rows, generator=g).to(dev) < 0.01] = -1  # a few ignored positions
    return x, w, t


def classifier_step(fn, x, w, t, v, dtype_name, dev):
    """One fwd+bwd; returns (loss, dx, dW)."""
    x.grad = w.grad = None
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype_name == "autocast"):
        loss = fn(x, w, t, v)
    loss.backward()
    return loss.detach(), x.grad, w.grad


def check_classifier(args, dev):
    shapes = SMALL_SHAPES if args.small else {k: SHAPES[k] for k in args.shapes.split(",")}
    vp, v = (256, 250) if args.small else (V_PAD, V_REAL)
    for shape_name, (rows, c) in shapes.items():
        for dtype_name in args.dtypes.split(","):
            case = f"{shape_name} N={rows} C={c} Vp={vp} {dtype_name}"
            case += f" softcap={args.softcap:g}" if args.softcap else ""
            with guarded("classifier", case):
                classifier_case(args, dev, case, rows, c, vp, v, dtype_name)


def classifier_case(args, dev, case, rows, c, vp, v, dtype_name):
    x, w, t = classifier_inputs(rows, c, vp, v, dtype_name, dev)
    x.requires_grad_()
    w.requires_grad_()
    cap = args.softcap
    plain = functools.partial(plain_classifier_loss, softcap=cap)
    ref = [r.clone() for r in classifier_step(plain, x, w, t, v, dtype_name, dev)]
    variants = {"plain": plain}
    for cr in [args.chunk_rows] + [int(s) for s in args.chunk_sweep.split(",") if s]:
        variants[f"chunked rows={cr}"] = functools.partial(chunked_classifier_loss, chunk_rows=cr, softcap=cap)
    # impl="auto" is the Triton per-chunk kernel on CUDA; the plain-ops version for comparison
    variants[f"chunked rows={args.chunk_rows} impl=torch"] = functools.partial(
        chunked_classifier_loss, chunk_rows=args.chunk_rows, impl="torch", softcap=cap
    )
    fp8 = dtype_name != "fp32" and fp8_supported(dev)
    if fp8:  # --fp8-classifier 1, 3 and 4: the three matmuls in FP8, within FP8's error of the reference
        for mode, label in ((1, "fp8"), (3, "fp8 stochastic"), (4, "fp8 exact target")):
            variants[f"chunked rows={args.chunk_rows} {label}"] = functools.partial(
                chunked_classifier_loss, chunk_rows=args.chunk_rows, softcap=cap, fp8=mode
            )
    for name, fn in variants.items():
        out = classifier_step(fn, x, w, t, v, dtype_name, dev)
        errs = dict(
            err_loss=rel_err(out[0], ref[0]),
            err_dx=rel_err(out[1], ref[1]),
            err_dw=rel_err(out[2], ref[2]),
        )
        tol = TOL_FP8 if " fp8" in name else TOL[dtype_name]
        ok = all(e <= tol for e in errs.values()) if name != "plain" else None
        del out
        step = lambda fn=fn: classifier_step(fn, x, w, t, v, dtype_name, dev)
        ms = time_ms(step, dev, args.reps)
        x.grad = w.grad = None  # so the peak counts this step's gradients
        peak = peak_extra_mib(step, dev)
        record("classifier", case, name, ok=ok, ms=ms, peak_extra_mib=peak, tol=tol, **errs)
    if fp8:
        fp8_gradient_bits(dev, case, min(rows, args.chunk_rows), vp, v, cap)
    compile_here = dtype_name in args.compile_dtypes.split(",") and (
        args.small or case.split()[0] in args.compile_shapes.split(",")
    )
    if compile_here and not args.no_compile:
        compile_classifier(args, dev, case, x, w, t, v, dtype_name, ref)


def fp8_gradient_bits(dev, case, rows, vp, v, softcap):
    """--fp8-classifier's gradient kernel against the PyTorch gradient of the same bf16 logits computed in fp32 and
    cast to float8 (round-to-nearest-even): the share of bytes that differ (exp's last bit may tip a value on a
    rounding boundary), and its transposed copy bit for bit (on the CPU: both from the reference path)."""
    g = torch.Generator().manual_seed(rows)
    logits = (torch.randn(rows, vp, generator=g) * 3).to(dev, torch.bfloat16)
    t = torch.randint(0, v, (rows,), generator=g).to(dev)
    t[::101] = -1
    scale = (t != -1).float() * torch.finfo(fused_classifier.FP8_GRAD).max
    triton = dev.type == "cuda" and triton_available()
    for onehot, rows, label in (
        (True, False, ""),
        (False, False, ", the target's term apart"),
        (False, True, ", the target's term apart, rows in e4m3 (--fp8-classifier 4)"),
    ):
        _, q, qt, _ = fused_classifier._chunk_loss_and_fp8_grads(logits.clone(), t, v, scale, softcap, triton,
                                                                 onehot=onehot, row_scaled=rows)  # fmt: skip
        _, rq, _, _ = fused_classifier._chunk_loss_and_fp8_grads(logits.float(), t, v, scale, softcap, False,
                                                                 onehot=onehot, row_scaled=rows)  # fmt: skip
        wrong = (q.view(torch.uint8) != rq.view(torch.uint8)).float().mean().item()
        if not rows:  # with rows in e4m3 the transposed copy is the e5m2 softmax's, the variant before
            row_major = q
        transposed = bool(torch.equal(qt.view(torch.uint8), row_major.t().contiguous().view(torch.uint8)))
        ok = (wrong < 1e-3 and transposed) if triton else None  # off CUDA both came from the reference
        record("classifier", case, "fp8 gradient kernel vs reference, bits" + label, ok=ok,
               wrong_share=wrong, transpose_exact=transposed)  # fmt: skip
    _, rq, _, _ = fused_classifier._chunk_loss_and_fp8_grads(logits.float(), t, v, scale, softcap, False)
    # --fp8-classifier 3: each value on one of the two e5m2 neighbours of the fp32 gradient (from 2^-14 up, where the
    # cut is exact), both layouts alike, and over draws the fp32 gradient on average
    _, exact = fused_classifier._chunk_loss_and_dlogits(logits.float(), t, v, scale, softcap)
    exact = exact.float().clamp(-rq.float().abs().max(), rq.float().abs().max())
    draws = [fused_classifier._chunk_loss_and_fp8_grads(logits.clone(), t, v, scale, softcap, triton,
                                                        torch.tensor([seed], device=dev))[1:3] for seed in range(8)]  # fmt: skip
    cut = (exact.abs().view(torch.int32) & -(1 << 21)).view(torch.float32)
    up = ((exact.abs().view(torch.int32) & -(1 << 21)) + (1 << 21)).view(torch.float32)
    normal = exact.abs() >= 2.0**-14
    first = draws[0][0].float().abs()
    on = bool((((first == cut) | (first == up)) | ~normal).all())
    transposed = all(bool(torch.equal(b.view(torch.uint8), a.t().contiguous().view(torch.uint8))) for a, b in draws)
    big = exact.abs() > 1.0
    mean = torch.stack([a.float() for a, _ in draws]).double().mean(0)
    bias = ((mean - exact.double())[big].norm() / exact.double()[big].norm()).item()
    spread = ((draws[0][0].double() - exact.double())[big].norm() / exact.double()[big].norm()).item()
    record("classifier", case, "fp8 stochastic gradient: neighbours, unbiased", ok=on and transposed and
           bias < spread / 2, mean_rel_err=bias, one_draw_rel_err=spread)  # fmt: skip


def compile_classifier(args, dev, case, x, w, t, v, dtype_name, ref):
    backend = "inductor" if dev.type == "cuda" else "aot_eager"  # no C++ toolchain needed on CPU
    for name, base in {
        "plain compiled": plain_classifier_loss,
        "chunked compiled": lambda a, b, c_, d: chunked_classifier_loss(a, b, c_, d, chunk_rows=args.chunk_rows),
    }.items():
        with guarded("classifier", case + f" {name}"):
            torch._dynamo.reset()
            fn = torch.compile(base, backend=backend)
            t0 = time.perf_counter()
            out = classifier_step(fn, x, w, t, v, dtype_name, dev)
            sync(dev)
            compile_s = time.perf_counter() - t0
            errs = dict(
                err_loss=rel_err(out[0], ref[0]),
                err_dx=rel_err(out[1], ref[1]),
                err_dw=rel_err(out[2], ref[2]),
            )
            tol = TOL[dtype_name]
            del out
            step = lambda fn=fn: classifier_step(fn, x, w, t, v, dtype_name, dev)
            ms = time_ms(step, dev, args.reps)
            x.grad = w.grad = None
            peak = peak_extra_mib(step, dev)
            ok = all(e <= tol for e in errs.values())
            record(
                "classifier",
                case,
                name,
                ok=ok,
                ms=ms,
                peak_extra_mib=peak,
                compile_s=compile_s,
                backend=backend,
                **errs,
            )


# -- gelu_linear ----------------------------------------------------------------------------------


def saved_bytes(fn) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return total


def check_gelu_linear(args, dev):
    shapes = (
        {"small": (256, 128, 32)}
        if args.small
        else {"d12 B=64": (65536, 3072, 768), "d48 B=16": (16384, 6400, 1600)}  # rows, 4C, C
    )
    from torch.utils.checkpoint import checkpoint

    def ckpt(h, w, b):
        return checkpoint(gelu_linear_reference, h, w, b, use_reentrant=False)

    for shape_name, (rows, k, n) in shapes.items():
        for dtype_name in [d for d in args.dtypes.split(",") if d in ("bf16", "autocast", "fp32")]:
            case = f"{shape_name} rows={rows} {k}->{n} {dtype_name}"
            with guarded("gelu_linear", case):
                gelu_linear_case(args, dev, case, rows, k, n, dtype_name, ckpt)


def gelu_linear_case(args, dev, case, rows, k, n, dtype_name, ckpt):
    g = torch.Generator().manual_seed(1)
    dt = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    h = torch.randn(rows, k, generator=g).to(dev, dt).requires_grad_()
    w = (torch.randn(n, k, generator=g) * 0.02).to(dev, dt).requires_grad_()
    b = torch.zeros(n).to(dev, dt).requires_grad_()
    dout = torch.randn(rows, n, generator=g).to(dev, torch.bfloat16 if dtype_name != "fp32" else dt)
    ac = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=dtype_name == "autocast")

    def run(fn):
        h.grad = w.grad = b.grad = None
        with torch.autocast(**ac):
            out = fn(h, w, b)
        out.backward(dout.to(out.dtype))
        return out.detach(), h.grad, w.grad, b.grad

    ref = [r.clone() for r in run(gelu_linear_reference)]
    for name, fn in {
        "plain (saves gelu(h))": gelu_linear_reference,
        "checkpoint (model.py -r 1)": ckpt,
        "gelu_linear": gelu_linear,
    }.items():
        out = run(fn)
        errs = {f"err_{nm}": rel_err(a, r) for nm, a, r in zip(("out", "dh", "dw", "db"), out, ref)}
        tol = TOL[dtype_name] if dtype_name != "fp32" else 1e-5
        ok = all(e <= tol for e in errs.values())
        del out
        with torch.autocast(**ac):
            sb = saved_bytes(lambda fn=fn: fn(h, w, b))
        ms = time_ms(lambda fn=fn: run(fn), dev, args.reps)
        h.grad = w.grad = b.grad = None
        peak = peak_extra_mib(lambda fn=fn: run(fn), dev)
        record("gelu_linear", case, name, ok=ok, ms=ms, peak_extra_mib=peak, saved_mib=sb / 2**20, **errs)


# -- gelu_mlp -------------------------------------------------------------------------------------

MLP_GRADS = ("y", "dx", "dw_fc", "db_fc", "dw_proj", "db_proj")


def check_gelu_mlp(args, dev):
    shapes = {"small": (256, 64)} if args.small else {"d12": (8192, 768), "d48": (8192, 1600)}  # rows, C
    for shape_name, (rows, c) in shapes.items():
        for dtype_name in [d for d in args.dtypes.split(",") if d in ("autocast", "bf16", "fp32")]:
            case = f"{shape_name} rows={rows} C={c} H={4 * c} {dtype_name}"
            with guarded("gelu_mlp", case):
                gelu_mlp_case(args, dev, case, rows, c, dtype_name)
    if dev.type == "cuda":
        with guarded("gelu_mlp", "host overhead"):
            gelu_mlp_overhead(dev)


def gelu_mlp_case(args, dev, case, rows, c, dtype_name):
    g = torch.Generator().manual_seed(3)
    dt = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    x = torch.randn(rows, c, generator=g).to(dev, dt).requires_grad_()  # LayerNorm's output: fp32 under autocast
    params = [
        (torch.randn(4 * c, c, generator=g) * 0.02),
        (torch.randn(4 * c, generator=g) * 0.02),
        (torch.randn(c, 4 * c, generator=g) * 0.02),
        (torch.randn(c, generator=g) * 0.02),
    ]
    params = [p.to(dev, dt).requires_grad_() for p in params]
    leaves = [x, *params]
    dy = torch.randn(rows, c, generator=g).to(dev, torch.bfloat16 if dtype_name != "fp32" else dt)

    def fwd(fn, autocast=dtype_name == "autocast"):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            return fn(*leaves)

    def run(fn, autocast=dtype_name == "autocast"):
        for t in leaves:
            t.grad = None
        y = fwd(fn, autocast)
        y.backward(dy.to(y.dtype))
        return [y.detach()] + [t.grad for t in leaves]

    ref = [r.clone() for r in run(gelu_mlp_reference)]
    ref32 = [r.float().clone() for r in run(gelu_mlp_reference, autocast=False)] if dt == torch.float32 else None
    # -ge 1 is backward="plain" (the forward epilogue only), -ge 2 is "dgelu"
    fused = {f"gelu_mlp bwd={b}": functools.partial(gelu_mlp, backward=b) for b in ("plain", "dgelu", "dgelu_bgrad")}
    variants = {"plain": gelu_mlp_reference, **fused}
    if not args.no_compile:
        backend = "inductor" if dev.type == "cuda" else "aot_eager"
        torch._dynamo.reset()
        variants["plain compiled"] = torch.compile(gelu_mlp_reference, backend=backend)
        for name, fn in fused.items():
            variants[f"{name} compiled"] = torch.compile(fn, backend=backend)
    tol = TOL[dtype_name] if dtype_name != "fp32" else 1e-5
    for name, fn in variants.items():
        with guarded("gelu_mlp", case + " " + name):
            before = {op: dict(n) for op, n in GELU_MLP_STATS.items()}
            t0 = time.perf_counter()
            out = run(fn)
            sync(dev)
            first_s = time.perf_counter() - t0  # includes compiling for the compiled variants
            paths = {
                op: {k: n[k] - before[op][k] for k in n if n[k] != before[op][k]} for op, n in GELU_MLP_STATS.items()
            }
            errs = {f"err_{nm}": rel_err(a, r) for nm, a, r in zip(MLP_GRADS, out, ref)}
            if ref32 is not None:
                errs.update({f"err32_{nm}": rel_err(a, r) for nm, a, r in zip(MLP_GRADS, out, ref32)})
                ref_errs = {f"plain_err32_{nm}": rel_err(a, r) for nm, a, r in zip(MLP_GRADS, ref, ref32)}
            else:
                ref_errs = {}
            ok = all(e <= tol for e in errs.values()) if name != "plain" else None
            fused = "gelu_mlp" in name
            if (
                fused
                and dev.type == "cuda"
                and dtype_name != "fp32"
                and any(n.get("torch") for op, n in paths.items() if op != "matmul_dgelu_bgrad" or "bgrad" in name)
            ):
                ok = False  # on the GPU in bf16 the epilogues must run, not the plain-torch fallback
            del out
            sb = saved_bytes(lambda fn=fn: fwd(fn))
            ms_fwd = time_ms(lambda fn=fn: fwd(fn), dev, args.reps)
            ms = time_ms(lambda fn=fn: run(fn), dev, args.reps)
            for t in leaves:
                t.grad = None
            peak = peak_extra_mib(lambda fn=fn: run(fn), dev)
            record(
                "gelu_mlp",
                case,
                name,
                ok=ok,
                ms=ms,
                ms_fwd=ms_fwd,
                first_call_s=first_s,
                peak_extra_mib=peak,
                saved_mib=sb / 2**20,
                paths=paths if fused else None,
                tol=tol,
                **errs,
                **(ref_errs if name == "plain" else {}),
            )


def gelu_mlp_overhead(dev):
    """Host time per call of each cuBLASLt op on tiny tensors (the GPU work is negligible, so this
    is the Python + ctypes cost per call; compare with torch.addmm on the same tensors)."""
    x = torch.randn(64, 64, device=dev, dtype=torch.bfloat16)
    w = torch.randn(64, 64, device=dev, dtype=torch.bfloat16)
    b = torch.randn(64, device=dev, dtype=torch.bfloat16)
    calls = {
        "linear_gelu_aux op": lambda: torch.ops.gpt2train.linear_gelu_aux(x, w, b),
        "matmul_dgelu_bgrad op": lambda: torch.ops.gpt2train.matmul_dgelu_bgrad(x, w, x),
        "cublaslt.matmul (no op dispatch)": lambda: cublaslt.matmul(x, w),
        "torch.addmm": lambda: torch.addmm(b, x, w.t()),
    }
    for name, fn in calls.items():
        record("gelu_mlp", "host overhead 64x64x64 bf16", name, host_us_per_call=host_us(fn, dev))


def host_us(fn, dev, calls: int = 2000) -> float:
    """Host time per call of fn() in us, the device not waited for (on tiny tensors: the launch path's cost)."""
    for _ in range(10):
        fn()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    us = (time.perf_counter() - t0) / calls * 1e6
    sync(dev)
    return us


def check_op_overhead(args, dev):
    """Host time per call of the FP8 cast op (kernels/_library.py's registration: the dispatcher calls the
    function) against the same function registered by torch.library.custom_op and against the function called
    directly, on a 64x64 bf16 tile (the device's work is negligible next to the host's)."""
    from gpt2train.kernels import _library

    qualname = "gpt2train::fp8_cast_transpose"
    fn = _library.FUNCTIONS[qualname]
    if not hasattr(torch.ops.gpt2train_bench, "fp8_cast_transpose"):  # called eagerly only: no shape function
        torch.library.custom_op("gpt2train_bench::fp8_cast_transpose", mutates_args=("amax",))(fn)
    t = torch.randn(64, 64, device=dev).to(torch.bfloat16)
    scale, amax, e4m3 = torch.tensor(1.0, device=dev), torch.zeros((), device=dev), torch.float8_e4m3fn
    lean = torch.ops.gpt2train.fp8_cast_transpose.default
    wrapped = torch.ops.gpt2train_bench.fp8_cast_transpose.default
    for variant, call in (("our op (kernels/_library.py)", lambda: lean(t, scale, e4m3, True, amax)),
                          ("torch.library.custom_op", lambda: wrapped(t, scale, e4m3, True, amax)),
                          ("the function, no dispatch", lambda: fn(t, scale, e4m3, True, amax))):  # fmt: skip
        record(
            "op_overhead", f"fp8_cast_transpose 64x64 bf16 on {dev.type}", variant, host_us_per_call=host_us(call, dev)
        )


# -- bf16 AdamW -----------------------------------------------------------------------------------


def d12_param_shapes(small: bool):
    if small:
        return [(256, 64), (64,), (64, 192), (192,)]
    c, vp, L = 768, V_PAD, 12
    shapes = [(vp, c), (1024, c)]
    for _ in range(L):
        shapes += [
            (c,),
            (c,),
            (3 * c, c),
            (3 * c,),
            (c, c),
            (c,),
            (c,),
            (c,),
            (4 * c, c),
            (4 * c,),
            (c, 4 * c),
            (c,),
        ]
    return shapes + [(c,), (c,)]


def adamw_setup(args, dev, seed: int):
    """What both AdamW checks start from: (case name, hyper-parameters, whether the Triton kernel can run,
    bf16 parameters and gradients of d12's shapes, their element count)."""
    case = "small" if args.small else "d12 parameter shapes (124M)"
    hp = dict(lr=6e-4, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    use_kernel = triton_available() and (dev.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1")
    torch.manual_seed(seed)  # the moments the checks draw on the device: the same inputs on every run
    g = torch.Generator().manual_seed(seed)
    shapes = d12_param_shapes(args.small)
    params = [torch.randn(s, generator=g).mul_(0.02).to(dev, torch.bfloat16) for s in shapes]
    grads = [torch.randn(s, generator=g).mul_(1e-3).to(dev, torch.bfloat16) for s in shapes]
    return case, hp, use_kernel, params, grads, sum(p.numel() for p in params)


def check_adamw(args, dev):
    case, hp, use_kernel, params, grads, n_params = adamw_setup(args, dev, seed=2)
    with guarded("adamw_bf16", case):
        # correctness: one step on each tensor, kernel vs reference fp32 math
        if use_kernel:
            worst_m = worst_v = 0.0
            off_neighbour = 0
            up_frac, want_frac = [], []
            for i, (p, gr) in enumerate(zip(params, grads)):
                m = torch.randn(p.shape, device=dev).mul_(1e-4)
                v = torch.rand(p.shape, device=dev).mul_(1e-7)
                m_ref, v_ref = m.clone(), v.clone()
                new32 = sr.adamw_fp32_math(p, gr, m_ref, v_ref, step=10, **hp)
                pk = p.clone()
                sr.adamw_bf16_stochastic_(pk, gr, m, v, step=10, seed=i, **hp)
                worst_m = max(worst_m, rel_err(m, m_ref))
                worst_v = max(worst_v, rel_err(v, v_ref))
                bits = new32.view(torch.int32)
                lo = (bits & -65536).view(torch.float32)
                hi = ((bits & -65536) + 65536).view(torch.float32)
                out = pk.float()
                # One bf16 step, plus the fp32 rounding of the operands: where p and its update nearly cancel,
                # a last-bit difference in the fp32 math (FMA contraction on the GPU) is many bf16 steps of the
                # small result, so the allowance scales with the operands, not with the result.
                p32 = p.float()
                operand_ulps = 4 * 2.0**-23 * (p32.abs() + (p32 - new32).abs())
                near = (out - new32).abs() <= (hi - lo).abs() * (1 + 1e-3) + operand_ulps
                off_neighbour += int((~near).sum())
                up_frac.append((out == hi).double().mean().item())
                want_frac.append(((new32 - lo) / (hi - lo)).double().mean().item())
            ok = worst_m < 1e-6 and worst_v < 1e-6 and off_neighbour == 0
            record(
                "adamw_bf16",
                case,
                "triton vs reference math",
                ok=ok,
                err_exp_avg=worst_m,
                err_exp_avg_sq=worst_v,
                off_neighbour=off_neighbour,
                mean_up=statistics.fmean(up_frac),
                mean_expected_up=statistics.fmean(want_frac),
            )
        else:
            record("adamw_bf16", case, "triton kernel", ok=None, note="skipped: needs CUDA or TRITON_INTERPRET=1")

        # timing: one optimizer step over all tensors
        def make_opt(kind):
            ps = [torch.nn.Parameter(p.clone()) for p in params]
            for p, gr in zip(ps, grads):
                p.grad = gr.clone()
            if kind == "torch fused AdamW, fp32 params (-w 1)":
                ps = [torch.nn.Parameter(p.detach().float()) for p in ps]
                for p, gr in zip(ps, grads):
                    p.grad = gr.float()
                fused = dev.type == "cuda"
                return torch.optim.AdamW(ps, lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=fused), ps
            return sr.BF16AdamW(ps, lr=6e-4, weight_decay=0.1, use_triton=(kind == "BF16AdamW triton")), ps

        kinds = ["BF16AdamW reference", "torch fused AdamW, fp32 params (-w 1)"]
        if use_kernel:
            kinds.insert(0, "BF16AdamW triton")
        for kind in kinds:
            with guarded("adamw_bf16", case + " " + kind):
                opt, ps = make_opt(kind)
                opt.step()  # creates the state
                ms = time_ms(opt.step, dev, args.reps, warmup=1)
                state_bytes = sum(
                    t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t)
                )
                param_bytes = sum(p.numel() * p.element_size() for p in ps)
                record(
                    "adamw_bf16",
                    case,
                    kind,
                    ms=ms,
                    n_params=n_params,
                    bytes_per_param=(state_bytes + param_bytes) / n_params,
                )
                del opt, ps


def check_adamw_master(args, dev):
    """MasterAdamW (--bf16-params 1): the Triton kernel against the plain reference on the same device,
    then one optimizer step over d12's parameters timed against torch's fused AdamW on fp32 parameters."""
    case, hp, use_kernel, params, grads, n_params = adamw_setup(args, dev, seed=3)
    with guarded("adamw_master", case):
        if use_kernel:
            worst_m = worst_v = worst_w_ulps = 0.0
            not_rne = 0
            for p, gr in zip(params, grads):
                state = [
                    p.float(),
                    torch.randn(p.shape, device=dev).mul_(1e-4),
                    torch.rand(p.shape, device=dev).mul_(1e-7),
                ]
                ref_state = [t.clone() for t in state]
                ref_p, pk = p.clone(), p.clone()
                ma.adamw_master_reference(ref_p, gr, *ref_state, step=10, **hp)
                ma.adamw_master_(pk, gr, *state, step=10, **hp)
                worst_w_ulps = max(worst_w_ulps, ma.master_error_ulps(p.float(), ref_state[0], state[0]))
                worst_m = max(worst_m, rel_err(state[1], ref_state[1]))
                worst_v = max(worst_v, rel_err(state[2], ref_state[2]))
                not_rne += int((pk != state[0].to(torch.bfloat16)).sum())  # the write-back rounds to nearest
            # GPU torch and the kernel may contract multiply-adds differently: a few ulps, not bit equality
            ok = worst_m < 1e-6 and worst_v < 1e-6 and worst_w_ulps <= ma.MASTER_ULPS and not_rne == 0
            record("adamw_master", case, "triton vs reference math", ok=ok, err_exp_avg=worst_m,
                   err_exp_avg_sq=worst_v, master_ulps=worst_w_ulps, param_not_rne=not_rne)  # fmt: skip
        else:
            record("adamw_master", case, "triton kernel", ok=None, note="skipped: needs CUDA or TRITON_INTERPRET=1")

        def make_opt(kind):
            if kind.startswith("torch fused"):
                ps = [torch.nn.Parameter(p.float()) for p in params]
                for p, gr in zip(ps, grads):
                    p.grad = gr.float()
                return torch.optim.AdamW(ps, lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                         fused=dev.type == "cuda"), ps  # fmt: skip
            ps = [torch.nn.Parameter(p.clone()) for p in params]
            if kind.endswith("flattened"):  # one buffer (what the trainer does in one process): one launch
                flatten_parameters_(ps)
            for p, gr in zip(ps, grads):
                p.grad = gr.clone() if p.grad is None else p.grad.copy_(gr)
            return ma.MasterAdamW(ps, lr=6e-4, weight_decay=0.1, use_triton=kind.startswith("MasterAdamW triton")), ps

        kinds = ["MasterAdamW reference", "torch fused AdamW, fp32 params and grads"]
        if use_kernel:
            kinds[:0] = ["MasterAdamW triton", "MasterAdamW triton, flattened"]
        for kind in kinds:
            with guarded("adamw_master", case + " " + kind):
                opt, ps = make_opt(kind)
                opt.step()
                ms = time_ms(opt.step, dev, args.reps, warmup=1)
                state_bytes = sum(
                    t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t)
                )
                grad_bytes = sum(p.grad.numel() * p.grad.element_size() for p in ps)
                param_bytes = sum(p.numel() * p.element_size() for p in ps)
                record("adamw_master", case, kind, ms=ms, n_params=n_params,
                       bytes_per_param=(state_bytes + param_bytes + grad_bytes) / n_params)  # fmt: skip
                del opt, ps


# -- FP8 linear -----------------------------------------------------------------------------------


def check_fp8_linear(args, dev):
    """fp8_linear (--fp8 1) at the blocks' d48 shapes: forward and gradients against the dequantized
    reference and the bf16 linear, then forward+backward time, eager and compiled, against bf16."""
    shapes = {"small": (64, 64, 128)} if args.small else {
        "d48 c_attn": (16384, 1600, 4800), "d48 c_fc": (16384, 1600, 6400), "d48 mlp c_proj": (16384, 6400, 1600),
        "d12 c_fc": (65536, 768, 3072)}  # fmt: skip
    for name, (rows, k, n) in shapes.items():
        case = f"{name} rows={rows} {k}->{n} autocast"
        with guarded("fp8_linear", case):
            fp8_linear_case(args, dev, case, rows, k, n)


def fp8_linear_case(args, dev, case, rows, k, n):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(rows, k, generator=g).to(dev, torch.bfloat16).requires_grad_()
    w = (torch.randn(n, k, generator=g) * 0.02).to(dev).requires_grad_()
    # a bias of the outputs' size, so the forward matmul's epilogue bias is checked against the reference's add
    b = (torch.randn(n, generator=g) * 0.5).to(dev).requires_grad_()
    dy = torch.randn(rows, n, generator=g).to(dev, torch.bfloat16)

    def run(fn):
        for t in (x, w, b):
            t.grad = None
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            y = fn(x, w, b)
        y.backward(dy)
        return y, x.grad, w.grad

    y8, dx8, dw8 = (t.detach().clone() for t in run(fp8_linear))
    yr = run(fp8_linear_reference)[0].detach()
    y16, dx16, dw16 = (t.detach().clone() for t in run(torch.nn.functional.linear))
    errs = dict(err_vs_reference=rel_err(y8, yr), err_y=rel_err(y8, y16), err_dx=rel_err(dx8, dx16),
                err_dw=rel_err(dw8, dw16))  # fmt: skip
    # each compared on its own: max() of a NaN and numbers can be a number (a NaN dx once passed this way)
    ok = errs["err_vs_reference"] < 1e-2 and all(errs[k] < 0.1 for k in ("err_y", "err_dx", "err_dw"))
    record("fp8_linear", case, "fp8 vs reference and bf16", ok=ok, **errs)
    for variant, fn in (("bf16 F.linear", torch.nn.functional.linear), ("fp8_linear eager", fp8_linear)):
        record("fp8_linear", case, variant, ms=time_ms(lambda fn=fn: run(fn), dev, args.reps))
    if not args.no_compile and dev.type == "cuda" and case.startswith(args.compile_fp8_shape):
        with_options = functools.partial(functools.partial, fp8_linear)
        variants = (("bf16 compiled", torch.nn.functional.linear), ("fp8 compiled", fp8_linear),
                    ("fp8 compiled, fast-accum backward", with_options(backward_fast_accum=True)),
                    ("fp8 compiled, bf16 dW", with_options(weight_grad_bf16=True)),
                    ("fp8 compiled, both", with_options(backward_fast_accum=True, weight_grad_bf16=True)))  # fmt: skip
        for variant, fn in variants:
            compiled = torch.compile(lambda a, c, d, fn=fn: fn(a, c, d))
            record("fp8_linear", case, variant, ms=time_ms(lambda c=compiled: run(c), dev, args.reps))
            if args.profile_fp8 and variant in ("bf16 compiled", "fp8 compiled"):
                record("fp8_linear", case, variant + ", kernels", kernels=top_kernels(lambda c=compiled: run(c), 3))


def check_fp8_cast(args, dev):
    """fp8_cast.cast_transpose_kernel (--fp8-cast-kernel) against cast_transpose_reference: the same bits, both
    layouts, from fp32 and bf16, and the amax it records; then the time of the kernel from bf16 (tile sizes), of the reference eager and
    compiled (what Inductor makes of it), and of the copy-only transpose (--fp8-cast-kernel 2) with its bits."""
    shapes = {"small": (1000, 333)} if args.small else {
        "d48 x": (16384, 1600), "d48 dh": (16384, 6400), "d48 qkv": (16384, 4800), "d48 W_fc": (6400, 1600),
        "d12 x": (65536, 768), "d12 dh": (65536, 3072), "odd": (1000, 333)}  # fmt: skip
    for name, (rows, cols) in shapes.items():
        for dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            case = f"{name} {rows}x{cols} {str(dtype).removeprefix('torch.float8_')}"
            with guarded("fp8_cast", case):
                fp8_cast_case(args, dev, case, rows, cols, dtype)


def fp8_cast_case(args, dev, case, rows, cols, dtype):
    for source in (torch.float32, torch.bfloat16):  # fp32: a LayerNorm's output under autocast
        fp8_cast_bits(dev, f"{case} from {str(source).removeprefix('torch.')}", rows, cols, dtype, source)
    g = torch.Generator().manual_seed(rows + cols)
    t = (torch.randn(rows, cols, generator=g) * 3).to(dev, torch.bfloat16)
    t[0, 0] = 1e4  # the largest magnitude sets the scale, as in quantize()
    scale = torch.finfo(dtype).max / t.float().abs().amax()
    q, qt = fp8_cast.cast_transpose_kernel(t, scale, dtype, True, None)
    gbytes = rows * cols * (t.element_size() + 2 * q.element_size()) / 1e9  # read once, write both layouts
    variants = [("reference eager", lambda: fp8_cast.cast_transpose_reference(t, scale, dtype))]
    if not args.no_compile and dev.type == "cuda":
        compiled = torch.compile(fp8_cast.cast_transpose_reference)
        variants.append(("reference compiled", lambda: compiled(t, scale, dtype)))
    if dev.type == "cuda":
        tiles = ((64, 128, 4), (64, 64, 4), (32, 128, 4), (128, 64, 8), (64, 128, 8), (128, 128, 8))
        for bm, bn, warps in tiles:

            def run(bm=bm, bn=bn, warps=warps):
                fp8_cast._launch(t, scale, torch.empty_like(q), torch.empty_like(qt), None, bm, bn, warps)

            variants.append((f"kernel {bm}x{bn} w{warps}", run))
    for variant, fn in variants:
        ms = time_ms(fn, dev, args.reps)
        record("fp8_cast", case, variant, ms=ms, gb_s=gbytes / ms * 1e3)
    # --fp8-cast-kernel 2's transpose of the cast copy: its bytes, and its time (a byte read and one written)
    record("fp8_cast", case, "copy-only transpose vs the one pass's, bits",
           ok=bool(torch.equal(fp8_cast.transpose_kernel(q).view(torch.uint8), qt.view(torch.uint8))))  # fmt: skip
    ms = time_ms(lambda: fp8_cast.transpose_kernel(q), dev, args.reps)
    record("fp8_cast", case, "copy-only transpose", ms=ms, gb_s=rows * cols * 2 / 1e9 / ms * 1e3)
    # a linear's output gradient with its bias gradient (grad_cast_transpose_kernel): the same bytes as the plain
    # cast's, the column sums as PyTorch's in fp32, and what the sums add to the pass's time
    gq, gqt, sums = fp8_cast.grad_cast_transpose_kernel(t, scale, dtype, None)
    same = torch.equal(gq.view(torch.uint8), q.view(torch.uint8)) and torch.equal(
        gqt.view(torch.uint8), qt.view(torch.uint8)
    )
    err = rel_err(sums, t.float().sum(0))
    record("fp8_cast", case, "cast with column sums vs the cast, bits; sums vs PyTorch's", ok=same and err < 1e-5,
           sums_rel_err=err)  # fmt: skip
    ms = time_ms(lambda: fp8_cast.grad_cast_transpose_kernel(t, scale, dtype, None), dev, args.reps)
    record("fp8_cast", case, "cast with column sums", ms=ms, gb_s=gbytes / ms * 1e3)


def fp8_cast_bits(dev, case, rows, cols, dtype, source):
    """The kernel's bytes, both layouts, against the reference's, from a ``source``-dtype matrix (on the CPU: the
    op's reference path; tests/test_kernels_fp8_cast.py runs the kernel itself in Triton's interpreter)."""
    g = torch.Generator().manual_seed(rows * cols)
    t = (torch.randn(rows, cols, generator=g) * 3).to(dev, source)
    t[0, 0] = 1e4  # the largest magnitude sets the scale, as in quantize()
    scale = torch.finfo(dtype).max / t.float().abs().amax()
    ref = fp8_cast.cast_transpose_reference(t, scale, dtype)
    amax = torch.zeros((), device=dev)  # delayed scaling's record, raised by the kernel to the largest |t|
    got = fp8_cast.cast_transpose_kernel(t, scale, dtype, True, amax)
    record("fp8_cast", case, "kernel's amax record", ok=bool(amax == t.float().abs().amax()), amax=amax.item())
    wrong = [int((a.view(torch.uint8) != b.view(torch.uint8)).sum()) for a, b in zip(got, ref)]
    # the sources --fp8-cast-kernel hands it must be exact; the others are shown (fp32's transpose was not)
    ok = wrong == [0, 0] if source in fp8_cast.KERNEL_SOURCES else None
    record("fp8_cast", case, "kernel vs reference, bits", ok=ok, wrong_bytes=wrong)


def check_fp8_gelu(args, dev):
    """The cast kernel's activation passes (GELU's, and ReLU²'s for the modern recipe) against their reference at the
    MLP's widest shape (c_fc's output), e4m3: the kernel's GELU is the sigmoid form of torch's tanh one, so a few
    bytes may differ by a rounding step; then the time of each pass against the unfused pair it replaces."""
    shapes = {"small": (1000, 336)} if args.small else {"d12 h": (65536, 3072), "d48 h": (16384, 6400)}
    for activation in fp8_cast.ACT_PASSES:
        for name, (rows, cols) in shapes.items():
            for backward in (False, True):
                case = f"{activation} {name} {rows}x{cols} {'backward' if backward else 'forward'}"
                with guarded("fp8_gelu", case):
                    fp8_gelu_case(args, dev, case, rows, cols, backward, activation)


def fp8_gelu_case(args, dev, case, rows, cols, backward, activation):
    gen = torch.Generator().manual_seed(rows + cols)
    h = (torch.randn(rows, cols, generator=gen) * 2).to(dev, torch.bfloat16)
    g = (torch.randn(rows, cols, generator=gen) * 1e-3).to(dev, torch.bfloat16) if backward else None
    bias = (torch.randn(cols, generator=gen) * 0.3).to(dev, torch.bfloat16)
    dtype, scale = torch.float8_e4m3fn, torch.tensor(40.0 if not backward else 4e4, device=dev)
    amax, ref_amax = torch.zeros((), device=dev), torch.zeros((), device=dev)
    got = fp8_cast.activation_cast_transpose_kernel(h, bias, g, scale, dtype, amax, activation)
    ref = fp8_cast.activation_cast_transpose_reference(h, bias, g, scale, dtype, ref_amax, activation)
    wrong = [int((a.view(torch.uint8) != b.view(torch.uint8)).sum()) for a, b in zip(got[:2], ref[:2])]
    off = ((got[0].float() - ref[0].float()).abs() / ref[0].float().abs().clamp(min=2**-6)).max().item()
    sums_err = ((got[2] - ref[2]).norm() / ref[2].norm()).item() if backward else 0.0
    amax_err = abs(amax.item() / ref_amax.item() - 1)
    # GELU's derivative is computed otherwise than aten's (0.5% of d12's bytes came out one e4m3 step off on an H200,
    # its forward none): at most a byte in fifty off, by one step (1/8 relative), the amax and sums as the reference's
    ok = wrong[0] == wrong[1] and wrong[0] < rows * cols * 0.02 and off <= 0.13 and amax_err < 1e-2 and sums_err < 1e-3
    record("fp8_gelu", case, "kernel vs reference", ok=ok, wrong_bytes=wrong, largest_off=off, amax_rel_err=amax_err,
           sums_rel_err=sums_err)  # fmt: skip
    if dev.type != "cuda":
        return
    from gpt2train.kernels.fp8_cast import cast_transpose_kernel

    def unfused(h, bias, g):  # the reference's arithmetic before its cast, for Inductor to fuse
        dh = fp8_cast.activation_before_cast(h + bias, g, activation)
        return dh, (dh.sum(0) if g is not None else None)

    compiled = torch.compile(unfused)
    what = "backward and bias sum" if backward else "forward"
    variants = [(f"unfused: Inductor's {activation} {what}, then the cast",
                 lambda: cast_transpose_kernel(compiled(h, bias, g)[0], scale, dtype, True, amax)),
                ("fused pass", lambda: fp8_cast.activation_cast_transpose_kernel(h, bias, g, scale, dtype, amax,
                                                                                 activation))]  # fmt: skip
    gbytes = rows * cols * (4 + 2 * backward) / 1e9  # the fused pass: h (and g) read, both FP8 layouts written
    for variant, fn in variants:
        ms = time_ms(fn, dev, args.reps)
        record("fp8_gelu", case, variant, ms=ms, fused_gb_s=gbytes / ms * 1e3)


def check_fp8_qkv(args, dev):
    """The cast kernel's gather of q, k and v's gradients (B, heads, T, 64 each, contiguous as cuDNN's attention
    returns them) against its reference, e4m3, bit for bit; then its time against the unfused pair."""
    shapes = {"small": (2, 4, 64)} if args.small else {"d12": (64, 12, 1024), "d48": (16, 25, 1024)}
    for name, (b, heads, seq) in shapes.items():
        case = f"{name} B={b} heads={heads} T={seq}"
        with guarded("fp8_qkv", case):
            fp8_qkv_case(args, dev, case, b, heads, seq)


def fp8_qkv_case(args, dev, case, b, heads, seq):
    gen = torch.Generator().manual_seed(b * heads)
    dq, dk, dv = ((torch.randn(b, heads, seq, 64, generator=gen) * 1e-3).to(dev, torch.bfloat16) for _ in range(3))
    dtype, scale = torch.float8_e4m3fn, torch.tensor(4e4, device=dev)
    amax, ref_amax = torch.zeros((), device=dev), torch.zeros((), device=dev)
    got = fp8_cast.qkv_grad_cast_transpose_kernel(dq, dk, dv, scale, dtype, amax)
    ref = fp8_cast.qkv_grad_cast_transpose_reference(dq, dk, dv, scale, dtype, ref_amax)
    wrong = [int((a.view(torch.uint8) != r.view(torch.uint8)).sum()) for a, r in zip(got[:2], ref[:2])]
    sums_err = ((got[2] - ref[2]).norm() / ref[2].norm()).item()
    ok = wrong == [0, 0] and bool(amax == ref_amax) and sums_err < 1e-3
    record("fp8_qkv", case, "kernel vs reference", ok=ok, wrong_bytes=wrong, sums_rel_err=sums_err)
    if dev.type != "cuda":
        return
    from gpt2train.kernels.fp8_cast import cast_transpose_kernel

    def concatenated(dq, dk, dv):
        t = torch.cat([g.transpose(1, 2).reshape(b * seq, heads * 64) for g in (dq, dk, dv)], dim=1)
        return t, t.sum(0)

    compiled = torch.compile(concatenated)
    gbytes = b * seq * heads * 64 * 3 * 4 / 1e9  # read once, both e4m3 layouts written
    for variant, fn in (("unfused: Inductor's concatenation and bias sum, then the cast",
                         lambda: cast_transpose_kernel(compiled(dq, dk, dv)[0], scale, dtype, True, amax)),
                        ("gather pass", lambda: fp8_cast.qkv_grad_cast_transpose_kernel(dq, dk, dv, scale, dtype, amax))):  # fmt: skip
        ms = time_ms(fn, dev, args.reps)
        record("fp8_qkv", case, variant, ms=ms, gather_gb_s=gbytes / ms * 1e3)


def check_fp8_norm(args, dev):
    """The LayerNorm inside the FP8 cast against its reference at d12's and d48's widths, with and without the
    residual add before it: its statistics are summed in another order than torch's, so a few bf16 values (ties) may
    round the other way and their bytes differ by a step; then its time against the unfused pair; and the fused
    linears' LayerNorm backward against autograd's."""
    shapes = {"small": (1000, 320)} if args.small else {"d12": (65536, 768), "d48": (16384, 1600)}
    for name, (rows, c) in shapes.items():
        for residual in (False, True):
            case = f"{name} {rows}x{c}{' with the residual add' if residual else ''}"
            with guarded("fp8_norm", case):
                fp8_norm_case(args, dev, case, rows, c, residual)
        with guarded("fp8_norm", f"{name} backward"):
            norm_backward_case(dev, f"{name} {rows}x{c} backward", rows, c)


def _norm_inputs(dev, rows, c, seed):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, c, generator=gen) * 3 + 0.5).to(dev, torch.bfloat16)
    w = (1 + 0.1 * torch.randn(c, generator=gen)).to(dev, torch.bfloat16)
    b = (0.1 * torch.randn(c, generator=gen)).to(dev, torch.bfloat16)
    return gen, x, w, b


def fp8_norm_case(args, dev, case, rows, c, residual):
    from gpt2train.kernels import fp8_layernorm

    gen, x, w, b = _norm_inputs(dev, rows, c, rows + c)
    r = torch.randn(rows, c, generator=gen).to(dev, torch.bfloat16) if residual else None
    dtype, scale, eps = torch.float8_e4m3fn, torch.tensor(30.0, device=dev), 1e-5
    amax, ref_amax = torch.zeros((), device=dev), torch.zeros((), device=dev)
    got = fp8_layernorm.ln_cast_transpose_kernel(x, r, w, b, eps, scale, dtype, amax)
    ref = fp8_layernorm.ln_cast_transpose_reference(x, r, w, b, eps, scale, dtype, ref_amax)
    wrong = [int((a.view(torch.uint8) != e.view(torch.uint8)).sum()) for a, e in zip(got[:2], ref[:2])]
    off = ((got[0].float() - ref[0].float()).abs() / ref[0].float().abs().clamp(min=2**-6)).max().item()
    sum_equal = r is None or bool(torch.equal(got[2], ref[2]))
    rstd_err = ((got[4] - ref[4]).abs() / ref[4]).max().item()
    mean_err = (got[3] - ref[3]).abs().max().item()
    # at most a byte in a thousand off, by one e4m3 step (1/8 relative), the same one in both layouts
    ok = wrong[0] == wrong[1] and wrong[0] <= rows * c * 1e-3 and off <= 0.13 and sum_equal and rstd_err < 1e-4
    ok = ok and bool(amax == ref_amax)
    record("fp8_norm", case, "kernel vs reference", ok=ok, wrong_bytes=wrong, largest_off=off, sum_equal=sum_equal,
           mean_abs_err=mean_err, rstd_rel_err=rstd_err)  # fmt: skip
    if dev.type != "cuda":
        return
    from gpt2train.kernels.fp8_cast import cast_transpose_kernel

    def unfused_norm(x, r):
        s = x if r is None else x + r
        return torch.nn.functional.layer_norm(s.float(), (c,), w.float(), b.float(), eps).to(torch.bfloat16), s

    compiled = torch.compile(unfused_norm)
    gbytes = rows * c * (2 + 4 * residual + 2) / 1e9  # x (and r) read, (s written,) both e4m3 layouts written
    for variant, fn in (("unfused: Inductor's add and LayerNorm, then the cast",
                         lambda: cast_transpose_kernel(compiled(x, r)[0], scale, dtype, True, amax)),
                        ("fused pass", lambda: fp8_layernorm.ln_cast_transpose_kernel(x, r, w, b, eps, scale, dtype,
                                                                                      amax))):  # fmt: skip
        ms = time_ms(fn, dev, args.reps)
        record("fp8_norm", case, variant, ms=ms, fused_gb_s=gbytes / ms * 1e3)


def norm_backward_case(dev, case, rows, c):
    from gpt2train.kernels.fp8_layernorm import layer_norm_backward

    gen, x, w, b = _norm_inputs(dev, rows, c, rows)
    dy = (torch.randn(rows, c, generator=gen) * 1e-3).to(dev, torch.bfloat16)
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    torch.nn.functional.layer_norm(xr.float(), (c,), wr.float(), br.float(), 1e-5).backward(dy.float())
    _, mean, rstd = torch.native_layer_norm(x.float(), (c,), w.float(), b.float(), 1e-5)
    grads = layer_norm_backward(dy, x, w, mean.view(-1), rstd.view(-1))
    errs = [rel_err(g, e) for g, e in zip(grads, (xr.grad, wr.grad, br.grad))]
    record("fp8_norm", case, "layer_norm_backward vs autograd", ok=max(errs) < 1e-2, rel_errs=errs)


def check_grad_accum(args, dev):
    """--accumulate-in-matmul: a few d12-wide blocks (bf16 parameters, flat gradients, -ge 2, compiled as the
    trainer compiles them) over 4 micro-steps, gradients summed by the matmuls against autograd's sums, and
    the time of the 4 forward+backward passes both ways."""
    layers, batch, seq = (2, 2, 32) if args.small else (4, 16, 1024)
    cfg = ModelConfig(n_layer=layers, n_head=4 if args.small else 12, n_embd=64 if args.small else 768,
                      vocab_size=50257, max_seq_len=seq)  # fmt: skip
    g = torch.Generator().manual_seed(3)
    batches = [torch.randint(0, 50257, (batch, seq), generator=g).to(dev) for _ in range(4)]
    grads, times = {}, {}
    for on in (False, True):
        with guarded("grad_accum", f"{layers} layers C={cfg.n_embd} B={batch} T={seq}"):
            torch._dynamo.reset()
            model = GPT(cfg).init_weights(42).to(dev, torch.bfloat16)
            accelerate(model, FastPaths(gelu_fusion=2 if dev.type == "cuda" else 0, accumulate_grads=on))
            _, grad_flat = flatten_parameters_(list(model.parameters()))
            if not args.no_compile:
                for block in model.transformer.h:
                    block.compile()

            def step(model=model, grad_flat=grad_flat):
                grad_flat.zero_()
                for idx in batches:
                    with torch.autocast(dev.type, dtype=torch.bfloat16):
                        loss = model(idx, idx)
                    (loss / len(batches)).backward()

            step()
            grads[on] = {n: p.grad.detach().float().clone() for n, p in model.named_parameters()}
            times[on] = time_ms(step, dev, args.reps)
    if len(grads) == 2:
        err = max(rel_err(grads[True][n], grads[False][n]) for n in grads[False])
        case = f"{layers} layers C={cfg.n_embd} B={batch} T={seq}"
        record("grad_accum", case, "summed by the matmuls vs autograd", ok=err < 2e-2, max_rel_err=err,
               ms_autograd=times[False], ms_matmul=times[True])  # fmt: skip


# -- main -----------------------------------------------------------------------------------------


def print_table():
    cols = [
        "check",
        "case",
        "variant",
        "ok",
        "ms",
        "ms_fwd",
        "host_us_per_call",
        "peak_extra_mib",
        "saved_mib",
        "compile_s",
        "max_err",
    ]
    lines = []
    for r in ROWS:
        errs = [v for k, v in r.items() if k.startswith("err_") and isinstance(v, float)]
        r2 = dict(r, max_err=max(errs) if errs else None)
        cells = []
        for c in cols:
            val = r2.get(c)
            if isinstance(val, float):
                val = f"{val:.3g}" if c in ("max_err",) else f"{val:.1f}"
            elif val is None:
                val = "-"
            else:
                val = str(val)
            cells.append(val)
        lines.append(cells)
    widths = [max(len(c), *(len(line[i]) for line in lines)) if lines else len(c) for i, c in enumerate(cols)]
    print()
    print(" | ".join(c.ljust(wd) for c, wd in zip(cols, widths)))
    print("-+-".join("-" * wd for wd in widths))
    for line in lines:
        print(" | ".join(v.ljust(wd) for v, wd in zip(line, widths)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--small", action="store_true", help="tiny shapes (CPU smoke test)")
    ap.add_argument("--out", default="kernels_gpu_check.json", help="JSON results file")
    ap.add_argument("--softcap", type=float, default=0.0, help="classifier: logit soft-cap (modern recipe: 15)")
    ap.add_argument("--checks", default="classifier,gelu_linear,gelu_mlp,fp8_linear,fp8_cast,adamw",
                    help="comma list")  # fmt: skip
    ap.add_argument("--shapes", default="d12,d48", help="classifier shapes: d12 (C=768), d48 (C=1600)")
    ap.add_argument("--dtypes", default="fp32,bf16,autocast", help="fp32, bf16 (bf16 tensors), autocast")
    ap.add_argument("--chunk-rows", type=int, default=8192, help="chunked classifier chunk size")
    ap.add_argument("--chunk-sweep", default="4096,16384", help="extra chunk sizes to time ('' for none)")
    ap.add_argument("--compile-dtypes", default="autocast", help="dtypes for which to try torch.compile")
    ap.add_argument("--compile-shapes", default="d12", help="classifier shapes to try under torch.compile")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-fp8-shape", default="d48 c_fc", help="fp8_linear: the shape timed compiled too")
    ap.add_argument("--profile-fp8", action="store_true", help="fp8_linear: the compiled cases' top kernels too")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--allow-tf32", action="store_true", help="TF32 matmuls (off: fp32 checks are exact fp32)")
    args = ap.parse_args(argv)

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; use --device cpu --small", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    if args.small:
        args.chunk_rows = min(args.chunk_rows, 100)
        args.chunk_sweep = "37"
    env = dict(
        torch=torch.__version__,
        cuda=torch.version.cuda,
        device=torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor() or "cpu",
        triton=None,
        python=platform.python_version(),
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
        argv=sys.argv,
        allow_tf32=args.allow_tf32,
    )
    if triton_available():
        import triton

        env["triton"] = triton.__version__
    print(json.dumps(env), flush=True)
    t0 = time.perf_counter()
    checks = args.checks.split(",")
    unknown = sorted(set(checks) - set(CHECK_NAMES))
    if unknown:  # a misspelt check would otherwise run nothing and report success
        sys.exit(f"error: --checks {','.join(unknown)}: unknown; the checks are {','.join(CHECK_NAMES)}")
    if "classifier" in checks:
        check_classifier(args, dev)
    if "gelu_linear" in checks:
        check_gelu_linear(args, dev)
    if "gelu_mlp" in checks:
        env["cublaslt"] = dict(version=cublaslt.version(), error=cublaslt.load_error())
        check_gelu_mlp(args, dev)
    if "fp8_linear" in checks:
        check_fp8_linear(args, dev)
    if "fp8_cast" in checks:
        check_fp8_cast(args, dev)
    if "fp8_gelu" in checks:
        check_fp8_gelu(args, dev)
    if "fp8_qkv" in checks:
        check_fp8_qkv(args, dev)
    if "fp8_norm" in checks:
        check_fp8_norm(args, dev)
    if "grad_accum" in checks:
        check_grad_accum(args, dev)
    if "adamw" in checks:
        check_adamw(args, dev)
        check_adamw_master(args, dev)
    if "op_overhead" in checks:
        with guarded("op_overhead", "host time per call"):
            check_op_overhead(args, dev)
    env["total_s"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(dict(env=env, rows=ROWS, failures=FAILURES), indent=1))
    print_table()
    print(f"\n{len(ROWS)} rows, {len(FAILURES)} failures, {env['total_s']:.0f} s; JSON in {args.out}")
    for f in FAILURES:
        print("FAIL", f)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
