"""chunked_classifier_loss equals plain_classifier_loss (loss and gradients of x and W)."""

from __future__ import annotations

import pytest
import torch

from gpt2train.kernels.fused_classifier import chunked_classifier_loss, plain_classifier_loss

V, VP, C = 97, 128, 32  # a padded vocabulary, like 50257 -> 50304


def _inputs(shape, dtype, seed=0, ignore_frac=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, C, generator=g).to(dtype).requires_grad_()
    w = (torch.randn(VP, C, generator=g) * 0.5).to(dtype).requires_grad_()
    t = torch.randint(0, V, shape, generator=g)
    if ignore_frac:
        t[torch.rand(shape, generator=g) < ignore_frac] = -1
    return x, w, t


def _run(fn, x, w, t, **kw):
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    loss = fn(x, w, t, V, **kw)
    loss.backward()
    return loss.detach(), x.grad, w.grad


def _assert_close(a, b, rtol, atol):
    torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("chunk_rows", [1, 7, 16, 50, 1000])
@pytest.mark.parametrize("ignore_frac", [0.0, 0.3])
def test_fp32_matches_reference(chunk_rows, ignore_frac):
    x, w, t = _inputs((3, 16), torch.float32, seed=chunk_rows, ignore_frac=ignore_frac)
    ref = _run(plain_classifier_loss, x, w, t)
    got = _run(chunked_classifier_loss, x, w, t, chunk_rows=chunk_rows)
    assert got[0].dtype == torch.float32 and got[0].shape == ()
    for a, b in zip(got, ref):
        _assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert got[1].dtype == x.dtype and got[2].dtype == w.dtype


def test_padded_rows_of_weight_get_zero_gradient():
    x, w, t = _inputs((2, 8), torch.float32)
    _, _, gw = _run(chunked_classifier_loss, x, w, t, chunk_rows=5)
    assert torch.count_nonzero(gw[V:]) == 0
    assert torch.count_nonzero(gw[:V]) > 0


def test_bf16_tensors_match_reference():
    x, w, t = _inputs((4, 16), torch.bfloat16, seed=3, ignore_frac=0.2)
    ref = _run(plain_classifier_loss, x, w, t)
    got = _run(chunked_classifier_loss, x, w, t, chunk_rows=9)
    _assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)  # the loss is fp32 of the same bf16 logits
    assert got[1].dtype == torch.bfloat16 and got[2].dtype == torch.bfloat16
    _assert_close(got[1], ref[1], rtol=2e-2, atol=1e-4)
    _assert_close(got[2], ref[2], rtol=2e-2, atol=1e-4)


