"""config.resolve: every setting checked and every auto one decided once, into a frozen ResolvedConfig that
config.json and the checkpoints record."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from gpt2train.config import AUTO_FIELDS, TRAIN_FIELDS, Environment, TrainConfig, resolve
from gpt2train.errors import UserError
from gpt2train.train.checkpoint import changed_settings
from tests.helpers import run_cli, tiny_train_args

CPU = Environment(device=torch.device("cpu"))
CUDA = Environment(device=torch.device("cuda"), gpu_memory=80 * 2**30, fp8_supported=True)  # faked: no card used
UNDECIDED = ("auto", -1, None)


def test_resolved_config_is_frozen_and_keeps_the_train_fields():
    rc = resolve(TrainConfig(), CPU)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rc.lr = 1.0
    assert tuple(rc.to_dict()) == TRAIN_FIELDS  # config.json's "train" keys stay TrainConfig's


@pytest.mark.parametrize("env", [CPU, CUDA], ids=["cpu", "cuda"])
@pytest.mark.parametrize("fields", [{}, {"recipe": "modern"}, {"plain": True}, {"master_weights": 0, "dtype": "bf16"}])
def test_every_auto_setting_is_decided(env, fields):
    rc = resolve(TrainConfig(**fields), env)
    left = {k: getattr(rc, k) for k in AUTO_FIELDS if getattr(rc, k) in UNDECIDED}
    assert not left, left


def test_decisions_on_cpu_and_on_the_cuda_fast_path():
    cpu = resolve(TrainConfig(), CPU)
    assert (cpu.device, cpu.dtype, cpu.bf16_params, cpu.compile, cpu.fused_classifier, cpu.gelu_fusion) == (
        "cpu", "fp32", 0, 0, 0, 0)  # fmt: skip
    cuda = resolve(TrainConfig(), CUDA)
    assert (cuda.device, cuda.dtype, cuda.bf16_params, cuda.compile, cuda.fused_classifier, cuda.gelu_fusion) == (
        "cuda", "bf16", 1, 1, 1, 2)  # fmt: skip
    assert cuda.accumulate_in_matmul == 1 and cuda.fast
    plain = resolve(TrainConfig(plain=True), CUDA)
    assert (plain.compile, plain.fused_classifier, plain.gelu_fusion, plain.bf16_params) == (0, 0, 0, 0)
    assert resolve(TrainConfig(compile=1), CPU).compile == 1  # an explicit setting is kept
    classic = resolve(TrainConfig(lr=1e-3), CPU)
    assert (classic.optimizer, classic.head_lr, classic.embed_lr, classic.pos) == ("adamw", 1e-3, 1e-3, "learned")
    modern = resolve(TrainConfig(recipe="modern"), CPU)
    assert (modern.optimizer, modern.mlp, modern.qk_norm, modern.head_lr, modern.embed_lr) == (
        "muon", "relu2", 1, 0.004, 0.2)  # fmt: skip


def test_recompute_whole_auto_uses_the_planner_on_the_card():
    rc = resolve(TrainConfig(model="d48", batch_size=40, recompute=2, recompute_whole=-1), CUDA)
    assert 0 < rc.recompute_whole < 48 and "--recompute-whole -1: the first" in rc.notes[0]
    assert resolve(TrainConfig(recompute_whole=-1), CPU).recompute_whole == 0  # no card to plan for
    # blocks recomputed whole keep bf16 linears, so delayed scaling (which must not record twice) goes with them
    delayed = resolve(TrainConfig(model="d48", batch_size=40, recompute=2, recompute_whole=-1, fp8=1,
                                  fp8_scaling="delayed"), CUDA)  # fmt: skip
    assert 0 < delayed.recompute_whole < 48 and delayed.fp8_scaling == "delayed"


HOPPER = dataclasses.replace(CUDA, gpu_memory=140 * 2**30, gpu_capability=(9, 0))


def test_fp8_auto_where_it_was_measured_faster_at_the_same_loss():
    """--fp8 -1 (the default): our FP8 linears for a wide model of one recipe in one process on a Hopper card at -r 0 or 1;
    bf16 elsewhere, a resumed run as its checkpoint, and an explicit --fp8 as given."""
    d48 = resolve(TrainConfig(model="d48", batch_size=16), HOPPER)
    assert d48.fp8 == 1 and d48.fp8_cast_kernel == 1 and d48.gelu_fusion == 0
    assert any(n.startswith("--fp8 -1: FP8 matmuls") for n in d48.notes), d48.notes
    assert resolve(TrainConfig(model="d36", recompute=0), HOPPER).fp8 == 1
    assert resolve(TrainConfig(model="d12"), HOPPER).fp8 == 1  # 768 channels: FP8_AUTO_MIN_WIDTH
    # the modern recipe whole (Muon, its architecture) too; a mix of the recipes' levers stays bf16 (below)
    assert resolve(TrainConfig(model="d12", recipe="modern"), HOPPER).fp8 == 1
    for fields, env in (({"model": "d6"}, HOPPER), ({"model": "d48", "recompute": 2}, HOPPER),
                        ({"model": "d48", "batch_size": 40, "recompute": 2, "recompute_whole": -1}, HOPPER),
                        ({"model": "d48", "fp8": 0}, HOPPER), ({"model": "d48", "plain": True}, HOPPER),
                        ({"model": "d48", "recipe": "modern", "optimizer": "adamw"}, HOPPER),
                        ({"model": "d48", "optimizer": "muon"}, HOPPER), ({"model": "d48", "mlp": "relu2"}, HOPPER),
                        ({"model": "d48", "fp8_impl": "torchao-tensorwise"}, HOPPER),
                        ({"model": "d48"}, dataclasses.replace(HOPPER, world_size=2)),
                        ({"model": "d48"}, dataclasses.replace(HOPPER, gpu_capability=(8, 9))),
                        ({"model": "d48"}, CUDA), ({"model": "d48"}, CPU)):  # fmt: skip
        rc = None
        try:
            rc = resolve(TrainConfig(**fields), env)
        except UserError as e:  # torchao without FP8 on: its own one-line error
            assert "--fp8-impl torchao-tensorwise picks whose FP8 linears --fp8 swaps in: add --fp8 1" in str(e)
            continue
        assert rc.fp8 == 0 and not any(n.startswith("--fp8 -1") for n in rc.notes), (fields, env)
    assert resolve(TrainConfig(model="d12", fp8=1), HOPPER).fp8 == 1
    resumed = dataclasses.replace(HOPPER, resume_config={"fp8": 1})
    assert resolve(TrainConfig(model="d12"), resumed).fp8 == 1
    assert resolve(TrainConfig(model="d48"), dataclasses.replace(HOPPER, resume_config={"fp8": 0})).fp8 == 0
    # the FP8 settings follow --fp8 as decided: fine where -1 turns it on, a one-line error where it does not
    assert resolve(TrainConfig(model="d48", fp8_grad="e5m2"), HOPPER).fp8_grad == "e5m2"
    with pytest.raises(UserError, match="--fp8-grad e5m2 is the gradients' format in our FP8 linears: add --fp8 1"):
        resolve(TrainConfig(model="d6", fp8_grad="e5m2"), HOPPER)


def test_fp8_scaling_auto_is_delayed_in_one_process():
    """--fp8-scaling auto (the default): delayed scaling wherever our FP8 linears run in one process (d48's default
    included); dynamic in several (a checkpoint would keep rank 0's amaxes only), with torchao's FP8 and without FP8;
    a resumed run keeps its checkpoint's (dynamic where it recorded none); an explicit choice stays."""
    assert resolve(TrainConfig(model="d48", batch_size=16), HOPPER).fp8_scaling == "delayed"
    assert resolve(TrainConfig(model="d12"), HOPPER).fp8_scaling == "delayed"
    assert resolve(TrainConfig(model="d12", fp8=1, fp8_scaling="dynamic"), HOPPER).fp8_scaling == "dynamic"
    for fields, env in (({"fp8": 1}, dataclasses.replace(HOPPER, world_size=2)), ({"fp8": 0}, HOPPER),
                        ({"fp8": 1, "fp8_impl": "torchao-tensorwise"}, HOPPER),
                        ({"fp8": 1}, dataclasses.replace(HOPPER, resume_config={"fp8": 1})),
                        ({"fp8": 1}, dataclasses.replace(HOPPER, resume_config={"fp8": 1, "fp8_scaling": "dynamic"}))):  # fmt: skip
        assert resolve(TrainConfig(model="d12", **fields), env).fp8_scaling == "dynamic", (fields, env)
    resumed = dataclasses.replace(HOPPER, resume_config={"fp8": 1, "fp8_scaling": "delayed"})
    assert resolve(TrainConfig(model="d12"), resumed).fp8_scaling == "delayed"
    with pytest.raises(UserError, match="--fp8-scaling 'often': use dynamic"):
        resolve(TrainConfig(fp8_scaling="often"), HOPPER)


def test_fp8_cache_weights_is_one_process_and_planned():
    """--fp8-cache-weights 1 (off by default): one process only (DDP would broadcast the copies' buffers at every
    forward); the planner counts the forward's e4m3 copy of the blocks' linear weights beside the backward's."""
    from gpt2train.plan import estimate_memory
    from gpt2train.train import memory

    assert resolve(TrainConfig(model="d48", batch_size=16), HOPPER).fp8_cache_weights == 0
    rc = resolve(TrainConfig(model="d48", batch_size=16, fp8_cache_weights=1), HOPPER)
    assert rc.fp8_cache_weights == 1 and memory.settings(rc, 1)["fp8_cache_weights"] == 1
    with pytest.raises(UserError, match="--fp8-cache-weights 1 runs in one process only .* not 2: drop it"):
        resolve(
            TrainConfig(model="d48", batch_size=16, fp8=1, fp8_cache_weights=1),
            dataclasses.replace(HOPPER, world_size=2),
        )
    d48 = rc.model_config
    plain, cached = (
        estimate_memory(d48, 16, 1024, recompute=0, fp8_linears="all", fp8_cache_weights=c) for c in (0, 1)
    )
    assert cached["fp8_weights"] == 2 * plain["fp8_weights"] == 2 * 12 * 1600 * 1600 * 48
    assert cached["total"] - plain["total"] == plain["fp8_weights"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lr_schedule": "step"}, "-k 'step': unknown learning rate schedule"),
        ({"attention": "fast"}, "--attention 'fast': use auto, flash, cudnn, efficient or math"),
        ({"dtype": "fp16"}, "--dtype 'fp16': use auto, bf16 or fp32"),
        ({"recipe": "new"}, "--recipe 'new': use one of classic, modern"),
        ({"master_weights": 0}, "-w 0 (bf16 weights without an fp32 master copy) needs bf16: add --dtype bf16"),
        ({"seq_len": 2048}, "-t 2048 exceeds the model's max sequence length 1024"),
        ({"fp8_impl": "te"}, "--fp8-impl 'te': use one of ours, torchao-tensorwise, torchao-rowwise"),
        ({"fp8_impl": "torchao-rowwise"}, "--fp8-impl torchao-rowwise picks whose FP8 linears --fp8 swaps in: add"),
        ({"fp8_bf16": "mlp"}, "--fp8-bf16 mlp says what stays bf16 under --fp8: add --fp8 1 or 2"),
        (
            {"fp8": 1, "fp8_bf16": "first,head"},
            "--fp8-bf16 first,head: 'head' is not a linear, a block or weight-grads",
        ),
        ({"fp8": 1, "fp8_bf16": "attn,mlp"}, "--fp8-bf16 attn,mlp keeps every linear in bf16: drop --fp8"),
        ({"fp8_cast_kernel": 1}, "--fp8-cast-kernel 1 casts the operands of our FP8 linears: add --fp8 1"),
        ({"fp8_cast_kernel": 2}, "--fp8-cast-kernel 2 casts the operands of our FP8 linears: add --fp8 1"),
        ({"fp8_cache_weights": 1}, "--fp8-cache-weights 1 keeps the weights' copies of our FP8 linears: add --fp8 1"),
        ({"fp8": 1, "fp8_cache_weights": 2}, "--fp8-cache-weights 2: use 0 (cast in every micro-step) or 1"),
        ({"fp8": 1, "fp8_cast_kernel": 3}, "--fp8-cast-kernel 3: use 0 (Inductor's casts), 1 (the Triton kernel), 2"),
        ({"fp8": 1, "fp8_scaling": "late"}, "--fp8-scaling 'late': use dynamic (each tensor's own amax), delayed"),
        ({"fp8_scaling": "delayed"}, "--fp8-scaling delayed scales our FP8 linears' operands: add --fp8 1"),
        ({"fp8": 1, "fp8_scaling": "delayed", "recompute": 3}, "--fp8-scaling delayed -r 3: a recomputed linear"),
        ({"fp8": 1, "fp8_grad": "e4m2"}, "--fp8-grad 'e4m2': use e4m3 or e5m2"),
        ({"fp8": 1, "recompute": 3}, "--fp8 1 -r 3: every block is recomputed whole, and those keep bf16 linears"),
        ({"fp8_grad": "e5m2"}, "--fp8-grad e5m2 is the gradients' format in our FP8 linears: add --fp8 1"),
        ({"fp8_classifier": 5}, "--fp8-classifier 5: use 0 (bf16), 1 (FP8), 2 (FP8 logits only), 3 (FP8, the gradient"),
        ({"fp8_classifier": 1}, "--fp8-classifier 1: cpu has no FP8 matmuls (needs CUDA capability 8.9+"),
        ({"fp8": 0, "fp8_classifier": 1, "plain": True}, "--fp8-classifier 1: its matmuls are the fused classifier's"),
        ({"fp8": 0, "fp8_classifier": 1, "fused_classifier": 0}, "which is off here: add --fused-classifier 1"),
        ({"fp8": 1, "fp8_impl": "torchao-tensorwise", "fp8_grad": "e5m2"}, "--fp8-grad e5m2 is the gradients' format"),
        (
            {"fp8": 1, "fp8_impl": "torchao-rowwise", "fp8_bf16": "weight-grads"},
            "--fp8-bf16 weight-grads: weight-grads is ours (torchao's recipes decide their own gradients)",
        ),
    ],
)
def test_checks_are_one_line_errors(fields, message):
    with pytest.raises(UserError) as e:
        resolve(TrainConfig(**fields), CPU if "fp8" not in fields else CUDA)
    assert message in str(e.value), e.value


