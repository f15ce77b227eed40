"""FP8 linear layers (--fp8 1): torch._scaled_mm with per-tensor scales against the plain-PyTorch reference
(the same FP8 operands, dequantized) and against the bf16/fp32 linear, forward and backward, on the CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpt2train.kernels import fp8_linear as f8

pytestmark = pytest.mark.skipif(not f8.fp8_supported(torch.device("cpu")), reason="no torch._scaled_mm")


def _inputs(m=64, k=96, n=128, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(2, m // 2, k, generator=g) * scale).requires_grad_()
    w = (torch.randn(n, k, generator=g) * 0.05).requires_grad_()
    b = (torch.randn(n, generator=g) * 0.1).requires_grad_()
    return x, w, b


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_quantize_maps_the_largest_value_to_the_format_max_and_back():
    t = torch.tensor([0.5, -3.0, 1e-3, 2.0])
    q, s = f8.quantize(t, f8.E4M3)
    assert q.dtype == f8.E4M3 and q.float().abs().max() == 448
    torch.testing.assert_close(q.float() * s, t, rtol=0.07, atol=1e-3)
    q, s = f8.quantize(torch.zeros(4), f8.E5M2)  # all zeros: a finite scale, zeros out
    assert torch.isfinite(s) and not q.float().any()


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_scaled_mm_on_the_cpu_is_torchs(out_dtype):
    """scaled_mm's CPU product (fp32 from the FP8 values, where oneDNN's FP8 matmul can be its slow reference) is
    torch._scaled_mm's: the dequantized product written in out_dtype, e4m3 by e5m2 too, a column-major second
    operand as the FP8 linears pass it."""
    g = torch.Generator().manual_seed(1)
    a = (torch.randn(32, 48, generator=g) * 4).to(f8.E4M3)
    b = (torch.randn(64, 48, generator=g) * 4).to(f8.E5M2).t()  # (48, 64) column-major
    sa, sb = torch.tensor(0.25), torch.tensor(3.0)
    got = f8.scaled_mm(a, b, sa, sb, out_dtype)
    want = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=out_dtype)
    assert got.dtype == out_dtype and got.shape == (32, 64)
    torch.testing.assert_close(got, want, rtol=1e-6 if out_dtype == torch.float32 else 1e-2, atol=1e-5)
    torch.testing.assert_close(got.float(), ((a.float() @ b.float()) * 0.75).to(out_dtype).float())


def test_forward_matmul_adds_a_bf16_bias_before_its_one_rounding():
    """A bf16 output takes the bias in the matmul's epilogue (as torch._scaled_mm's ``bias``): the bias is added to
    the fp32 product and the sum rounded once, not the product rounded to bf16 and rounded again after the add."""
    g = torch.Generator().manual_seed(2)
    xq = (torch.randn(64, 48, generator=g) * 8).to(f8.E4M3)
    wq = (torch.randn(96, 48, generator=g) * 8).to(f8.E4M3)
    sx, sw = torch.tensor(0.03), torch.tensor(0.02)
    bias = (torch.randn(96, generator=g) * 3).bfloat16()
    got = f8.forward_matmul(xq, sx, wq, sw, bias, torch.bfloat16)
    exact = (xq.float() @ wq.float().t()) * (sx * sw) + bias.float()
    assert torch.equal(got, exact.bfloat16())
    assert torch.equal(got, torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, bias=bias, out_dtype=torch.bfloat16,
                                             use_fast_accum=True))  # fmt: skip
    twice = (((xq.float() @ wq.float().t()) * (sx * sw)).bfloat16().float() + bias.float()).bfloat16()
    assert not torch.equal(got, twice)  # the two roundings differ somewhere here: the check above can fail


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e-3])
def test_forward_equals_the_dequantized_reference(scale):
    x, w, b = _inputs(scale=scale)
    y = f8.fp8_linear(x, w, b)
    ref = f8.fp8_linear_reference(x, w, b)
    assert y.shape == (2, 32, 128) and y.dtype == torch.float32
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4 * scale)
    assert _rel(y, F.linear(x, w, b)) < 0.05  # FP8 (3 mantissa bits) against the fp32 matmul


def test_gradients_are_close_to_the_plain_linear():
    x, w, b = _inputs()
    dy = torch.randn(2, 32, 128, generator=torch.Generator().manual_seed(3))  # the same output gradient for both
    f8.fp8_linear(x, w, b).backward(dy)
    got = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    F.linear(x, w, b).backward(dy)
    for g, t in zip(got, (x, w, b)):
        assert g.shape == t.shape and g.dtype == t.dtype
        assert _rel(g, t.grad) < 0.1, _rel(g, t.grad)  # dy in e5m2 (2 mantissa bits), the operands in e4m3
    assert torch.equal(got[2], b.grad)  # the bias gradient is a plain sum of dy


@pytest.mark.parametrize("fast_accum,dw_bf16", [(True, False), (False, True), (True, True)])
def test_backward_options_keep_the_gradients(fast_accum, dw_bf16):
    """The options being measured: the same forward, gradients as close to the plain linear's as the default's;
    with dW in a bf16 matmul from the unquantized dy, dW is closer to the plain one than FP8's."""
    x, w, b = _inputs()
    dy = torch.randn(2, 32, 128, generator=torch.Generator().manual_seed(3))
    grads = {}
    for name, fn in (("plain", F.linear), ("default", f8.fp8_linear),
                     ("option", lambda *a: f8.fp8_linear(*a, backward_fast_accum=fast_accum, weight_grad_bf16=dw_bf16))):  # fmt: skip
        for t in (x, w, b):
            t.grad = None
        y = fn(x, w, b)
        y.backward(dy)
        grads[name] = (y.detach(), *(t.grad.clone() for t in (x, w, b)))
    torch.testing.assert_close(grads["option"][0], grads["default"][0])
    torch.testing.assert_close(grads["option"][1], grads["default"][1])  # dx: the same FP8 matmul (CPU: exact)
    torch.testing.assert_close(grads["option"][3], grads["plain"][3])  # db: a plain sum either way
    dw_err = _rel(grads["option"][2], grads["plain"][2])
    assert dw_err < 0.1, dw_err
    if dw_bf16:
        # only x's e4m3 rounding is left, not dy's too (about 1/sqrt(2) of the default's error)
        assert dw_err < 0.8 * _rel(grads["default"][2], grads["plain"][2])


