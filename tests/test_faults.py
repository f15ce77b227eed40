"""Nothing lost: full disk, retention, pre-flight, SIGUSR1, damaged model files (docs/faults.md)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import torch

from gpt2train import rundir
from gpt2train.errors import UserError
from gpt2train.train import checkpoint as ckpt
from gpt2train.train import preflight
from tests.helpers import cli_subprocess, run_cli, tiny_train_args


def _log(path):
    with open(os.path.join(path, "main.log")) as f:
        return f.read().splitlines()


def _err_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _no_partial_files(run, step):
    names = os.listdir(run)
    assert not [n for n in names if n.endswith(".tmp")], names
    assert not [n for n in names if f"{step:08d}" in n], names


def _fails_with_checkpoint_2(monkeypatch, capsys, shards, run, fault) -> str:
    """Train 4 steps with -n 2 while ``fault`` = (owner, name, replacement) stands in: the run must stop with
    one error line (returned) and leave the checkpoint at step 2 as the newest usable one. The fault is undone."""
    owner, name, replacement = fault
    with monkeypatch.context() as m:
        m.setattr(owner, name, replacement)
        code, _, err = run_cli(tiny_train_args(shards, run, 4, ["-n", "2"]), capsys)
    assert code == 1
    line = _err_line(err)
    assert rundir.latest_usable_step(str(run)) == 2
    return line


def _resumes_from_step_2(capsys, shards, run, extra: list | None = None) -> str:
    """`-y 1` goes on from the checkpoint at step 2 and finishes step 4; returns its stdout."""
    code, out, err = run_cli(tiny_train_args(shards, run, 4, ["-n", "2", "-y", "1", *(extra or [])]), capsys)
    assert code == 0, err
    assert "resumed from checkpoint at step 2" in out and rundir.latest_usable_step(str(run)) == 4
    return out


# -- full disk -----------------------------------------------------------------------------------------
def test_disk_full_in_model_write_keeps_previous_checkpoint(tmp_path, text_shards, capsys, monkeypatch):
    """ENOSPC simulated in-process (runs everywhere): half the model file written, then the write fails."""
    import gpt2train.formats.llmc_model as llmc

    real = llmc.write_llmc_model

    def full_disk(path, *args, **kwargs):
        if "00000004" not in str(path):
            return real(path, *args, **kwargs)
        with open(str(path) + ".tmp", "wb") as f:
            f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    run = tmp_path / "run"
    line = _fails_with_checkpoint_2(monkeypatch, capsys, text_shards, run, (llmc, "write_llmc_model", full_disk))
    assert "model_00000004.bin: the disk is full; the checkpoint at step 2 is intact" in line, line
    _no_partial_files(run, 4)
    _resumes_from_step_2(capsys, text_shards, run)


def test_out_of_gpu_memory_is_one_line_and_keeps_checkpoints(tmp_path, text_shards, capsys, monkeypatch):
    """torch.OutOfMemoryError raised in step 3 (as CUDA would): a one-line error naming the settings and
    the flags that make room; the checkpoint at step 2 and the log up to step 3 stay, and the run resumes."""
    from gpt2train.train import loop

    real = loop.train_step

    def oom_at_step_3(run, rc, step):
        if step == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 300.00 MiB.")
        return real(run, rc, step)

    run = tmp_path / "run"
    line = _fails_with_checkpoint_2(monkeypatch, capsys, text_shards, run, (loop, "train_step", oom_at_step_3))
    assert "out of GPU memory at step 3 with -b 4 -t 32 -r 1 -w 1" in line, line
    assert "lower -b" in line and "raise -r to 2 or 3" in line and "-w 0" in line and "-b auto" in line, line
    assert f"the checkpoints in {run} are untouched (resume with -y 1)" in line, line
    assert any(ln.startswith("s:2 ") for ln in _log(run)), _log(run)
    out = _resumes_from_step_2(capsys, text_shards, run, ["-b", "2"])
    assert "warning: resuming with changed settings (batch_size)" in out, out


@pytest.fixture
def small_tmpfs(tmp_path):
    """A tmpfs mount (root only); skips where mounting is not allowed."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()

    def mount(size_bytes):
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mnt)],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        return mnt

    yield mount
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_disk_full_on_a_real_small_filesystem(tmp_path, text_shards, capsys, small_tmpfs):
    """A tmpfs with room for 3.5 checkpoints: pre-flight passes, the 4th checkpoint (step 4) fails with ENOSPC."""
    sizes = preflight.checkpoint_bytes(3323648, "fp32", True)
    mnt = small_tmpfs(int(3.5 * (sizes["model"] + sizes["state"])))
    run = mnt / "run"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 4, ["-n", "1"]), capsys)
    assert code == 1
    line = _err_line(err)
    assert "00000004" in line and "the disk is full; the checkpoint at step 3 is intact" in line, line
    _no_partial_files(run, 4)
    assert rundir.latest_usable_step(str(run)) == 3
    moved = tmp_path / "moved"  # more room elsewhere: the run goes on from step 3
    shutil.copytree(run, moved)
    code, out, err = run_cli(tiny_train_args(text_shards, moved, 4, ["-n", "1", "-y", "1"]), capsys)
    assert code == 0, err
    assert "resumed from checkpoint at step 3" in out


# -- pre-flight ---------------------------------------------------------------------------------------
def test_preflight_refuses_an_output_dir_without_room(tmp_path, text_shards, capsys, monkeypatch):
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "run", 4, ["-n", "2"]), capsys)
    assert code == 1
    line = _err_line(err)
    assert line.startswith(f"error: -o {tmp_path / 'run'}: 1.0 MiB free, but 3 checkpoint(s)") and "GiB" not in line
    assert "model file 12.7 MiB" in line, line