def test_recorded_auto_settings_are_not_changed_settings():
    """A checkpoint written before resolve() recorded "auto"/-1/None for the settings now resolved: resuming it
    warns of no change for those, and still of a real one."""
    rc = resolve(TrainConfig(), CPU)
    old = {**rc.to_dict(), "dtype": "auto", "optimizer": None, "head_lr": None, "embed_lr": None, "compile": -1}
    assert changed_settings(old, rc) == []
    assert changed_settings({**old, "lr": 1e-3}, rc) == ["lr"]
    assert changed_settings({**old, "dtype": "bf16"}, rc) == ["dtype"]
    # a checkpoint from before --fp8-grad ran e5m2 gradients: resumed with FP8 into today's e4m3 default, that is a
    # change; without FP8 then or now the format changes nothing
    assert changed_settings({k: v for k, v in old.items() if k != "fp8_grad"}, rc) == []
    fp8 = resolve(TrainConfig(fp8=1), CUDA)
    assert changed_settings({k: v for k, v in fp8.to_dict().items() if k != "fp8_grad"}, fp8) == ["fp8_grad"]
    e5m2 = resolve(TrainConfig(fp8=1, fp8_grad="e5m2"), CUDA)
    assert changed_settings({k: v for k, v in e5m2.to_dict().items() if k != "fp8_grad"}, e5m2) == []


