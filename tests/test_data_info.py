"""gpt2train data info: lists shards, splits, totals; a bad file makes it exit non-zero."""

from __future__ import annotations

import json

import numpy as np

from gpt2train.cli import main
from gpt2train.data.info import shard_report
from gpt2train.formats.shards import write_shard


def _make(tmp_path):
    write_shard(tmp_path / "x_val_000000.bin", np.arange(100))
    write_shard(tmp_path / "x_train_000001.bin", np.arange(300))
    write_shard(tmp_path / "x_train_000002.bin", np.arange(50))
    return tmp_path


def test_info_ok(tmp_path, capsys):
    d = _make(tmp_path)
    rep = shard_report(str(d))
    assert rep["bad"] == 0 and rep["tokens"] == {"val": 100, "train": 350, "?": 0}
    assert [r["split"] for r in rep["shards"]] == ["val", "train", "train"]
    assert main(["data", "info", str(d)]) == 0
    out = capsys.readouterr().out
    assert "3 shards, 450 tokens (val 100, train 350); 0 bad" in out
    assert main(["data", "info", str(d / "*train*.bin"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_tokens"] == 350


def test_info_bad_files(tmp_path, capsys):
    d = _make(tmp_path)
    raw = (d / "x_train_000002.bin").read_bytes()
    (d / "x_train_000002.bin").write_bytes(raw[:-7])  # truncated
    (d / "junk_train_000003.bin").write_bytes(b"\0" * 2000)  # wrong magic
    rep = shard_report(str(d))
    assert rep["bad"] == 2 and rep["tokens"]["train"] == 300
    assert main(["data", "info", str(d)]) == 1
    out = capsys.readouterr().out
    assert "BAD: token shard" in out and "truncated" in out and "not an llm.c token shard" in out


def test_info_nothing_matches(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "none")]) == 1
    assert "error:" in capsys.readouterr().err
