"""Two processes on the gloo backend (torchrun), against one process with the same total batch."""

import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from gpt2train.formats.llmc_model import read_llmc_model
from tests.helpers import run_cli, tiny_train_args

# clipping off where runs are compared bit for bit: -z 0 and -z 1 sum the gradient norm in different orders
NO_CLIP = ["--grad-clip", "1e9"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, nproc=2, env_extra=None, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env_extra or {}))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "gpt2train", *map(str, args)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _log(run):
    return (run / "main.log").read_text().splitlines()


def _losses(run):
    return [float(ln.split("trl:")[1].split()[0]) for ln in _log(run) if "trl:" in ln]


@pytest.fixture(scope="module")
def single(tmp_path_factory, text_shards):
    run = tmp_path_factory.mktemp("single")
    assert run_cli(tiny_train_args(text_shards, run, 6, ["-n", "6", *NO_CLIP]))[0] == 0
    return run


@pytest.fixture(scope="module")
def pair(tmp_path_factory, text_shards):
    """2-process runs of 6 steps with -z 0 (DDP) and -z 1 (train/zero.py), fp32 gradient averaging, no clipping."""
    runs = {}
    for zero in (0, 1):
        run = runs[zero] = tmp_path_factory.mktemp(f"z{zero}")
        res = torchrun(tiny_train_args(text_shards, run, 6, ["-n", "6", "-z", zero, *NO_CLIP]))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return runs


@pytest.mark.parametrize("zero", [0, 1])
def test_two_processes_match_one(single, pair, zero):
    run = pair[zero]
    assert _losses(run) == pytest.approx(_losses(single), abs=2e-4)
    a, b = read_llmc_model(single / "model_00000006.bin")[1], read_llmc_model(run / "model_00000006.bin")[1]
    for k in a:
        # Adam magnifies fp32 reduction-order differences of near-zero gradients (rare tokens) a little
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=2e-4)
    if zero:  # ZeRO-1: each rank wrote its own optimizer shard
        assert (run / "state_00000006_00001.safetensors").exists()


def test_zero1_equals_ddp(pair):
    """Same gradients (gloo sums the same two pre-divided halves), same elementwise AdamW: the same weights,
    bit for bit (clipping is off: the norm is summed in another order; tests/test_zero.py checks it)."""
    a, b = read_llmc_model(pair[0] / "model_00000006.bin")[1], read_llmc_model(pair[1] / "model_00000006.bin")[1]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _losses(pair[0]) == _losses(pair[1])


def _optimizer_bytes(path) -> int:
    tensors = load_file(str(path))
    return sum(t.numel() * t.element_size() for k, t in tensors.items() if k.startswith("optim/") and t.dim())


def test_zero1_holds_half_the_optimizer_state_per_rank(pair):
    full = _optimizer_bytes(pair[0] / "state_00000006_00000.safetensors")
    shards = [_optimizer_bytes(pair[1] / f"state_00000006_{r:05d}.safetensors") for r in (0, 1)]
    assert sum(shards) == full  # the shards tile the moments (padding holds no state)
    assert max(shards) <= full / 2 + 1024


@pytest.mark.parametrize("zero", [0, 1])
def test_bf16_gradient_averaging_stays_close_to_fp32(tmp_path, text_shards, pair, zero):
    run = tmp_path / "bf16"
    res = torchrun(tiny_train_args(text_shards, run, 6, ["-z", zero, "--grad-reduce-dtype", "bf16", *NO_CLIP]))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    got, want = _losses(run), _losses(pair[zero])
    assert got != want  # it did average in bf16
    assert got == pytest.approx(want, abs=2e-2)


def test_kill_and_resume_at_two_processes_is_exact(tmp_path, text_shards):
    ref = tmp_path / "ref"
    assert torchrun(tiny_train_args(text_shards, ref, 8, ["-n", "4", "-z", "1"])).returncode == 0
    run = tmp_path / "killed"
    res = torchrun(tiny_train_args(text_shards, run, 8, ["-n", "4", "-z", "1", "-y", "1"]),
                   env_extra={"GPT2TRAIN_INJECT": "exit@6@1"})  # fmt: skip
    assert res.returncode != 0 and (run / "DONE_00000004").exists()
    res = torchrun(tiny_train_args(text_shards, run, 8, ["-n", "4", "-z", "1", "-y", "1"]))
    assert res.returncode == 0, res.stdout[-3000:]
    assert _log(run) == _log(ref)
    # a ZeRO-1 checkpoint cannot be resumed by another world size: a clear error names both
    code, _, err = run_cli(tiny_train_args(text_shards, run, 10, ["-n", "4", "-z", "1", "-y", "1"]))
    assert code != 0


def test_failing_rank_ends_the_job_naming_it(tmp_path, text_shards):
    t0 = time.time()
    res = torchrun(tiny_train_args(text_shards, tmp_path / "fail", 6), env_extra={"GPT2TRAIN_INJECT": "raise@2@1"})
    assert res.returncode != 0
    assert "injected failure on rank 1 at step 2" in res.stdout + res.stderr
    assert time.time() - t0 < 200