def test_config_json_records_the_resolved_values(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 1), capsys)
    assert code == 0, err
    train = json.load(open(run / "config.json"))["train"]
    assert tuple(train) == TRAIN_FIELDS
    assert (train["dtype"], train["compile"], train["gelu_fusion"], train["optimizer"], train["head_lr"]) == (
        "fp32", 0, 0, "adamw", 3e-3)  # fmt: skip
    assert not {k: train[k] for k in AUTO_FIELDS if train[k] in UNDECIDED}


def test_fp8_classifier_needs_the_fused_classifier_and_fp8_matmuls():
    """--fp8-classifier 1 resolves where the fused classifier runs on FP8 matmuls (CUDA, or the CPU's emulation)."""
    assert resolve(TrainConfig(fp8_classifier=1), CUDA).fp8_classifier == 1
    cpu_fp8 = Environment(device=torch.device("cpu"), fp8_supported=True)
    assert resolve(TrainConfig(fp8_classifier=1, fused_classifier=1), cpu_fp8).fp8_classifier == 1
    with pytest.raises(UserError, match="add --fused-classifier 1"):  # off by default on the CPU
        resolve(TrainConfig(fp8_classifier=1), cpu_fp8)


def test_fp8_classifier_auto_in_one_process_on_hopper_follows_the_blocks_and_is_planned():
    """--fp8-classifier -1 (the default), where the fused classifier runs in one process on a Hopper GPU: beside FP8
    blocks with logits not soft-capped 4 (all three matmuls, the target's term apart: d12's and d48's default), else
    2 (the FP8 logits, which held the loss check beside bf16 blocks and in the modern recipe's); 0 elsewhere, a
    resumed run its checkpoint's, an explicit value as given. The memory planner counts the e4m3 copies of x and W
    (both), and the grad modes' chunk of float8 gradient in two layouts (2 bytes per logit more)."""
    from gpt2train.plan import estimate_memory
    from gpt2train.train import memory

    d12 = resolve(TrainConfig(model="d12"), HOPPER)
    assert d12.fp8 == 1 and d12.fp8_classifier == 4
    assert any(n.startswith("--fp8-classifier -1: the output layer's matmuls, its gradient's") for n in d12.notes)
    bf16_blocks = resolve(TrainConfig(model="d12", fp8=0), HOPPER)
    assert bf16_blocks.fp8_classifier == 2
    assert any(n.startswith("--fp8-classifier -1: the output layer's logits' matmul") for n in bf16_blocks.notes)
    assert resolve(TrainConfig(model="d48", batch_size=16, fp8=0), HOPPER).fp8_classifier == 2
    modern = resolve(TrainConfig(model="d12", recipe="modern"), HOPPER)  # its soft-capped logits: 4 is not checked
    assert modern.fp8 == 1 and modern.logit_softcap > 0 and modern.fp8_classifier == 2
    assert resolve(TrainConfig(model="d12", logit_softcap=30.0), HOPPER).fp8_classifier == 2
    d48 = resolve(TrainConfig(model="d48", batch_size=16), HOPPER)
    assert d48.fp8 == 1 and d48.fp8_classifier == 4  # beside FP8 blocks
    assert resolve(TrainConfig(model="d12", fp8=1, fp8_classifier=2), HOPPER).fp8_classifier == 2
    assert resolve(TrainConfig(model="d12", fp8_classifier=0), HOPPER).fp8_classifier == 0
    for fields, env in (({}, CUDA), ({}, dataclasses.replace(HOPPER, world_size=2)), ({"plain": True}, HOPPER),
                        ({"fused_classifier": 0}, HOPPER), ({}, dataclasses.replace(HOPPER, fp8_supported=False)),
                        ({}, dataclasses.replace(HOPPER, resume_config={})), ({}, CPU)):  # fmt: skip
        assert resolve(TrainConfig(model="d12", **fields), env).fp8_classifier == 0, (fields, env)
    resumed = dataclasses.replace(CUDA, resume_config={"fp8_classifier": 1})
    assert resolve(TrainConfig(model="d12"), resumed).fp8_classifier == 1
    rc = resolve(TrainConfig(model="d12", fp8_classifier=1), HOPPER)
    assert memory.settings(rc, 1)["fp8_classifier"] == 1
    assert memory.settings(resolve(TrainConfig(model="d12"), HOPPER), 1)["fp8_classifier"] == 4
    assert memory.settings(resolve(TrainConfig(model="d12", fp8_classifier=0), HOPPER), 1)["fp8_classifier"] == 0
    d12 = rc.model_config
    bf16, logits, all3 = (estimate_memory(d12, 64, 1024, fp8_classifier=m)["classifier"] for m in (0, 2, 1))
    assert logits - bf16 == (64 * 1024 + d12.padded_vocab_size) * d12.n_embd  # x's and W's e4m3 copies
    assert all3 - logits == 16384 * d12.padded_vocab_size * 2  # and a chunk's float8 gradient, both layouts
    with pytest.raises(UserError, match="llm.c's layout has no FP8"):
        estimate_memory(d12, 64, 1024, layout="llmc", fp8_classifier=True)


