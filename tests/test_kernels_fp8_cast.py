"""The one-pass FP8 cast with its transpose (kernels/fp8_cast.py): the Triton kernel on the CPU under
TRITON_INTERPRET=1 against cast_transpose_reference, its copy-only pass (the transpose of a matrix already cast), and
the custom ops (the reference off CUDA) as --fp8 uses them (--fp8-cast-kernel 1 and 2)."""

from __future__ import annotations

import os

import pytest
import torch

# Triton picks its interpreter when first imported; switch it on first (only without a GPU)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.kernels import fp8_cast  # noqa: E402
from gpt2train.kernels._triton import interpreting, triton_available  # noqa: E402
from gpt2train.kernels.fp8_linear import E4M3, E5M2, quantize, quantize_transposed  # noqa: E402
from tests.helpers import assert_compiles_for_hopper  # noqa: E402


def _matrix(rows, cols, seed, dtype=torch.bfloat16):
    t = (torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 3).to(dtype)
    t[rows // 2, cols // 3] = 600.0  # past e4m3's 448 once scaled by 1: the clamp is exercised
    return t


@pytest.mark.parametrize("rows, cols, block_m, block_n", [(70, 45, 32, 16), (64, 64, 64, 64), (5, 130, 16, 64)])
@pytest.mark.parametrize("transpose", [True, False])
@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])  # fp32: a LayerNorm's output under autocast
@pytest.mark.parametrize("programs", [None, 2])  # one per tile; two looping over all tiles (as on a GPU, by SMs)
def test_kernel_tiles_scales_clamps_and_transposes(rows, cols, block_m, block_n, transpose, source, programs):
    """Every element, in both layouts, is the reference's: edge tiles masked, the scale applied in fp32, the
    result clamped, every tile visited by the programs' loop. Written as fp32 (the interpreter rounds fp32 to bf16 and FP8 otherwise than the GPU's
    round-to-nearest-even; bench/kernels_gpu_check.py --checks fp8_cast compares the FP8 bits on a GPU)."""
    if not (triton_available() and interpreting()):
        pytest.skip("needs Triton's CPU interpreter (TRITON_INTERPRET=1 before triton is imported) or a GPU")
    t, scale = _matrix(rows, cols, seed=rows, dtype=source), torch.tensor(0.75)
    q = torch.full((rows, cols), float("nan"))
    qt = torch.full((cols, rows), float("nan")) if transpose else None
    fp8_cast._launch(t, scale, q, qt, block_m=block_m, block_n=block_n, programs=programs)
    ref = (t.float() * scale).clamp(-torch.finfo(torch.float32).max, torch.finfo(torch.float32).max)
    assert torch.equal(q, ref)
    if transpose:
        assert torch.equal(qt, ref.t())


@pytest.mark.parametrize("dtype", [E4M3, E5M2])
def test_reference_is_the_quantize_arithmetic(dtype):
    """The reference: x * scale in fp32, clamped to the format's largest value (e4m3fn has no infinity), cast;
    the transpose is the same bits, contiguous."""
    t = _matrix(33, 17, seed=1)
    q, qt = fp8_cast.cast_transpose_reference(t, torch.tensor(1.0), dtype)
    fmax = torch.finfo(dtype).max
    assert q.dtype == dtype and q.shape == (33, 17) and qt.shape == (17, 33) and qt.is_contiguous()
    assert torch.equal(q.float(), t.float().clamp(-fmax, fmax).to(dtype).float())
    assert torch.equal(qt.view(torch.uint8), q.t().contiguous().view(torch.uint8))
    assert q.float().abs().max() == torch.tensor(min(600.0, fmax)).to(dtype).float()  # e4m3: 448, not NaN
    assert fp8_cast.cast_transpose_reference(t, torch.tensor(1.0), dtype, transpose=False)[1] is None