def test_autocast_bf16_matches_reference():
    x, w, t = _inputs((4, 16), torch.float32, seed=4, ignore_frac=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _run(plain_classifier_loss, x, w, t)
        got = _run(chunked_classifier_loss, x, w, t, chunk_rows=10)
    assert got[1].dtype == torch.float32 and got[2].dtype == torch.float32
    _assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    _assert_close(got[1], ref[1], rtol=2e-2, atol=1e-4)
    _assert_close(got[2], ref[2], rtol=2e-2, atol=1e-4)


def test_grad_output_scaling_and_partial_requires_grad():
    x, w, t = _inputs((2, 10), torch.float32, seed=5)
    xr, wr = x.detach().clone().requires_grad_(), w.detach()
    (plain_classifier_loss(xr, wr, t, V) * 3.5).backward()
    xg = x.detach().clone().requires_grad_()
    (chunked_classifier_loss(xg, w.detach(), t, V, chunk_rows=3) * 3.5).backward()
    _assert_close(xg.grad, xr.grad, rtol=1e-5, atol=1e-7)


def test_no_grad_and_all_ignored():
    x, w, t = _inputs((2, 10), torch.float32, seed=6, ignore_frac=0.5)
    with torch.no_grad():
        _assert_close(chunked_classifier_loss(x, w, t, V, chunk_rows=4), plain_classifier_loss(x, w, t, V), 1e-5, 1e-7)
    t_all = torch.full_like(t, -1)
    with torch.no_grad():
        assert torch.isnan(chunked_classifier_loss(x, w, t_all, V)).item()
        assert torch.isnan(plain_classifier_loss(x, w, t_all, V)).item()


@pytest.mark.parametrize("levers", [{}, dict(untied_head=True, logit_softcap=3.0)], ids=["classic", "capped"])
def test_in_a_model(tiny_config, levers):
    """accelerate's fused classifier (chunk of 37 rows) gives the plain model's loss and gradients, the soft-cap
    and an untied head included."""
    import dataclasses

    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    cfg = dataclasses.replace(tiny_config, **levers)
    ref_model = build_model(cfg, seed=1)
    fast_model = build_model(cfg, seed=1)
    accelerate(fast_model, FastPaths(fused_classifier=True, classifier_chunk=37))
    assert fast_model.classifier_loss.keywords == {"chunk_rows": 37}
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (2, 32), generator=g)
    tgt = torch.randint(0, cfg.vocab_size, (2, 32), generator=g)
    l_ref, l_fast = ref_model(idx, tgt), fast_model(idx, tgt)
    l_ref.backward()
    l_fast.backward()
    _assert_close(l_fast, l_ref, 1e-5, 1e-6)
    for (n, a), (_, b) in zip(fast_model.named_parameters(), ref_model.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_compile_traces():
    """The Function traces as one graph under torch.compile (aot_eager: no C++ compiler on CPU)."""
    x, w, t = _inputs((2, 8), torch.float32, seed=7)
    loss = lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=5)
    fn = torch.compile(loss, backend="aot_eager", fullgraph=True)
    got = _run(lambda a, b, c, _v: fn(a, b, c), x, w, t)
    ref = _run(plain_classifier_loss, x, w, t)
    for a, b in zip(got, ref):
        _assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_saves_only_dx_and_dw():
    """Between forward and backward only dx (x's shape/dtype) and an fp32 dW are kept: no logits."""
    x, w, t = _inputs((4, 16), torch.float32, seed=8)
    saved = []

    def pack(tensor):
        saved.append(tuple(tensor.shape))
        return tensor

    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = chunked_classifier_loss(x, w, t, V, chunk_rows=16)
    assert sorted(saved) == sorted([(4 * 16, C), (VP, C)])
    loss.backward()


@pytest.mark.parametrize("chunk_rows", [7, 1000])
def test_softcap_matches_reference(chunk_rows):
    """Soft-capped logits (the modern recipe's --logit-softcap) on the torch path, fp32 and bf16 tensors."""
    x, w, t = _inputs((3, 16), torch.float32, seed=5, ignore_frac=0.2)
    x = (x * 4).detach()  # logits past the cap
    ref = _run(plain_classifier_loss, x, w, t, softcap=3.0)
    got = _run(chunked_classifier_loss, x, w, t, chunk_rows=chunk_rows, impl="torch", softcap=3.0)
    for a, b in zip(got, ref):
        _assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.isclose(ref[0], _run(plain_classifier_loss, x, w, t)[0])
    xb, wb = x.to(torch.bfloat16), w.to(torch.bfloat16)
    got = _run(chunked_classifier_loss, xb, wb, t, chunk_rows=chunk_rows, impl="torch", softcap=3.0)
    ref = _run(plain_classifier_loss, xb, wb, t, softcap=3.0)
    for a, b in zip(got, ref):
        _assert_close(a, b, rtol=2e-2, atol=2e-2)
    with torch.no_grad():  # the loss-only path
        _assert_close(chunked_classifier_loss(x, w, t, V, chunk_rows=chunk_rows, softcap=3.0), ref[0], 1e-2, 1e-2)