def test_fp8_cast_kernel_auto_is_on_with_our_fp8_on_cuda():
    """--fp8-cast-kernel -1 (the default): the one-pass casts wherever our FP8 runs on CUDA; off without --fp8, with
    torchao's FP8 and on the CPU; an explicit 0 stays 0."""
    assert resolve(TrainConfig(fp8=1), CUDA).fp8_cast_kernel == 1
    assert resolve(TrainConfig(fp8=2, fp8_cast_kernel=0), CUDA).fp8_cast_kernel == 0
    assert resolve(TrainConfig(), CUDA).fp8_cast_kernel == 0
    assert resolve(TrainConfig(fp8=1, fp8_impl="torchao-tensorwise"), CUDA).fp8_cast_kernel == 0
    cpu_fp8 = Environment(device=torch.device("cpu"), fp8_supported=True)  # torch emulates FP8 there
    assert resolve(TrainConfig(fp8=1), cpu_fp8).fp8_cast_kernel == 0


def test_fp8_applies_to_the_modern_architecture_too():
    """--fp8 swaps the blocks' linears whatever the architecture (accelerate.py), so the modern recipe takes it; GELU
    fusion stays off there (relu2, no biases) even when asked for."""
    rc = resolve(TrainConfig(model="d6", seq_len=64, recipe="modern", fp8=1, gelu_fusion=2), CUDA)
    assert rc.fp8 == 1 and rc.mlp == "relu2" and rc.gelu_fusion == 0


