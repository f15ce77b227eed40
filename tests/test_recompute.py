"""Activation recomputation (-r 1: GELU, -r 2: also LayerNorm, -r 3: each block's sublayers whole): the same
gradients as -r 0, fewer saved bytes, in eager mode and compiled (the compiler's partitioner picks what to save;
it must honour -r)."""

from __future__ import annotations

import pytest
import torch

from gpt2train.config import ModelConfig
from gpt2train.model import GPT, Block
from gpt2train.train.accelerate import FastLinear, FastPaths, RecomputedBlock, RecomputedMLP, accelerate

CFG = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)


def _grads_and_saved_bytes(recompute: int, backend: str | None, whole: int = 0, cfg: ModelConfig = CFG):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = GPT(cfg)
    keys = list(model.state_dict())
    accelerate(model, FastPaths(recompute=recompute, recompute_whole=whole))
    assert list(model.state_dict()) == keys
    if backend:
        for block in model.transformer.h:
            block.compile(backend=backend)
    idx = torch.randint(0, cfg.vocab_size, (2, 32), generator=torch.Generator().manual_seed(1))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}  # activations only, each storage once (views of one tensor cost its memory once)

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(idx, idx)
    loss.backward()
    return {n: p.grad for n, p in model.named_parameters()}, sum(storages.values())


@pytest.mark.parametrize("backend", [None, "aot_eager_decomp_partition"])
def test_recompute_keeps_gradients_and_saves_less(backend):
    ref, saved0 = _grads_and_saved_bytes(0, backend)
    saved = {0: saved0}
    for r in (1, 2, 3):
        grads, saved[r] = _grads_and_saved_bytes(r, backend)
        for name, g in grads.items():
            torch.testing.assert_close(g, ref[name], rtol=1e-5, atol=1e-6, msg=f"-r {r}: {name}")
    # -r 1 drops GELU's output (4C per token and layer, fp32 here); -r 2 the two LayerNorm outputs (2C) too;
    # -r 3 keeps only each sublayer's input. Eager, -r 2 is -r 3 (the matmuls would keep the LayerNorm outputs)
    tokens = 2 * 32
    assert saved[1] <= saved[0] - tokens * 4 * 64 * 4 * CFG.n_layer, saved
    assert saved[2] <= saved[1] - tokens * 2 * 64 * 4 * CFG.n_layer, saved
    assert saved[3] < saved[2] if backend else saved[3] == saved[2], saved
    # --recompute-whole 1: the first block as -r 3, the second at -r 0; same gradients, saved bytes in between
    grads, mixed = _grads_and_saved_bytes(0, backend, whole=1)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref[name], rtol=1e-5, atol=1e-6, msg=f"--recompute-whole 1: {name}")
    assert saved[3] < mixed < saved[0], (mixed, saved)


@pytest.mark.parametrize("backend", [None, "aot_eager_decomp_partition"])
def test_recompute_on_the_modern_architecture(backend):
    """-r on rotary + QK-norm + relu2 + RMSNorm: the same gradients; -r 1 drops the activation's output (relu2 via
    a checkpoint: compiled, the partitioner then recomputes it)."""
    cfg = ModelConfig(**{**CFG.to_dict(), "pos": "rotary", "qk_norm": True, "mlp": "relu2", "norm": "rmsnorm",
                         "untied_head": True, "logit_softcap": 15.0})  # fmt: skip
    ref, saved0 = _grads_and_saved_bytes(0, backend, cfg=cfg)
    saved = {0: saved0}
    for r, whole in ((1, 0), (2, 0), (3, 0), (0, 1)):
        grads, saved[r, whole] = _grads_and_saved_bytes(r, backend, whole, cfg=cfg)
        for name, g in grads.items():
            torch.testing.assert_close(g, ref[name], rtol=1e-5, atol=1e-6, msg=f"-r {r} whole {whole}: {name}")
    assert saved[3, 0] < saved[0], saved
    if backend:
        assert saved[1, 0] <= saved[0] - 2 * 32 * 4 * 64 * 4 * cfg.n_layer, saved