def test_autocast_bf16_output_and_bf16_weight_gradient():
    x, w, b = _inputs()
    wb = w.detach().to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = f8.fp8_linear(x, wb, None)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert wb.grad.dtype == torch.bfloat16 and x.grad.dtype == torch.float32
    assert _rel(y, F.linear(x, w)) < 0.05


def test_falls_back_to_the_plain_matmul():
    x, w, b = _inputs(m=64, k=96, n=120)  # 120 is not a multiple of 16
    torch.testing.assert_close(f8.fp8_linear(x, w, b), F.linear(x, w, b))
    x, w, b = _inputs()
    with torch.no_grad():  # evaluation and sampling stay bf16/fp32
        torch.testing.assert_close(f8.fp8_linear(x, w, b), F.linear(x, w, b))


def test_model_switch_and_compile():
    """accelerate(FastPaths(fp8=1)) routes the four block linears through FP8 (and turns -ge off); a
    compiled block gives what the eager one gives."""
    from gpt2train.config import ModelConfig
    from gpt2train.model import GPT, MLP
    from gpt2train.train.accelerate import FastLinear, FastPaths, RecomputedMLP, accelerate

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
    torch.manual_seed(0)
    model = GPT(cfg)
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    plain = model(idx, idx)
    accelerate(model, FastPaths(gelu_fusion=2, fp8=1))
    assert all(
        type(b.mlp) is MLP and type(b.attn.c_attn) is FastLinear and b.mlp.c_proj.fp8 for b in model.transformer.h
    )
    accelerate(model, FastPaths(recompute=1, gelu_fusion=2, fp8=1))
    assert all(type(b.mlp) is RecomputedMLP and not b.mlp.use_gelu_linear for b in model.transformer.h)
    calls = []
    orig = f8._FP8Linear.apply
    f8._FP8Linear.apply = lambda *a: calls.append(a[4]) or orig(*a)  # a[4]: backward_fast_accum
    try:
        eager = model(idx, idx)
        assert len(calls) == 4 * cfg.n_layer and not any(calls)  # --fp8 1: the gradient matmuls accumulate exactly
        accelerate(model, FastPaths(recompute=1, gelu_fusion=2, fp8=2))
        calls.clear()
        model(idx, idx)
        assert len(calls) == 4 * cfg.n_layer and all(calls)  # --fp8 2: in fast accumulation
        accelerate(model, FastPaths(recompute=1, gelu_fusion=2, fp8=1))
    finally:
        f8._FP8Linear.apply = orig
    assert abs(eager.item() - plain.item()) < 0.05 * plain.item()
    eager.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    for block in model.transformer.h:
        block.compile(backend="aot_eager")
    compiled = model(idx, idx)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6)
    torch._dynamo.reset()


