"""--deterministic 1: the flag runs, is recorded, two runs are bit-identical, and it leaves no global state."""

import json
import os

import pytest
import torch

from gpt2train import rundir
from gpt2train.errors import UserError
from gpt2train.train import checkpoint as ckpt
from gpt2train.train import determinism
from tests.helpers import run_cli, tiny_train_args


def _progress_losses(run):
    with open(run / "progress.jsonl") as f:
        return [r["loss"] for r in map(json.loads, f) if r["kind"] == "train"]


def test_deterministic_runs_are_bit_identical_and_recorded(tmp_path, text_shards, capsys):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        code, out, err = run_cli(tiny_train_args(text_shards, run, 4, ["-n", "4", "--deterministic", "1"]),
                                 capsys)  # fmt: skip
        assert code == 0, err
        assert "| deterministic" in out and " on " in out.split("| deterministic")[1].splitlines()[0]
    a, b = _progress_losses(runs[0]), _progress_losses(runs[1])
    assert len(a) == 4 and a == b  # floats from JSON: bit-for-bit equal
    assert (runs[0] / "main.log").read_text() == (runs[1] / "main.log").read_text()
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["train"]["deterministic"] == 1 and config["determinism"]["enabled"] is True
    meta, _ = ckpt.load_state(rundir.state_path(str(runs[0]), 4, 0))
    assert meta["determinism"]["enabled"] is True
    assert not torch.are_deterministic_algorithms_enabled()  # switched back after the run
    # resuming (here: the finished run's last checkpoint) in the other mode is reported as breaking exactness
    code, out, err = run_cli(tiny_train_args(text_shards, runs[0], 4, ["-n", "4", "-y", "1"]), capsys)
    assert code == 0, err
    assert "warning: resuming with changed settings (deterministic)" in out


def test_bad_flag_values_are_one_line_errors(tmp_path, text_shards, capsys):
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "x", 2, ["--deterministic", "2"]), capsys)
    assert code == 1 and err.startswith("error: --deterministic 2: use 0 (off) or 1 (on)")
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "y", 2, ["--deterministic", "1",
                                                                                   "--attention", "cudnn"]), capsys)  # fmt: skip
    assert code == 1 and "cuDNN attention has no deterministic backward" in err


def test_mode_switches_on_and_back():
    before = torch.backends.cudnn.benchmark
    with determinism.mode(True, "auto") as info:
        assert (
            torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
        )
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert info["enabled"] is True
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark == before


def test_cublas_workspace_is_set_before_cuda_or_refused(monkeypatch):
    monkeypatch.delenv(determinism.CUBLAS_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    determinism.prepare_environment(0, "auto")
    assert determinism.CUBLAS_ENV not in os.environ  # off: nothing touched
    determinism.prepare_environment(1, "auto")
    assert os.environ[determinism.CUBLAS_ENV] == ":4096:8"
    monkeypatch.setenv(determinism.CUBLAS_ENV, ":0:0")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # too late to change it
    with pytest.raises(UserError, match="CUDA was initialised before CUBLAS_WORKSPACE_CONFIG"):
        determinism.prepare_environment(1, "auto")
    monkeypatch.setenv(determinism.CUBLAS_ENV, ":16:8")  # already a reproducible setting: fine
    determinism.prepare_environment(1, "auto")