@pytest.mark.parametrize("dtype", [E4M3, E5M2])
@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
def test_quantize_transposed_is_quantize_in_both_layouts(dtype, source):
    """What --fp8's linears call, with --fp8-cast-kernel 1: every operand through the custom op (an opaque call when
    compiled; the reference off CUDA), an fp32 one rounded to bf16 first; the same FP8 values and scale as
    quantize() of that bf16 operand, the transposed copy too."""
    t = _matrix(48, 80, seed=2, dtype=source)
    calls = []
    orig = fp8_cast.cast_transpose_kernel
    fp8_cast.cast_transpose_kernel = lambda *a: calls.append(a[0].dtype) or orig(*a)
    try:
        q, qt, inv = quantize_transposed(t, dtype, kernel=True)
    finally:
        fp8_cast.cast_transpose_kernel = orig
    assert calls == [torch.bfloat16]  # fp32 too, rounded first (the kernel's fp32 transposes were wrong on an H200)
    q1, inv1 = quantize(t.to(torch.bfloat16), dtype)
    assert torch.equal(q.view(torch.uint8), q1.view(torch.uint8)) and torch.equal(inv, inv1)
    assert torch.equal(qt.view(torch.uint8), q.t().contiguous().view(torch.uint8))
    assert q.float().abs().max() == torch.finfo(dtype).max  # the largest magnitude lands on the format's max
    compiled = torch.compile(lambda a: quantize_transposed(a, dtype, kernel=True), backend="aot_eager", fullgraph=True)
    cq, cqt, cinv = compiled(t)
    assert torch.equal(cq.view(torch.uint8), q.view(torch.uint8)) and torch.equal(
        cqt.view(torch.uint8), qt.view(torch.uint8)
    )
    assert quantize_transposed(t, dtype, transpose=False)[1] is None


@pytest.mark.parametrize("programs", [None, 1, 3])
def test_kernel_records_the_largest_magnitude(programs):
    """Delayed scaling's record: the kernel raises ``amax`` to the largest |t| over every tile (edge tiles' masked
    elements do not count), whichever program's loop visits it, and never lowers it."""
    if not (triton_available() and interpreting()):
        pytest.skip("needs Triton's CPU interpreter (TRITON_INTERPRET=1 before triton is imported) or a GPU")
    t = _matrix(70, 45, seed=3)
    t[69, 44] = -900.0  # in the last, partly masked tile
    q, qt = torch.empty(70, 45), torch.empty(45, 70)
    amax = torch.tensor(5.0)
    fp8_cast._launch(t, torch.tensor(0.5), q, qt, amax, block_m=32, block_n=16, programs=programs)
    assert amax.item() == 900.0
    amax.fill_(1000.0)
    fp8_cast._launch(t, torch.tensor(0.5), q, None, amax, block_m=32, block_n=16, programs=programs)
    assert amax.item() == 1000.0


@pytest.mark.parametrize("delayed", [False, True])
def test_model_with_the_cast_kernel_compiled_equals_eager(delayed):
    """--fp8-cast-kernel 1 in a tiny GPT under bf16 autocast: every FP8 operand goes through the op as bf16 (the
    fp32 LayerNorm outputs and weights rounded first; on the CPU the op runs the reference, on a GPU
    bench/kernels_gpu_check.py compares the kernel's bytes). Compiled (aot_eager) it trains as eager, and close to
    Inductor's casts from fp32. With delayed scaling (two micro-steps, the second scaled by the first's records) the
    amax histories are filled as far as they should be, compiled as eager."""
    from gpt2train.config import ModelConfig
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    results, sources = [], []
    # the ops every cast goes through: plain, and with the bias gradient's column sums (the linears' dy)
    origs = {name: getattr(fp8_cast, name) for name in ("cast_transpose_kernel", "grad_cast_transpose_kernel")}
    for name, orig in origs.items():
        setattr(fp8_cast, name, lambda t, *a, orig=orig: sources.append(t.dtype) or orig(t, *a))
    try:
        for kernel, compiled in ((False, True), (True, False), (True, True)):
            model = build_model(cfg, seed=5)
            accelerate(model, FastPaths(fp8=1, fp8_cast_kernel=kernel, fp8_delayed=delayed))
            for block in model.transformer.h if compiled else ():
                block.compile(backend="aot_eager")
            sources.clear()
            for _ in range(1 + delayed):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = model(idx, idx)
                loss.backward()
            grads = {n: p.grad for n, p in model.named_parameters()}
            results.append((loss.detach(), grads, dict(model.named_buffers()), list(sources)))
    finally:
        for name, orig in origs.items():
            setattr(fp8_cast, name, orig)
        torch._dynamo.reset()
    (loss0, _, _, _), (loss1, grads1, bufs1, sources1), (loss2, grads2, bufs2, _) = results
    # eager: x and W of four linears in two blocks forward, dy of each backward, per micro-step; all bf16
    assert sources1 == [torch.bfloat16] * (3 * 4 * 2 * (1 + delayed)), sources1
    torch.testing.assert_close(loss2, loss1, rtol=1e-3, atol=0)  # aot_eager's decompositions round differently
    for n, g in grads1.items():
        assert ((grads2[n] - g).norm() / g.norm()).item() < 0.2, n  # FP8 rounding amplifies those differences
    torch.testing.assert_close(loss1, loss0, rtol=0.02, atol=0)
    histories = [n for n in bufs1 if "fp8_" in n]
    assert len(histories) == (2 * 4 * 2 if delayed else 0)  # x's and dy's, four linears, two blocks
    for n in histories:
        assert bufs1[n][:2].gt(0).all() and bufs1[n][2:].eq(0).all(), (n, bufs1[n])
        torch.testing.assert_close(bufs2[n], bufs1[n], rtol=0.1, atol=0)