def test_recompute_whole_auto_plans_for_the_capped_allocator():
    """--recompute-whole -1 takes the blocks for the memory the run may allocate: d48 B=40 at -r 2 fits a 139 GiB
    H200 as it is, while under an H100's 80,300 MiB cap (bench capped) it needs blocks recomputed whole."""
    from gpt2train.plan import whole_blocks_needed

    cfg = TrainConfig(model="d48", batch_size=40, recompute=2, recompute_whole=-1)
    h200 = Environment(device=torch.device("cuda"), gpu_memory=143_771 * 2**20)
    capped = Environment(device=torch.device("cuda"), gpu_memory=80_300 * 2**20)
    assert resolve(cfg, h200).recompute_whole == 0
    n = resolve(cfg, capped).recompute_whole
    assert n > 0 and n == whole_blocks_needed(resolve(cfg, capped).model_config, 80_300 * 2**20, 40, 1024,
                                              world_size=1, zero_stage=0, recompute=2, master_weights=1,
                                              bf16_params=1)  # fmt: skip
    # with FP8 linears the planner counts their saved e4m3 copies: more blocks (8 ran out of memory with FP8 on)
    fp8 = Environment(device=torch.device("cuda"), gpu_memory=80_300 * 2**20, fp8_supported=True)
    n_fp8 = resolve(dataclasses.replace(cfg, fp8=1), fp8).recompute_whole
    assert n_fp8 > n == 8