def test_checkpoint_size_estimate_matches_the_files(tmp_path):
    sizes = preflight.checkpoint_bytes(1000, "bf16", True)
    assert sizes["model"] == 2000 and sizes["state"] == 12000 + (1 << 20)
    with pytest.raises(UserError, match="-o"):
        preflight.check_output_space(str(tmp_path), 10**15, "fp32", True, 1)
    preflight.check_output_space(str(tmp_path), 1000, "fp32", True, 1)


# -- retention ----------------------------------------------------------------------------------------
def _fake_checkpoint(out, step, damaged=False):
    from gpt2train.config import ModelConfig
    from gpt2train.formats.llmc_model import write_llmc_model
    from gpt2train.model import build_model

    cfg = ModelConfig(n_layer=1, n_head=1, n_embd=8, vocab_size=16, max_seq_len=4)
    write_llmc_model(rundir.model_path(out, step), build_model(cfg, 0).state_dict(), cfg)
    import torch
    from safetensors.torch import save_file

    detector = {"values": [], "skipped_in_a_row": 0}
    loader = {"position": {"epoch": 0, "shard_pos": 0, "seq_pos": 0}, "seed": 42, "shuffle": True,
              "seqs_per_step": 1, "seq_len": 4, "shards": [["train.bin", 100]]}  # fmt: skip
    meta = {"step": step, "loader": loader, "detectors": {"loss": detector, "grad": detector}, "world_size": 1,
            "config": {}, "optimizer": {"param_groups": [], "scalars": {}}}  # fmt: skip
    save_file({"rng/cpu": torch.get_rng_state()}, rundir.state_path(out, step, 0), metadata={"meta": json.dumps(meta)})
    ckpt.write_done(out, step, 1, 0, 1)
    if damaged:
        os.truncate(rundir.model_path(out, step), 100)


def test_prune_keeps_newest_and_majors(tmp_path):
    out = str(tmp_path)
    for s in (2, 4, 6, 8, 10, 12):
        _fake_checkpoint(out, s)
    assert rundir.prune(out, 0, 0) == []  # -nk 0: keep all
    assert sorted(rundir.prune(out, 1, 4)) == [2, 6]  # the newest minor (10) and the majors (4, 8, 12)
    assert rundir.complete_steps(out) == [12, 10, 8, 4]
    assert rundir.latest_usable_step(out) == 12  # the newest is a major one, and kept
    assert sorted(rundir.prune(out, 1, 0)) == [4, 8, 10]
    assert rundir.complete_steps(out) == [12]


def test_prune_never_deletes_the_newest_usable_checkpoint(tmp_path):
    out = str(tmp_path)
    for s in (2, 4, 6):
        _fake_checkpoint(out, s, damaged=s == 6)  # step 6's DONE exists but its model file is cut short
    assert rundir.prune(out, 1, 0) == [2]  # 4 is the one resume would use
    assert rundir.latest_usable_step(out, warn=lambda m: None) == 4


# -- damaged model file of the newest checkpoint --------------------------------------------------------
def test_damaged_model_file_falls_back_to_previous(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 4, ["-n", "2"]), capsys)
    assert code == 0, err
    model = run / "model_00000004.bin"
    good = model.read_bytes()
    model.write_bytes(good[:-4096])  # truncated: the DONE record's size does not match
    assert rundir.latest_usable_step(str(run), warn=lambda m: None) == 2
    model.write_bytes(b"\xff" * 64 + good[64:])  # same length, header overwritten
    code, out, err = run_cli(tiny_train_args(text_shards, run, 4, ["-n", "2", "-y", "1"]), capsys)
    assert code == 0, err
    assert "checkpoint at step 4 is unusable" in out and "not an llm.c model file" in out
    assert "resumed from checkpoint at step 2" in out
    assert model.read_bytes() == good  # rewritten by the resumed run, identical to the original


# -- SIGUSR1 -------------------------------------------------------------------------------------------
def test_sigusr1_writes_a_checkpoint_and_goes_on(tmp_path, text_shards):
    run = tmp_path / "usr1"
    proc = cli_subprocess(tiny_train_args(text_shards, run, 40, ["-n", "1000", "-v", "1000"]))
    deadline = time.time() + 120
    while time.time() < deadline and not any(ln.startswith("s:2 trl") for ln in _log_or_empty(run)):
        time.sleep(0.02)
    proc.send_signal(signal.SIGUSR1)
    while time.time() < deadline and not rundir.complete_steps(str(run)):
        time.sleep(0.02)
    written = rundir.complete_steps(str(run))
    # stop early to save time (SIGTERM writes its own checkpoint), once a step after the checkpoint is logged
    while time.time() < deadline and written and not any(ln.startswith(f"s:{written[0]} trl") for ln in _log(run)):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert len(written) == 1 and 3 <= written[0] < 40, written
    assert f"SIGUSR1: writing a checkpoint at step {written[0]} and going on" in out
    assert f"step {written[0] + 1:4d}/40" in out  # it trained on after the checkpoint
    assert rundir.checkpoint_problem(str(run), written[0]) is None


def _log_or_empty(run):
    return _log(run) if os.path.exists(run / "main.log") else []


def test_resume_drops_a_log_line_cut_short_by_a_crash(tmp_path):
    from gpt2train.train.runlog import RunLog

    (tmp_path / "main.log").write_text("s:0 tel:10.9000\ns:0 trl:10.9 lr:0.000300 norm:1.00\ns:1 tr")
    RunLog(str(tmp_path), active=True).trim_after(1)
    assert _log(tmp_path) == ["s:0 tel:10.9000", "s:0 trl:10.9 lr:0.000300 norm:1.00"]