@pytest.mark.parametrize("rows, cols, block_m, block_n", [(70, 45, 32, 16), (64, 64, 64, 64), (5, 130, 16, 64)])
@pytest.mark.parametrize("programs", [None, 2, 5])
def test_kernel_cast_pass_sums_the_columns(rows, cols, block_m, block_n, programs):
    """A linear's output gradient (grad_cast_transpose_kernel): the cast pass also sums its columns (edge tiles'
    masked elements add 0) with the programs asked for rounded to whole column blocks (up from 2, down from 5), and
    casts both layouts as without them."""
    if not (triton_available() and interpreting()):
        pytest.skip("needs Triton's CPU interpreter (TRITON_INTERPRET=1 before triton is imported) or a GPU")
    t, scale = _matrix(rows, cols, seed=rows + 1), torch.tensor(0.75)
    q, qt = torch.full((rows, cols), float("nan")), torch.full((cols, rows), float("nan"))
    sums = fp8_cast._launch(t, scale, q, qt, block_m=block_m, block_n=block_n, programs=programs, sums=True)
    ref = t.float() * scale
    assert torch.equal(q, ref) and torch.equal(qt, ref.t())
    torch.testing.assert_close(sums, t.float().sum(0), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("kernel", [0, 1, 2])
@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
def test_quantize_transposed_with_column_sums(kernel, source):
    """``column_sums``: the same FP8 copies and scale as without, and the operand's column sums in fp32 (a bias
    gradient), from the op's own pass with the cast kernel (the reference off CUDA), summed in PyTorch else."""
    from gpt2train.kernels.fp8_linear import amax_history

    t = _matrix(48, 80, seed=3, dtype=source)
    calls, orig = [], fp8_cast.grad_cast_transpose_kernel
    fp8_cast.grad_cast_transpose_kernel = lambda *a: calls.append(a[0].dtype) or orig(*a)
    try:
        q, qt, inv, sums = quantize_transposed(t, E4M3, kernel=kernel, history=amax_history(), column_sums=True)
    finally:
        fp8_cast.grad_cast_transpose_kernel = orig
    assert calls == ([torch.bfloat16] if kernel == 1 else [])
    q0, qt0, inv0 = quantize_transposed(t, E4M3, kernel=kernel, history=amax_history())
    assert torch.equal(q.view(torch.uint8), q0.view(torch.uint8)) and torch.equal(inv, inv0)
    assert torch.equal(qt.view(torch.uint8), qt0.view(torch.uint8))
    summed = (t.to(torch.bfloat16) if kernel else t).float().sum(0)  # the kernels cast (and sum) bf16
    assert sums.dtype == torch.float32 and torch.allclose(sums, summed, rtol=1e-6, atol=1e-4)
    assert not torch.allclose(sums, t.float().mean(0), rtol=1e-2, atol=1e-2)  # sums, not another reduction


@pytest.mark.parametrize("rows, cols, block_m, block_n", [(70, 45, 32, 16), (5, 130, 16, 64)])
@pytest.mark.parametrize("programs", [None, 2])
def test_kernel_copy_only_pass_transposes_the_bytes(rows, cols, block_m, block_n, programs):
    """--fp8-cast-kernel 2's transpose: the kernel without a scale and a row-major output copies a matrix already
    cast, as bytes, into its transpose: every byte (edge tiles masked), whichever program's loop visits its tile."""
    if not (triton_available() and interpreting()):
        pytest.skip("needs Triton's CPU interpreter (TRITON_INTERPRET=1 before triton is imported) or a GPU")
    q = torch.randint(0, 256, (rows, cols), generator=torch.Generator().manual_seed(rows), dtype=torch.uint8)
    qt = torch.zeros(cols, rows, dtype=torch.uint8)
    fp8_cast._launch(q, None, None, qt, block_m=block_m, block_n=block_n, programs=programs)
    assert torch.equal(qt, q.t())


@pytest.mark.parametrize("source", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("delayed", [False, True])
def test_cast_then_transpose_is_the_one_pass_kernels_bytes(source, delayed):
    """--fp8-cast-kernel 2 gives --fp8-cast-kernel 1's bytes, scale and amax record (so its numerics are the
    default's): the cast in plain PyTorch (an fp32 operand rounded to bf16 first, as for 1) and its transposed copy
    through the gpt2train::fp8_transpose op (the reference off CUDA), compiled as eager."""
    from gpt2train.kernels.fp8_linear import amax_history

    t = _matrix(48, 80, seed=4, dtype=source)
    calls, orig = [], fp8_cast.transpose_kernel
    fp8_cast.transpose_kernel = lambda q: calls.append(q.dtype) or orig(q)
    try:
        outs = {}
        for kernel in (1, 2):
            history = amax_history() if delayed else None
            if delayed:
                history[0] = 100.0  # the last call's record: the scale this call uses
            outs[kernel] = (*quantize_transposed(t, E5M2, kernel=kernel, history=history), history)
    finally:
        fp8_cast.transpose_kernel = orig
    assert calls == [E5M2]  # kernel 2's transpose only; kernel 1 writes both layouts in one pass
    (q1, qt1, s1, h1), (q2, qt2, s2, h2) = outs[1], outs[2]
    assert torch.equal(q1.view(torch.uint8), q2.view(torch.uint8)) and torch.equal(s1, s2)
    assert torch.equal(qt2.view(torch.uint8), qt1.view(torch.uint8)) and qt2.is_contiguous()
    if delayed:  # this call's amax recorded in slot 0, the last call's moved to slot 1
        assert torch.equal(h1, h2) and h2[0] == t.to(torch.bfloat16).float().abs().amax() and h2[1] == 100.0
    compiled = torch.compile(lambda a: quantize_transposed(a, E5M2, kernel=2), backend="aot_eager", fullgraph=True)
    cq, cqt, cs = compiled(t)
    q, qt, s = quantize_transposed(t, E5M2, kernel=2)
    assert torch.equal(cq.view(torch.uint8), q.view(torch.uint8)) and torch.equal(cs, s)
    assert torch.equal(cqt.view(torch.uint8), qt.view(torch.uint8))
    assert quantize_transposed(t, E5M2, transpose=False, kernel=2)[1] is None


def test_model_with_cast_then_transpose_trains_as_the_one_pass_kernel():
    """--fp8-cast-kernel 2 in a tiny GPT under bf16 autocast, delayed scaling, two micro-steps: the same loss,
    gradients and amax histories as --fp8-cast-kernel 1, bit for bit (eager; on the CPU both ops run their
    references); compiled (aot_eager) as eager."""
    from gpt2train.config import ModelConfig
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    results = []
    try:
        for kernel, compiled in ((1, False), (2, False), (2, True)):
            model = build_model(cfg, seed=5)
            accelerate(model, FastPaths(fp8=1, fp8_cast_kernel=kernel, fp8_delayed=True))
            for block in model.transformer.h if compiled else ():
                block.compile(backend="aot_eager")
            for _ in range(2):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = model(idx, idx)
                loss.backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters()}
            results.append((loss.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}))
    finally:
        torch._dynamo.reset()
    (loss1, grads1, bufs1), (loss2, grads2, bufs2), (loss3, _, bufs3) = results
    assert torch.equal(loss1, loss2)
    assert all(torch.equal(grads1[n], grads2[n]) for n in grads1)
    histories = [n for n in bufs1 if "fp8" in n and "history" in n]
    assert histories and all(torch.equal(bufs1[n], bufs2[n]) for n in histories)
    assert all(bufs2[n][:2].gt(0).all() for n in histories)  # two micro-steps recorded
    torch.testing.assert_close(loss3, loss2, rtol=1e-3, atol=0)  # aot_eager's decompositions round differently


_COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gpt2train.kernels import fp8_cast

fn = fp8_cast._kernel(False)
names = ["x_ptr", "scale_ptr", "q_ptr", "qt_ptr", "amax_ptr", "bias_ptr", "g_ptr", "sums_ptr", "k_ptr", "v_ptr", "M",
         "N", "fmax", "seq", "width", "head_dim", "stride_b", "stride_h", "stride_t"]
plain = dict(ACT=0, BIAS=False, GATHER=False, SUMS=False)
e4m3 = ["*bf16", "*fp32", "*fp8e4nv", "*fp8e4nv", "*fp32"]
with_sums = e4m3 + ["*bf16", "*bf16", "*fp32", "*bf16", "*bf16"]
for ptrs, consts in [
    (e4m3 + ["*bf16"] * 5, dict(CAST=True, WRITE_T=True, AMAX=True, **plain)),
    (["*bf16", "*fp32", "*fp8e5", "*fp8e5"] + ["*bf16"] * 6, dict(CAST=True, WRITE_T=False, AMAX=False, **plain)),
    (["*u8"] * 10, dict(CAST=False, WRITE_T=True, AMAX=False, **plain)),
    # a linear's output gradient with its bias gradient's column sums (grad_cast_transpose_kernel)
    (with_sums, dict(CAST=True, WRITE_T=True, AMAX=True, ACT=0, BIAS=False, GATHER=False, SUMS=True)),
    # --fp8-gelu-cast's two passes: GELU of h + bias into c_proj's input; GELU's backward with the bias's sums
    (e4m3 + ["*bf16"] * 5, dict(CAST=True, WRITE_T=True, AMAX=True, ACT=1, BIAS=True, GATHER=False, SUMS=False)),
    (with_sums, dict(CAST=True, WRITE_T=True, AMAX=True, ACT=2, BIAS=True, GATHER=False, SUMS=True)),
    # --fp8-qkv-cast's gather of q, k and v's gradients, with the bias's sums
    (with_sums, dict(CAST=True, WRITE_T=True, AMAX=True, ACT=0, BIAS=False, GATHER=True, SUMS=True)),
]:
    # as _launch: the passes that compute before they cast reduce their amax per tile
    consts.update(BLOCK_M=64, BLOCK_N=64 if consts["GATHER"] else 128, STAGES=2,
                  TILE_AMAX=consts["ACT"] != 0 or consts["GATHER"])  # fmt: skip
    sig = dict(zip(names, ptrs + ["i32", "i32", "fp32"] + ["i32"] * 6), **{k: "constexpr" for k in consts})
    # as launched: pointers, sizes and strides in multiples of 16 (Triton specializes on it)
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(names) if name not in ("scale_ptr", "fmax")}
    src = ASTSource(fn=fn, signature=sig, constexprs={(list(sig).index(k),): v for k, v in consts.items()},
                    attrs=attrs)
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    assert "cubin" in kernel.asm, consts
    # the gather pass's first version loaded its tile column by column, and Triton 3.6 converted the e4m3 tile to
    # the row-major copy's layout: half those bytes came out wrong on an H200. It loads row-major now, as the cast
    # pass does, and casts each copy from the loaded tile. (Triton 3.9 converts GELU's forward tile the other way:
    # not yet run on a GPU, bench/kernels_gpu_check.py --checks fp8_gelu checks it)
    converted = [line for line in kernel.asm["ttgir"].splitlines() if "convert_layout" in line and "xf8" in line]
    assert not ((consts["GATHER"] or consts["SUMS"] and not consts["ACT"]) and converted), converted
print("compiled")
"""


def test_kernel_compiles_for_hopper():
    """The interpreter runs the kernel as Python; Triton's compiler is stricter. Each pass the trainer launches
    (cast with both layouts and the amax, cast alone, the copy-only transpose, GELU's forward and backward passes,
    the q, k, v gradients' gather) compiles for sm_90 down to a cubin
    with the ptxas Triton ships, no GPU needed (in a process without TRITON_INTERPRET); the gather pass casts each
    of its two layouts from the input's tiles, never converting an FP8 tile between layouts."""
    assert_compiles_for_hopper(_COMPILE_FOR_HOPPER)
