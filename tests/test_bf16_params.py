"""--bf16-params 1 end to end on CPU: bf16 parameters, the fp32 master copy in the optimizer (MasterAdamW)."""

from __future__ import annotations

import json

import pytest
import torch

from gpt2train import rundir
from gpt2train.formats.load import load_pretrained
from gpt2train.train import checkpoint as ckpt
from tests.helpers import progress_losses, resume_copy, run_cli, tiny_train_args

BF16 = ["--bf16-params", "1", "--dtype", "bf16"]


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory, text_shards):
    """8 steps with checkpoints at 4 and 8."""
    run = tmp_path_factory.mktemp("bf16params") / "run"
    args = tiny_train_args(text_shards, run, 8, [*BF16, "-n", "4", "-v", "4"])
    code, _, _ = run_cli(args)
    assert code == 0
    return run, args


def test_trains_with_bf16_params_and_master_in_the_state(bf16_run):
    run, _ = bf16_run
    losses = progress_losses(run)
    train = [losses[("train", s)] for s in range(8)]
    assert train[-1] < train[0] - 1.0, train
    assert losses[("val", 8)] < losses[("val", 0)] - 1.0
    assert json.load(open(run / "config.json"))["train"]["bf16_params"] == 1
    # the model file holds the bf16 parameters; the state file the optimizer's fp32 masters and moments
    _, sd = load_pretrained(rundir.model_path(str(run), 8))
    meta, tensors = ckpt.load_state(str(run / "state_00000008_00000.safetensors"))
    masters = {k: t for k, t in tensors.items() if k.endswith("/master")}
    assert len(masters) == sum(1 for k in tensors if k.endswith("/exp_avg")) > 0
    assert all(t.dtype == torch.float32 for t in masters.values())
    assert not any(k.startswith("param/") for k in tensors)  # the model file holds the bf16 params exactly
    n_params = sum(t.numel() for t in sd.values() if t.dtype.is_floating_point)
    assert sum(t.numel() for t in masters.values()) <= n_params
    # each parameter is its master rounded to bf16 (the wte master, the largest, as the check)
    wte = max(masters.values(), key=lambda t: t.numel())
    assert any(torch.equal(wte.to(torch.bfloat16).reshape(-1), p.to(torch.bfloat16).reshape(-1))
               for p in sd.values() if p.numel() == wte.numel())  # fmt: skip


def test_resume_is_exact(bf16_run, tmp_path, capsys):
    """8 steps in one go == 4 steps + resume from the step-4 checkpoint (-y 1): losses and final params."""
    run, args = bf16_run
    resumed = tmp_path / "resumed"
    argv = resume_copy(run, resumed, 8, args)  # without the step-8 checkpoint: resume from step 4
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "resumed from checkpoint at step 4" in out and "warning" not in out
    assert progress_losses(resumed) == progress_losses(run)  # full-precision losses, bit for bit
    a = load_pretrained(rundir.model_path(str(run), 8))[1]
    b = load_pretrained(rundir.model_path(str(resumed), 8))[1]
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, ta = ckpt.load_state(str(run / "state_00000008_00000.safetensors"))
    _, tb = ckpt.load_state(str(resumed / "state_00000008_00000.safetensors"))
    assert all(torch.equal(ta[k], tb[k]) for k in ta if k.startswith("optim/"))

    # resuming with the other layout is refused (the state holds masters, or does not)
    i = argv.index("--bf16-params")
    code, _, err = run_cli([*argv[:i], "--bf16-params", "0", *argv[i + 2 :]], capsys)
    i = args.index("--bf16-params")
    assert code != 0 and "--bf16-params" in err.strip().splitlines()[-1]
    # the default (-1, auto) resumes with the checkpoint's layout, here on CPU where a new run would take 0
    again = tmp_path / "again"
    auto = resume_copy(resumed, again, 8, [*args[:i], *args[i + 2 :]])
    code, out, err = run_cli(auto, capsys)
    assert code == 0, err
    assert json.load(open(again / "config.json"))["train"]["bf16_params"] == 1
    assert progress_losses(again) == progress_losses(run)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["-w", "0", *BF16], "-w 0 --bf16-params 1: contradictory"),
        (["--optimizer", "muon", *BF16], "--optimizer muon --bf16-params 1"),
        (["--bf16-params", "1"], "needs bf16: add --dtype bf16"),
        (["--bf16-params", "2"], "--bf16-params 2"),
    ],
)
def test_bad_combinations_are_one_line_errors(tmp_path, text_shards, capsys, extra, needle):
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path, 1, extra), capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and needle in lines[0], err


def test_preflight_counts_the_master_in_the_state_file():
    from gpt2train.train.preflight import checkpoint_bytes

    for dtype in ("fp32", "bf16"):
        plain = checkpoint_bytes(1000, dtype, True)
        bp = checkpoint_bytes(1000, dtype, True, bf16_params=True)
        assert bp["state"] - (1 << 20) == 1000 * 12 and bp["model"] == plain["model"]


@pytest.mark.parametrize(
    "fast, world, overrides, expect",
    [
        (True, 1, {}, 1),  # one process on the CUDA fast path: llm.c's layout
        (False, 1, {}, 0),  # the plain path (and the CPU) keep fp32 parameters
        (True, 2, {}, 0),  # DDP and ZeRO-1 keep their gradient buckets
        (True, 1, {"master_weights": 0}, 0),  # -w 0: bf16 parameters without any master copy
        (True, 1, {"optimizer": "muon"}, 0),
    ],
)
def test_auto_bf16_params(fast, world, overrides, expect):
    """--bf16-params -1 as resolve() decides it on a (faked) CUDA card: ``fast`` False is --plain."""
    from gpt2train.config import Environment, TrainConfig, resolve

    cfg = TrainConfig(**overrides, plain=not fast)
    assert cfg.bf16_params == -1  # the default
    env = Environment(device=torch.device("cuda"), world_size=world, gpu_memory=80 * 2**30)
    assert resolve(cfg, env).bf16_params == expect


def test_resumed_run_keeps_the_checkpoints_bf16_params():
    from gpt2train.config import Environment, TrainConfig, preset, resolve

    env = Environment(device=torch.device("cuda"), world_size=1, gpu_memory=80 * 2**30, resume_step=4,
                      resume_config={"bf16_params": 0}, resume_model=preset("d6"))  # fmt: skip
    assert resolve(TrainConfig(output_dir="run", resume=1), env).bf16_params == 0


def test_new_cpu_run_records_the_resolved_setting(tmp_path, text_shards):
    run = tmp_path / "run"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 1))
    assert code == 0, err
    assert json.load(open(run / "config.json"))["train"]["bf16_params"] == 0


@pytest.mark.parametrize("bf16_params, world, zero, per_param", [(1, 1, 0, 12), (0, 1, 0, 8), (1, 4, 1, 3)])
def test_auto_batch_reserves_the_optimizer_state(bf16_params, world, zero, per_param):
    """-b auto probes with the first update's allocation held aside: moments (8 bytes per parameter) and,
    with bf16 parameters, the fp32 master copy (4), over the ranks under ZeRO-1."""
    from gpt2train.config import TrainConfig, preset
    from gpt2train.train import memory

    cfg = preset("d12")
    settings = memory.settings(TrainConfig(bf16_params=bf16_params, zero_stage=zero), world)
    n = cfg.num_parameters()
    assert memory.optimizer_state_bytes(cfg, TrainConfig().seq_len, settings) == pytest.approx(n * per_param, abs=8)