@pytest.mark.parametrize("mode", [1, 3, 4])
def test_fp8_is_within_fp8_error_of_the_reference(mode):
    """--fp8-classifier 1, 3 and 4: the three matmuls in FP8 (emulated on the CPU) give the reference's loss and
    gradients to within FP8's rounding (3: the gradient rounded stochastically; 4: its target term exact), and do
    round (not a silent bf16 path)."""
    x, w, t = _inputs((4, 16), torch.float32, seed=9, ignore_frac=0.2)
    ref = _run(plain_classifier_loss, x, w, t)
    bf16 = _run(chunked_classifier_loss, x, w, t, chunk_rows=16, impl="torch")
    fp8 = _run(chunked_classifier_loss, x, w, t, chunk_rows=16, impl="torch", fp8=mode)
    _assert_close(fp8[0], ref[0], rtol=2e-2, atol=0)
    for got, want, plain in zip(fp8[1:], ref[1:], bf16[1:]):
        assert got.dtype == want.dtype
        assert 1e-3 < ((got - want).norm() / want.norm()).item() < 0.1
        assert ((plain - want).norm() / want.norm()).item() < 1e-5
    assert torch.count_nonzero(fp8[2][V:]) == 0  # padded columns: zero gradient, as the reference


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("mode", [1, 4])
def test_fp8_under_autocast_and_with_softcap(mode):
    x, w, t = _inputs((2, 32), torch.float32, seed=10, ignore_frac=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _run(plain_classifier_loss, x, w, t, softcap=3.0)
        got = _run(chunked_classifier_loss, x, w, t, chunk_rows=32, impl="torch", softcap=3.0, fp8=mode)
    _assert_close(got[0], ref[0], rtol=2e-2, atol=0)
    for a, b in zip(got[1:], ref[1:]):
        assert a.dtype == torch.float32 and _rel_err(a, b) < 0.1


@pytest.mark.parametrize("softcap", [0.0, 3.0])
def test_fp8_exact_target_term_is_closer_to_the_reference(softcap):
    """--fp8-classifier 4 takes each row's target term (the gradient's largest entry) out of the float8 gradient and
    adds it exactly. Mode 1 rounds -(1 - p) at the target with e5m2's 2 mantissa bits: to -1 for every p under 1/16,
    the same way each step (a bias). The gradient of the logits as mode 4 gives it is nearer the exact one (for dW in
    e5m2, for dx nearer still in e4m3 scaled row by row), and dx and dW (beside the e4m3 rounding of x and W they
    share) nearer the reference than mode 1's."""
    from gpt2train.kernels import fused_classifier as fc

    g = torch.Generator().manual_seed(21)
    n = 64
    logits = torch.randn(n, VP, generator=g) * 2
    t = torch.randint(0, V, (n,), generator=g)
    t[::9] = -1
    gmax = torch.finfo(fc.FP8_GRAD).max
    scale = (t != -1).float() * gmax
    _, exact = fc._chunk_loss_and_dlogits(logits.clone(), t, V, scale / gmax, softcap)
    _, q1, _, _ = fc._chunk_loss_and_fp8_grads(logits, t, V, scale, softcap, triton=False)
    _, q4, q4t, _ = fc._chunk_loss_and_fp8_grads(logits, t, V, scale, softcap, triton=False, onehot=False)
    assert torch.equal(q4t, q4.t()) and bool((q4.float() >= 0).all())  # the softmax alone: never negative
    safe, coef = fc._target_term(logits, t, V, scale / gmax, softcap)
    mode4 = (q4.float() / gmax).scatter_add(1, safe.unsqueeze(1), coef.unsqueeze(1))
    assert _rel_err(mode4, exact) < 0.8 * _rel_err(q1.float() / gmax, exact)
    # dx's copy: in e4m3 (a mantissa bit more than e5m2), each row scaled by its own largest probability
    _, r4, r4t, amax = fc._chunk_loss_and_fp8_grads(logits, t, V, scale, softcap, triton=False, onehot=False,
                                                    row_scaled=True)  # fmt: skip
    assert r4.dtype == fc.FP8_ROWS and torch.equal(r4t, q4t)
    rows4 = (r4.float() * (amax / torch.finfo(fc.FP8_ROWS).max).unsqueeze(1)).scatter_add(
        1, safe.unsqueeze(1), coef.unsqueeze(1)
    )
    assert _rel_err(rows4, exact) < 0.7 * _rel_err(mode4, exact)
    rows = torch.nonzero(t != -1).squeeze(1)
    at = lambda m: m[rows, t[rows]].double()  # noqa: E731
    p = at(exact) - at(torch.zeros_like(exact).scatter_add(1, safe.unsqueeze(1), coef.unsqueeze(1)))  # the softmax
    assert bool(((at(mode4) - at(exact)).abs() <= 0.126 * p + 1e-6).all())  # e5m2's rounding of p alone
    assert (at(q1.float() / gmax) - at(exact)).abs().mean() > 3 * (at(mode4) - at(exact)).abs().mean()
    x, w, t2 = _inputs((8, 32), torch.float32, seed=21, ignore_frac=0.1)
    ref = _run(plain_classifier_loss, x, w, t2, softcap=softcap)
    one, four = (_run(chunked_classifier_loss, x, w, t2, chunk_rows=64, impl="torch", softcap=softcap, fp8=m)
                 for m in (1, 4))  # fmt: skip
    for a1, a4, b in zip(one[1:], four[1:], ref[1:]):
        assert _rel_err(a4, b) < _rel_err(a1, b)
    assert torch.count_nonzero(four[2][V:]) == 0  # padded rows of W: zero gradient


def test_fp8_falls_back_to_bf16_where_shapes_do_not_suit_scaled_mm():
    """_scaled_mm wants every dimension a multiple of 16: 3 x 10 rows are not, so the chunks run unquantized."""
    x, w, t = _inputs((3, 10), torch.float32, seed=11)
    plain = _run(chunked_classifier_loss, x, w, t, chunk_rows=16, impl="torch")
    fp8 = _run(chunked_classifier_loss, x, w, t, chunk_rows=16, impl="torch", fp8=True)
    for a, b in zip(fp8, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():  # evaluation: bf16 logits (here fp32) whatever fp8 says
        x2, w2, t2 = _inputs((4, 16), torch.float32, seed=12)
        got = chunked_classifier_loss(x2, w2, t2, V, chunk_rows=16, fp8=True)
        torch.testing.assert_close(got, plain_classifier_loss(x2, w2, t2, V), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["1", "2", "3", "4"])
def test_trainer_fp8_classifier_run(tmp_path, text_shards, capsys, mode):
    """--fp8-classifier 1 to 4 train (the loss falls) with the fused classifier, and are refused without it."""
    import json

    from tests.helpers import progress_losses, run_cli, tiny_train_args

    run = tmp_path / "fp8c"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 8, ["--fused-classifier", "1", "--fp8-classifier", mode]),
                           capsys)  # fmt: skip
    assert code == 0, err
    losses = [v for (kind, _), v in sorted(progress_losses(run).items(), key=lambda kv: kv[0][1]) if kind == "train"]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5, losses
    train = json.load(open(run / "config.json"))["train"]
    assert train["fp8_classifier"] == int(mode) and train["fused_classifier"] == 1
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "bad", 1, ["--fp8-classifier", mode]), capsys)
    last = err.strip().splitlines()[-1]
    assert code != 0 and last.startswith(f"error: --fp8-classifier {mode}:") and "--fused-classifier 1" in last, last