@pytest.mark.parametrize("grad_format", ["e4m3", "e5m2", None])
def test_backward_equals_the_dequantized_fp8_arithmetic(grad_format):
    """dx = dy8 @ w8 and dW = dy8.T @ x8 with dy in --fp8-grad's format (e4m3 unless told) and x, w in e4m3, each
    dequantized: what the kernel computes, to fp32 rounding."""
    x, w, b = _inputs(seed=4)
    dy = torch.randn(2, 32, 128, generator=torch.Generator().manual_seed(5))
    chosen = {} if grad_format is None else {"grad_dtype": f8.GRAD_FORMATS[grad_format]}
    f8.fp8_linear(x, w, b, **chosen).backward(dy)

    def deq(t, dtype):
        q, s = f8.quantize(t, dtype)
        return q.float() * s

    grad_dtype = f8.GRAD_FORMATS[grad_format or "e4m3"]
    g, x2 = deq(dy.reshape(-1, 128), grad_dtype), deq(x.detach().reshape(-1, 96), f8.E4M3)
    other = deq(dy.reshape(-1, 128), f8.E5M2 if grad_dtype == f8.E4M3 else f8.E4M3)
    assert not torch.allclose(g, other, rtol=1e-4, atol=1e-5)  # the two formats round dy apart: the check can fail
    torch.testing.assert_close(x.grad.reshape(-1, 96), g @ deq(w.detach(), f8.E4M3), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w.grad, g.t() @ x2, rtol=1e-4, atol=1e-5)
    w.grad = None
    f8.fp8_linear(x, w, b, weight_grad_bf16=True, **chosen).backward(dy)  # --fp8-bf16 weight-grads: dy unquantized
    torch.testing.assert_close(w.grad, dy.reshape(-1, 128).t() @ x2, rtol=1e-4, atol=1e-5)


