"""Optional parts used without their extra: a one-line error naming the extra to install, exit 1, nothing made."""

from __future__ import annotations

import sys

import pytest

from gpt2train.errors import UserError
from gpt2train.optional import require
from tests.helpers import run_cli, tiny_train_args


def _missing(monkeypatch, *modules):
    """Make ``import module`` fail as if the package were not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and len([ln for ln in lines if ln.startswith("error:")]) == 1, err
    return next(ln for ln in lines if ln.startswith("error:"))


def test_require_names_the_extra(monkeypatch):
    assert require("json", "data", "x").dumps([1]) == "[1]"
    _missing(monkeypatch, "datasets")
    with pytest.raises(UserError, match=r"^reading it needs the package datasets: pip install 'gpt2train\[data\]'$"):
        require("datasets", "data", "reading it")


def test_prepare_fineweb_without_datasets(tmp_path, monkeypatch, capsys):
    _missing(monkeypatch, "datasets")
    out = tmp_path / "fw"
    code, _, err = run_cli(["prepare", "fineweb-edu", "-o", out, "--no-progress"], capsys)
    line = _one_error_line(err)
    assert code == 1 and line == "error: prepare fineweb-edu needs the package datasets: pip install 'gpt2train[data]'"
    assert not out.exists()


def test_prepare_text_from_a_hub_dataset_without_datasets(tmp_path, monkeypatch, capsys):
    _missing(monkeypatch, "datasets")
    argv = ["prepare", "text", "--input", "someone/corpus", "--val-docs", "1", "-o", tmp_path / "o", "--no-progress"]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and "pip install 'gpt2train[data]'" in _one_error_line(err)
    assert "someone/corpus" in err


def test_parquet_input_without_pyarrow(tmp_path, monkeypatch, capsys):
    _missing(monkeypatch, "pyarrow", "pyarrow.parquet")
    src = tmp_path / "docs.parquet"
    src.write_bytes(b"PAR1")
    code, _, err = run_cli(["prepare", "text", "--input", src, "-o", tmp_path / "o", "--no-progress"], capsys)
    line = _one_error_line(err)
    assert code == 1 and str(src) in line and "needs the package pyarrow: pip install 'gpt2train[data]'" in line


def test_train_wandb_without_wandb(tmp_path, monkeypatch, capsys, text_shards):
    _missing(monkeypatch, "wandb")
    run = tmp_path / "run"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 2, ["--wandb", "proj"]), capsys)
    assert code == 1
    assert _one_error_line(err) == "error: --wandb needs the package wandb: pip install 'gpt2train[wandb]'"
    assert not list(run.glob("events.out.tfevents.*"))  # refused before TensorBoard wrote anything


def test_train_fp8_torchao_without_torchao(tmp_path, text_shards, monkeypatch, capsys):
    _missing(monkeypatch, "torchao", "torchao.float8")
    run = tmp_path / "run"
    code, _, err = run_cli(
        tiny_train_args(text_shards, run, 1, ["--fp8", "1", "--fp8-impl", "torchao-rowwise"]), capsys
    )
    line = _one_error_line(err)
    assert code == 1 and line == (
        "error: --fp8-impl torchao-rowwise needs the package torchao: pip install 'gpt2train[fp8]'"
    ), line
    assert not run.exists()