def test_recompute_whole_sets_blocks_and_keeps_accumulation_out_of_them():
    model = GPT(CFG)
    params = dict(model.named_parameters())
    accelerate(model, FastPaths(recompute=1, recompute_whole=1, accumulate_grads=True))
    assert dict(model.named_parameters()) == params  # the same tensors under the same names
    first, second = model.transformer.h
    assert type(first) is RecomputedBlock and first.recompute == 3 and type(second) is Block
    assert type(first.mlp) is RecomputedMLP and type(second.mlp) is RecomputedMLP
    # the blocks recomputed whole leave the gradient sums to autograd (compiled on CUDA, the recompute would
    # keep every matmul's input: BENCHMARKS.md round 15)
    assert type(first.attn.c_attn) is torch.nn.Linear and type(first.mlp.c_proj) is torch.nn.Linear
    assert type(second.attn.c_attn) is FastLinear and second.attn.c_attn.accumulate_grad
    assert second.mlp.c_fc.accumulate_grad
    # FP8 likewise: its e4m3 copies stayed through that recompute (48 whole blocks of d48 B=40 saved 6 of 109 GB,
    # issue 21), so a block recomputed whole keeps bf16 linears
    accelerate(model, FastPaths(recompute=1, recompute_whole=1, fp8=1))
    assert type(first.attn.c_attn) is torch.nn.Linear and type(first.mlp.c_fc) is torch.nn.Linear
    assert all(type(lin) is FastLinear and lin.fp8 == 1 for lin in (second.attn.c_attn, second.mlp.c_proj))
    accelerate(model, FastPaths())  # one flag away from the plain model
    assert all(type(b) is Block and type(b.attn.c_attn) is torch.nn.Linear for b in model.transformer.h)


def test_training_losses_do_not_depend_on_r(tmp_path, text_shards, capsys):
    """`gpt2train train -r 0/2/3`: the same losses (recomputation changes memory, not values); -r 4 is a one-line
    error naming the levels."""
    from tests.helpers import progress_losses, run_cli, tiny_train_args

    losses = {}
    for r in (0, 2, 3):
        code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / f"r{r}", 2, ["-r", r]), capsys)
        assert code == 0, err
        losses[r] = progress_losses(tmp_path / f"r{r}")
    for r in (2, 3):
        assert losses[r].keys() == losses[0].keys()
        for key, loss in losses[0].items():
            assert losses[r][key] == pytest.approx(loss, rel=1e-5), (r, key)
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "w1", 2, ["-r", 0, "--recompute-whole", 1]),
                           capsys)  # fmt: skip
    assert code == 0, err
    for key, loss in losses[0].items():
        assert progress_losses(tmp_path / "w1")[key] == pytest.approx(loss, rel=1e-5), key
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "r4", 1, ["-r", 4]), capsys)
    assert code == 1 and "-r 4: use 0 (none), 1 (GELU), 2 (GELU and LayerNorm) or 3" in err, err
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "w9", 1, ["--recompute-whole", 9]), capsys)
    assert code == 1 and "--recompute-whole 9: the model has 2 blocks" in err, err


def test_recompute_whole_auto_takes_the_planners_count(tmp_path, text_shards, capsys, monkeypatch):
    """--recompute-whole -1: the planner's fewest blocks for -b on the card (stubbed here: there is no card on the
    CPU, where it resolves to 0), recorded in config.json; with -b auto it is a one-line error."""
    import json

    from gpt2train.train import build, memory
    from tests.helpers import run_cli, tiny_train_args

    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "cpu", 1, ["--recompute-whole", -1]), capsys)
    assert code == 0, err
    assert json.load(open(tmp_path / "cpu" / "config.json"))["train"]["recompute_whole"] == 0
    monkeypatch.setattr(memory, "whole_blocks_needed", lambda mcfg, seq_len, settings, memory_bytes, batch:
                        1 if batch == 4 else None)  # fmt: skip
    configured = []
    real = build.accelerate

    def recording(model, paths):
        step_model = real(model, paths)
        configured.append([getattr(b, "recompute", 0) for b in model.transformer.h])
        return step_model

    monkeypatch.setattr(build, "accelerate", recording)
    args = tiny_train_args(text_shards, tmp_path / "auto", 1, ["-r", 2, "--recompute-whole", -1])
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "--recompute-whole -1: the first 1 of 2 blocks recomputed whole, so that -b 4 fits" in out, out
    assert configured == [[3, 2]]
    assert json.load(open(tmp_path / "auto" / "config.json"))["train"]["recompute_whole"] == 1
    args = tiny_train_args(text_shards, tmp_path / "nob", 1, ["--recompute-whole", -1])
    args[args.index("-b") + 1] = "auto"
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "--recompute-whole -1 picks the blocks for a given -b" in err.strip().splitlines()[-1], err