def test_accelerate_swaps_in_the_fp8_classifier(tiny_config):
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    model = build_model(tiny_config, seed=1)
    accelerate(model, FastPaths(fused_classifier=True, fp8_classifier=True))
    assert model.classifier_loss.keywords == {"fp8": True}
    accelerate(model, FastPaths(fused_classifier=True, classifier_chunk=64, fp8_classifier=True))
    assert model.classifier_loss.keywords == {"chunk_rows": 64, "fp8": True}
    accelerate(model, FastPaths(fused_classifier=True))
    assert model.classifier_loss is chunked_classifier_loss


@pytest.mark.parametrize("mode", [1, 2, 4])
def test_fp8_compile_traces(mode):
    """The FP8 paths trace as one graph under torch.compile too (--compile-scope model; aot_eager on the CPU), and
    give what they give eager."""
    torch._dynamo.reset()
    x, w, t = _inputs((4, 16), torch.float32, seed=13)
    loss = lambda a, b, c: chunked_classifier_loss(a, b, c, V, chunk_rows=32, fp8=mode)
    fn = torch.compile(loss, backend="aot_eager", fullgraph=True)
    got = _run(lambda a, b, c, _v: fn(a, b, c), x, w, t)
    eager = _run(chunked_classifier_loss, x, w, t, chunk_rows=32, impl="torch", fp8=mode)
    for a, b in zip(got, eager):
        _assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_fp8_logits_only_keeps_the_gradient_matmuls_unquantized():
    """--fp8-classifier 2: the logits from e4m3 copies, the gradient's matmuls in the compute dtype: dx and dW are
    the exact matmuls of the gradient of those logits."""
    x, w, t = _inputs((4, 16), torch.float32, seed=14, ignore_frac=0.1)
    ref = _run(plain_classifier_loss, x, w, t)
    got = _run(chunked_classifier_loss, x, w, t, chunk_rows=32, impl="torch", fp8=2)
    _assert_close(got[0], ref[0], rtol=2e-2, atol=0)
    for a, b in zip(got[1:], ref[1:]):
        assert 1e-4 < ((a - b).norm() / b.norm()).item() < 0.1
    from gpt2train.kernels.fp8_linear import E4M3, quantize

    x2 = x.detach().reshape(-1, C)
    (xq, sx), (wq, sw) = quantize(x2, E4M3), quantize(w.detach(), E4M3)
    logits = (xq.float() * sx) @ (wq.float() * sw).t()
    xl = logits.clone().requires_grad_()
    plain_classifier_loss_of_logits = torch.nn.functional.cross_entropy(xl[:, :V], t.reshape(-1), ignore_index=-1)
    plain_classifier_loss_of_logits.backward()
    g = xl.grad
    torch.testing.assert_close(got[1].reshape(-1, C), g @ w.detach(), rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(got[2], g.t() @ x2, rtol=1e-3, atol=1e-6)


def test_fp8_exact_target_term_shares_the_float8_operands():
    """--fp8-classifier 4 adds each row's target term times the same e4m3 copy of x as the float8 softmax part: with
    every row of x the same vector, every row of dW is a multiple of that vector's e4m3 copy (rank 1). From x as it
    is, a frequent token's two near-opposite parts would not share x's rounding (it failed the loss check so)."""
    from gpt2train.kernels.fp8_linear import E4M3, quantize

    g = torch.Generator().manual_seed(23)
    x = torch.randn(1, C, generator=g).expand(64, C).contiguous().requires_grad_()
    w = (torch.randn(VP, C, generator=g) * 0.5).requires_grad_()
    t = torch.randint(0, V, (64,), generator=g)
    _, _, dw = _run(chunked_classifier_loss, x, w, t, chunk_rows=32, impl="torch", fp8=4)
    xq, sx = quantize(x.detach(), E4M3)
    direction = (xq[0].float() * sx).double()
    residual = dw.double() - torch.outer(dw.double() @ direction / direction.dot(direction), direction)
    assert residual.norm() < 1e-6 * dw.double().norm()
    assert torch.count_nonzero(dw[torch.unique(t)].abs().sum(1)) == len(torch.unique(t))


def test_fp8_exact_target_terms_are_summed_over_every_chunk():
    """--fp8-classifier 4 collects each chunk's target terms and sums them into dW once, after the chunks (by an
    embedding's backward): dW is the same whatever the chunking (to fp32's order of summation), ignored rows (-1)
    adding nothing. Keeping one chunk's terms only, or adding an ignored row's x at its placeholder index 0, would
    change it."""
    x, w, t = _inputs((4, 16), torch.float32, seed=31, ignore_frac=0.2)
    t.view(-1)[:8] = -1  # the first chunk of 16 rows half ignored
    runs = [_run(chunked_classifier_loss, x, w, t, chunk_rows=rows, impl="torch", fp8=4) for rows in (16, 32, 64)]
    for loss, dx, dw in runs[1:]:
        torch.testing.assert_close(loss, runs[0][0], rtol=1e-6, atol=0)
        torch.testing.assert_close(dx, runs[0][1], rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(dw, runs[0][2], rtol=1e-5, atol=1e-8)