def test_usable_gpu_memory_follows_the_allocators_cap(monkeypatch):
    """The planner's memory is the card's total times the per-process fraction the allocator is capped at."""
    import types

    from gpt2train.train import memory

    total = 143_771 * 2**20
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(total_memory=total))
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda d: 80_300 / 143_771)
    assert abs(memory.usable_gpu_memory(torch.device("cuda")) - 80_300 * 2**20) <= 1
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda d: 1.0)
    assert memory.usable_gpu_memory(torch.device("cuda")) == total


def test_fp8_bf16_is_resolved_to_the_linears_names():
    """--fp8-bf16's words (attn, mlp, a linear's name, first, last; spaces and repeats allowed) resolve to one
    canonical list, which config.json records."""
    rc = resolve(TrainConfig(fp8=2, fp8_bf16="weight-grads,last, mlp,first,mlp.c_fc"), CUDA)
    assert rc.fp8_bf16 == "mlp.c_fc,mlp.c_proj,first,last,weight-grads"
    assert resolve(TrainConfig(fp8=2), CUDA).fp8_bf16 == ""


def test_fp8_gelu_cast_auto_where_it_can_run():
    """--fp8-gelu-cast -1 (the default): 1 wherever our FP8 linears run with delayed scaling and the cast kernel
    (d12 and d48 on one Hopper GPU); 0 without FP8, with dynamic scaling (several processes), Inductor's casts,
    torchao's FP8 or a relu2 MLP (the modern recipe: asked for with 1, not measured); a resumed run keeps its
    checkpoint's (0 where it recorded none); 1 where it cannot run is a one-line error."""
    assert resolve(TrainConfig(model="d12"), HOPPER).fp8_gelu_cast == 1
    assert resolve(TrainConfig(model="d48", batch_size=16), HOPPER).fp8_gelu_cast == 1
    for fields, env in (({"fp8": 0}, HOPPER), ({"fp8_scaling": "dynamic"}, HOPPER), ({"fp8_cast_kernel": 0}, HOPPER),
                        ({"fp8": 1}, dataclasses.replace(HOPPER, world_size=2)), ({"fp8": 1, "recipe": "modern"}, HOPPER),
                        ({"fp8": 1, "fp8_impl": "torchao-tensorwise"}, HOPPER), ({}, CPU),
                        ({"fp8_bf16": "weight-grads"}, HOPPER),
                        ({"fp8": 1}, dataclasses.replace(HOPPER, resume_config={"fp8": 1, "fp8_scaling": "delayed"}))):  # fmt: skip
        assert resolve(TrainConfig(model="d12", **fields), env).fp8_gelu_cast == 0, (fields, env)
    resumed = dataclasses.replace(HOPPER, resume_config={"fp8": 1, "fp8_scaling": "delayed", "fp8_gelu_cast": 1})
    assert resolve(TrainConfig(model="d12"), resumed).fp8_gelu_cast == 1
    assert resolve(TrainConfig(model="d12", fp8_gelu_cast=0), HOPPER).fp8_gelu_cast == 0
    for fields in ({"fp8": 0}, {"fp8_scaling": "dynamic"}, {"fp8_cast_kernel": 2}, {"fp8_bf16": "weight-grads"}):
        with pytest.raises(
            UserError,
            match="--fp8-gelu-cast 1 computes the MLP's activation inside our FP8 linears' casts: add --fp8 1",
        ):
            resolve(TrainConfig(model="d12", fp8_gelu_cast=1, **fields), HOPPER)
    # ReLU² inside the casts: asked for only (not measured), on the modern recipe as on a classic model with it
    assert resolve(TrainConfig(model="d12", recipe="modern", fp8_gelu_cast=1), HOPPER).fp8_gelu_cast == 1
    assert resolve(TrainConfig(model="d12", mlp="relu2", fp8=1, fp8_gelu_cast=1), HOPPER).fp8_gelu_cast == 1
    with pytest.raises(UserError, match="--fp8-gelu-cast 2: use 0"):
        resolve(TrainConfig(model="d12", fp8_gelu_cast=2), HOPPER)