def test_trainer_fp8_run_and_bad_combinations(tmp_path, text_shards, capsys):
    import json

    from tests.helpers import progress_losses, run_cli, tiny_train_args

    run = tmp_path / "fp8"
    code, out, err = run_cli(tiny_train_args(text_shards, run, 8, ["--fp8", "1"]), capsys)
    assert code == 0, err
    losses = [v for (kind, _), v in sorted(progress_losses(run).items(), key=lambda kv: kv[0][1]) if kind == "train"]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5, losses
    assert json.load(open(run / "config.json"))["train"]["fp8"] == 1
    # the weights cast once a step: the same run, loss for loss
    cached = tmp_path / "cached"
    code, out, err = run_cli(
        tiny_train_args(text_shards, cached, 8, ["--fp8", "1", "--fp8-cache-weights", "1"]), capsys
    )
    assert code == 0, err
    assert progress_losses(cached) == progress_losses(run)
    for extra, needle in ((["--fp8", "3"], "--fp8 3"), (["--fp8", "1", "--plain"], "--plain"),
                          (["--fp8-cast-kernel", "1"], "--fp8-cast-kernel 1"), (["--fp8-cast-kernel", "2"], "--fp8-cast-kernel 2"),
                          (["--fp8-cache-weights", "1"], "--fp8-cache-weights 1"),
                          (["--fp8", "1", "--fp8-scaling", "delayed", "-r", "3"], "-r 3")):  # fmt: skip
        code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "bad", 1, extra), capsys)
        last = err.strip().splitlines()[-1]
        assert code != 0 and needle in last, last
    # the modern architecture takes FP8 too (its linears have no biases), here with the ends and c_proj kept bf16
    # and the bf16 casts through kernels/fp8_cast.py's op (its reference on the CPU), scaled by delayed amaxes
    extra = ["--fp8", "1", "--recipe", "modern", "--fp8-bf16", "last,mlp.c_proj,first", "--fp8-cast-kernel", "1",
             "--fp8-scaling", "delayed"]  # fmt: skip
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "modern", 2, extra), capsys)
    assert code == 0, err
    train = json.load(open(tmp_path / "modern" / "config.json"))["train"]
    assert train["fp8_bf16"] == "mlp.c_proj,first,last" and train["fp8_cast_kernel"] == 1
    assert train["fp8_scaling"] == "delayed"
    # the casts compiled into their producers, the transposes by the kernel's copy-only pass (its reference here)
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "split", 2, ["--fp8", "1", "--fp8-cast-kernel", "2"]),
                           capsys)  # fmt: skip
    assert code == 0, err
    assert json.load(open(tmp_path / "split" / "config.json"))["train"]["fp8_cast_kernel"] == 2


def test_delayed_scaling_scales_by_the_previous_calls_amax():
    """--fp8-scaling delayed: a call's scale is the largest amax recorded by the previous AMAX_HISTORY calls
    (FIRST_AMAX_X or FIRST_AMAX_GRAD before any), and each call records its own; x's history in forward, dy's in
    backward."""
    g = torch.Generator().manual_seed(4)
    w = torch.randn(32, 48, generator=g, requires_grad=True)
    hx, hg = f8.amax_history(), f8.amax_history()
    xs = [torch.randn(16, 48, generator=g) * (i + 1) for i in range(f8.AMAX_HISTORY + 2)]
    dys = [torch.randn(16, 32, generator=g) * 1e-3 / (i + 1) for i in range(len(xs))]
    for i, (x, dy) in enumerate(zip(xs, dys)):
        x.requires_grad_(True)
        previous = [p.detach().abs().max() for p in xs[max(0, i - f8.AMAX_HISTORY) : i]]
        expect_x = max(previous) if previous else torch.tensor(f8.FIRST_AMAX_X)
        q, _, inv = f8.quantize_transposed(x.detach(), f8.E4M3, history=hx.clone(), first_amax=f8.FIRST_AMAX_X)
        assert torch.equal(inv, expect_x / 448)  # what the linear below will scale x by
        y = f8.fp8_linear(x, w, histories=(hx, hg))
        y.backward(dy)
        assert hx[0] == x.abs().max() and hg[0] == dy.abs().max()  # this call's records
    window = slice(len(xs) - f8.AMAX_HISTORY, len(xs))  # the last AMAX_HISTORY calls, newest first
    assert torch.equal(hx, torch.stack([x.detach().abs().max() for x in xs[window]][::-1] + [hx[-1]]))
    assert hx[-1] == xs[len(xs) - f8.AMAX_HISTORY - 1].abs().max()
    # delayed amax below the tensor's own: the cast clamps (no NaN in e4m3fn), the product stays finite
    hx2 = f8.amax_history()
    hx2[1] = 1.0
    y = f8.fp8_linear(xs[-1], w, histories=(hx2, f8.amax_history()))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("grad_format", ["e4m3", "e5m2"])