@pytest.mark.parametrize("zero", [0, 1])
def test_failed_checkpoint_write_on_one_rank_stops_every_rank(tmp_path, text_shards, zero):
    """A full disk on one rank's file: both ranks stop at once with the same line; step 2 stays the newest."""
    from gpt2train import rundir

    run = tmp_path / "fail"
    # -z 1: rank 1 writes its own optimizer shard, and that write fails; -z 0: rank 0's model file fails
    fault = "fail_in_state@4@1" if zero else "fail_in_model@4@0"
    failing = ("1", "state_00000004_00001.safetensors") if zero else ("0", "model_00000004.bin")
    t0 = time.time()
    res = torchrun(tiny_train_args(text_shards, run, 6, ["-n", "2", "-z", zero]),
                   env_extra={"GPT2TRAIN_INJECT": fault}, timeout=120)  # fmt: skip
    assert res.returncode != 0
    assert time.time() - t0 < 100  # not the 600 s process-group timeout
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2 and errors[0] == errors[1], res.stderr[-3000:]  # both ranks, the same line
    assert errors[0].startswith(f"error: rank {failing[0]} of 2: cannot write checkpoint file ")
    assert f"{failing[1]}: the disk is full; the checkpoint at step 2 is intact" in errors[0]
    assert rundir.latest_usable_step(str(run)) == 2 and not (run / "DONE_00000004").exists()
    assert not [n for n in os.listdir(run) if "00000004" in n or n.endswith(".tmp")], os.listdir(run)


# --optimizer muon (--recipe modern) under -z 1: each rank owns whole parameters (train/muon.py assign_owners)
MODERN_ARGS = ["--recipe", "modern", "-n", "3", "-v", "3"]


@pytest.fixture(scope="module")
def muon_pair(tmp_path_factory, text_shards):
    """2-process --recipe modern runs of 6 steps (checkpoints at 3 and 6) with -z 0 and -z 1."""
    runs = {zero: tmp_path_factory.mktemp(f"muon_z{zero}") for zero in (0, 1)}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # both at once: most of each is start-up
        results = pool.map(lambda z: torchrun(tiny_train_args(text_shards, runs[z], 6, [*MODERN_ARGS, "-z", z])),
                           runs)  # fmt: skip
        for res in results:
            assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return runs


def test_muon_zero1_equals_ddp(muon_pair):
    """Same all-reduced gradients, same per-matrix update on its owner, broadcast: the same weights bit for bit."""
    a = load_file(str(muon_pair[0] / "model_00000006.safetensors"))
    b = load_file(str(muon_pair[1] / "model_00000006.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _losses(muon_pair[0]) == _losses(muon_pair[1])


def _optim_tensors(path) -> dict[str, dict[int, int]]:
    """{state key: {parameter index: bytes}} of a state file's optimizer entries."""
    found: dict[str, dict[int, int]] = {}
    for name, t in load_file(str(path)).items():
        if name.startswith("optim/") and t.dim():
            _, idx, key = name.split("/", 2)
            found.setdefault(key, {})[int(idx)] = t.numel() * t.element_size()
    return found


def test_muon_zero1_each_rank_holds_its_own_share(muon_pair):
    full = _optim_tensors(muon_pair[0] / "state_00000006_00000.safetensors")
    assert not (muon_pair[0] / "state_00000006_00001.safetensors").exists()  # -z 0: rank 0's file alone
    shards = [_optim_tensors(muon_pair[1] / f"state_00000006_{r:05d}.safetensors") for r in (0, 1)]
    for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
        mine, theirs = shards[0].get(key, {}), shards[1].get(key, {})
        assert mine and theirs and not mine.keys() & theirs.keys(), key  # every rank owns some, none twice
        assert {**mine, **theirs} == full[key], key  # together: exactly the -z 0 state
        total = sum(full[key].values())
        assert max(sum(mine.values()), sum(theirs.values())) <= 0.6 * total, key  # about half each


def test_muon_zero1_resume_is_exact(tmp_path, text_shards, muon_pair):
    """Resume the -z 1 run from its step-3 checkpoint (each rank reads its own momentum): the same log bit for bit.
    (Killing a run part-way is covered by test_kill_and_resume_at_two_processes_is_exact; not repeated here.)"""
    run = tmp_path / "resumed"
    shutil.copytree(muon_pair[1], run)
    for name in os.listdir(run):  # forget the step-6 checkpoint: resume from step 3
        if "00000006" in name:
            os.remove(run / name)
    args = tiny_train_args(text_shards, run, 6, [*MODERN_ARGS, "-z", "1", "-y", "1"])
    res = torchrun(args)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "resumed from checkpoint at step 3" in res.stdout
    assert _log(run) == _log(muon_pair[1])
    assert _losses(run) == _losses(muon_pair[1])
    # a sharded checkpoint needs the world size that wrote it: one process stops with a clear error
    from gpt2train.errors import UserError
    from gpt2train.train import checkpoint as ckpt

    with pytest.raises(UserError, match="written by 2 processes with -z 1.*resume with 2 processes"):
        ckpt.state_file_for(str(run), 6, 0, 1, 1)


def test_fp8_at_two_processes_follows_one(tmp_path, text_shards):
    """Our FP8 linears and the FP8 logits under torchrun (FP8 emulated on the CPU): --fp8-scaling auto picks dynamic
    scaling for several processes, so each micro-batch is scaled by its own amaxes, as in one process of two
    micro-steps with dynamic scaling; the losses follow that run's (the sums' order differs)."""
    import json

    extra = ["--fp8", "1", "--fused-classifier", "1", "--fp8-classifier", "2", "-n", "4", "-z", "1", *NO_CLIP]
    one = tmp_path / "one"
    code, _, err = run_cli(tiny_train_args(text_shards, one, 4, [*extra, "--fp8-scaling", "dynamic"]))
    assert code == 0, err
    two = tmp_path / "two"
    res = torchrun(tiny_train_args(text_shards, two, 4, extra))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    train = json.loads((two / "config.json").read_text())["train"]
    assert (train["fp8"], train["fp8_scaling"], train["fp8_classifier"]) == (1, "dynamic", 2)
    assert _losses(two) == pytest.approx(_losses(one), abs=2e-4)  # (bf16 linears: 6e-3 away by step 4)
