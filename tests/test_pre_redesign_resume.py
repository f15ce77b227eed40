"""``-y 1`` resumes a checkpoint written before the redesign (issue 20) and continues it exactly.

tests/data/pre_redesign/ holds, for the classic and the modern recipe, the checkpoint at step 3 of a 6-step CPU
run written by commit df779a8 (made by make_fixture.py there; README.md says how), and expected.json: the
main.log lines and the progress.jsonl losses of that run's uninterrupted steps after the checkpoint. A resume
with today's code must reproduce them bit for bit (CPU fp32 is deterministic, on one thread).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import progress_losses, run_cli, torch_threads

FIXTURE = Path(__file__).parent / "data" / "pre_redesign"
# the fixture's shape: 2 layers of 16 channels, vocabulary 128 (its shards hold GPT-2 ids modulo 128)
SHAPE = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--max-seq-len", "32", "--vocab-size", "128"]
RECIPE = {"classic": [], "modern": ["--recipe", "modern"]}


@pytest.mark.parametrize("recipe", ["classic", "modern"])
def test_resume_pre_redesign_checkpoint(tmp_path, capsys, recipe):
    shards, run = tmp_path / "shards", tmp_path / "run"
    shutil.copytree(FIXTURE / "shards", shards)
    shutil.copytree(FIXTURE / recipe, run)
    log_before = (run / "main.log").read_text().splitlines()
    expected = json.loads((FIXTURE / "expected.json").read_text())[recipe]
    args = ["train", "-i", shards / "train.bin", "-j", shards / "val.bin", "-o", run, *SHAPE, "-b", "4", "-t", "32",
            "-d", "256", "-x", "6", "-n", "3", "-v", "4", "-m", "2", "-s", "0", "-l", "3e-3", "--device", "cpu",
            *RECIPE[recipe], "-y", "1"]  # fmt: skip
    with torch_threads(1):  # as the fixture was made
        code, out, err = run_cli(args, capsys)
    assert code == 0, out + err
    assert f"resumed from checkpoint at step 3 ({run / 'state_00000003_00000.safetensors'})" in out
    assert "warning" not in out + err  # no changed setting, no unusable checkpoint
    assert (run / "main.log").read_text().splitlines() == log_before + expected["main_log_after"]
    losses = progress_losses(run)
    assert {s: losses[("train", int(s))] for s in expected["train_loss"]} == expected["train_loss"]
    assert {s: losses[("val", int(s))] for s in expected["val_loss"]} == expected["val_loss"]