def test_delayed_scaling_first_gradient_window_keeps_small_gradients(grad_format):
    """Before any gradient amax is recorded, dy is scaled from FIRST_AMAX_GRAD (1/16), not as it is: a mean-reduced
    loss's gradients (1e-4 here, below e4m3's smallest value 2^-9 unscaled) keep their values in either format."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(16, 48, generator=g, requires_grad=True)
    w = torch.randn(32, 48, generator=g) * 0.05
    dy = torch.randn(16, 32, generator=g) * 1e-4
    f8.fp8_linear(x, w, histories=(f8.amax_history(), f8.amax_history()),
                  grad_dtype=f8.GRAD_FORMATS[grad_format]).backward(dy)  # fmt: skip
    exact = dy @ w
    assert _rel(x.grad, exact) < 0.1, _rel(x.grad, exact)


def test_grad_formats_are_the_configs():
    from gpt2train.config import FP8_GRAD_FORMATS

    assert tuple(f8.GRAD_FORMATS) == FP8_GRAD_FORMATS


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_delayed_scaling_compiled_records_as_eager(backend):
    """Compiled, the histories are still updated in place, dy's inside the backward graph: the same records and the
    same gradients as eager over three micro-steps."""
    results = []
    for compiled in (False, True):
        g = torch.Generator().manual_seed(5)
        x = torch.randn(2, 16, 48, generator=g, requires_grad=True)
        w = torch.randn(32, 48, generator=g, requires_grad=True)
        hx, hg = f8.amax_history(), f8.amax_history()

        def fn(a, b, hx=hx, hg=hg):
            return f8.fp8_linear(a, b, histories=(hx, hg))

        if compiled:
            fn = torch.compile(fn, backend=backend, fullgraph=True)
        for i in range(3):
            fn(x * (i + 1), w).backward(torch.randn(2, 16, 32, generator=g) * 10.0**-i)
        results.append((hx.clone(), hg.clone(), w.grad.clone()))
    torch._dynamo.reset()
    (hx0, hg0, gw0), (hx1, hg1, gw1) = results
    assert hx0[:3].gt(0).all() and hg0[:3].gt(0).all() and hx0[3:].eq(0).all()
    torch.testing.assert_close(hx1, hx0, rtol=0, atol=0)
    torch.testing.assert_close(hg1, hg0, rtol=0, atol=0)
    torch.testing.assert_close(gw1, gw0, rtol=1e-5, atol=1e-6)


def test_delayed_scaling_resumes_exactly(tmp_path, text_shards, capsys):
    """--fp8-scaling delayed: the checkpoint's state file keeps each FP8 linear's amax histories, so 4 steps in one
    go equal 2 steps + a resume from the step-2 checkpoint, loss for loss, and end with the same histories."""
    from gpt2train.train import checkpoint as ckpt
    from tests.helpers import progress_losses, resume_copy, run_cli, tiny_train_args

    run = tmp_path / "run"
    args = tiny_train_args(text_shards, run, 4, ["--fp8", "1", "--fp8-scaling", "delayed", "-n", "2"])
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    _, saved = ckpt.load_state(str(run / "state_00000004_00000.safetensors"))
    histories = {k: t for k, t in saved.items() if k.startswith("buffer/")}
    assert histories and all(k.endswith(("fp8_x_history", "fp8_grad_history")) for k in histories)
    assert all(t[0] > 0 and t[1] > 0 for t in histories.values())  # recorded over the micro-steps
    resumed = tmp_path / "resumed"
    code, out, err = run_cli(resume_copy(run, resumed, 4, args), capsys)
    assert code == 0, err
    assert "resumed from checkpoint at step 2" in out
    assert progress_losses(resumed) == progress_losses(run)
    _, again = ckpt.load_state(str(resumed / "state_00000004_00000.safetensors"))
    assert all(torch.equal(again[k], t) for k, t in histories.items())
    # resumed with dynamic scaling, the saved histories are left aside (with a changed-settings warning)
    dynamic = [*args[:-4], "--fp8-scaling", "dynamic", "-n", "2"]
    code, out, err = run_cli(resume_copy(run, tmp_path / "dynamic", 4, dynamic), capsys)
    assert code == 0, err
    assert "resumed from checkpoint at step 2" in out and "changed settings (fp8_scaling)" in out + err


def test_delayed_scaling_with_a_block_recomputed_whole(tmp_path, text_shards, capsys):
    """--fp8-scaling delayed --recompute-whole 1: the block recomputed whole keeps bf16 linears (no amax to record
    twice), the other block records its histories, and the checkpoint keeps only those."""
    from gpt2train.train import checkpoint as ckpt
    from tests.helpers import run_cli, tiny_train_args

    run = tmp_path / "run"
    extra = ["--fp8", "1", "--fp8-scaling", "delayed", "-r", "2", "--recompute-whole", "1", "-n", "2"]
    code, _, err = run_cli(tiny_train_args(text_shards, run, 2, extra), capsys)
    assert code == 0, err
    _, saved = ckpt.load_state(str(run / "state_00000002_00000.safetensors"))
    histories = sorted(k for k in saved if k.startswith("buffer/"))
    assert histories and all(".h.1." in k for k in histories), histories  # block 0 is the one recomputed whole
    assert all(saved[k][1] > 0 for k in histories)


def test_restore_buffers_copies_known_names_and_rejects_other_shapes():
    """restore_buffers: a saved history lands in the model's buffer of that name; one the model lacks is left aside;
    one of another shape is a one-line error naming the state file."""
    from gpt2train.errors import UserError
    from gpt2train.train import checkpoint as ckpt

    model = torch.nn.Linear(4, 4)
    model.register_buffer("fp8_x_history", f8.amax_history(), persistent=False)
    saved = torch.arange(f8.AMAX_HISTORY + 1, dtype=torch.float32)
    ckpt.restore_buffers(model, {"buffer/fp8_x_history": saved, "buffer/fp8_grad_history": saved}, "s.safetensors")
    assert torch.equal(model.fp8_x_history, saved)
    with pytest.raises(UserError, match="s.safetensors.*buffer fp8_x_history is \\(3,\\)"):
        ckpt.restore_buffers(model, {"buffer/fp8_x_history": torch.zeros(3)}, "s.safetensors")


def test_weight_copies_cast_once_a_step_train_as_casting_every_micro_step():
    """--fp8-cache-weights 1: the FP8 linears take their weights' copies from buffers that cast_weight_copies fills
    before a step's micro-steps. A tiny GPT over two micro-steps gives the same loss and gradients, bit for bit, as
    casting in every forward, eager and compiled; after the weights change, the copies follow them only once cast
    again (so the forward does read the buffers)."""
    from gpt2train.config import ModelConfig
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate, cast_weight_copies, weight_copy_layers

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))

    def step(model, layers):
        cast_weight_copies(layers)
        for _ in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(idx, idx)
            loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        return loss.detach(), grads

    def update(model):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))

    results = {}
    try:
        for cached, compiled in ((False, False), (True, False), (True, True)):
            model = build_model(cfg, seed=5)
            accelerate(model, FastPaths(fp8=1, fp8_cast_kernel=1, fp8_delayed=True, fp8_cache_weights=cached))
            for block in model.transformer.h if compiled else ():
                block.compile(backend="aot_eager")
            layers = weight_copy_layers(model)
            assert len(layers) == (8 if cached else 0)  # four linears in each of two blocks
            steps = [step(model, layers)]
            update(model)
            steps.append(step(model, layers))
            update(model)
            steps.append(step(model, []))  # the copies not cast again: the cached model still sees step 2's weights
            results[cached, compiled] = steps
    finally:
        torch._dynamo.reset()
    for i in (0, 1):
        (l0, g0), (l1, g1) = results[False, False][i], results[True, False][i]
        assert torch.equal(l0, l1) and all(torch.equal(g0[n], g1[n]) for n in g0), i
        torch.testing.assert_close(results[True, True][i][0], l1, rtol=1e-3, atol=0)
    assert not torch.equal(results[True, False][2][0], results[False, False][2][0])