@pytest.mark.parametrize(
    "field, error",
    [
        ("fp8_qkv_cast", "--fp8-qkv-cast 1 gathers q, k and v's gradients"),
        ("fp8_norm_cast", "--fp8-norm-cast 1 computes the LayerNorms inside"),
    ],
)
def test_opt_in_fused_casts_stay_where_they_can_run(field, error):
    """--fp8-qkv-cast and --fp8-norm-cast are 0 by default (no faster in the trainer on an H200); 1 stays where our
    FP8 linears run with delayed scaling and the cast kernel, and is a one-line error elsewhere (or as another
    value)."""
    flag = "--" + field.replace("_", "-")
    assert getattr(resolve(TrainConfig(model="d12"), HOPPER), field) == 0
    assert getattr(resolve(TrainConfig(model="d12", **{field: 1}), HOPPER), field) == 1
    for fields in ({"fp8": 0}, {"fp8_scaling": "dynamic"}, {"fp8_cast_kernel": 0}, {"fp8_bf16": "weight-grads"}):
        with pytest.raises(UserError, match=error):
            resolve(TrainConfig(model="d12", **{field: 1}, **fields), HOPPER)
    with pytest.raises(UserError, match=f"{flag} 2: use 0"):
        resolve(TrainConfig(model="d12", **{field: 2}), HOPPER)
