"""-b auto on the CPU, TensorBoard event files, -lg lines, config.json."""

import json

import pytest

from gpt2train.errors import UserError
from gpt2train.train.batch_size import candidate_sizes
from tests.helpers import TINY, run_cli


def test_candidate_sizes_divide_total_batch():
    assert candidate_sizes(4096, 64, 2) == [32, 16, 8, 4, 2, 1]
    assert candidate_sizes(3 * 64 * 5, 64, 1) == [15, 5, 3, 1]
    with pytest.raises(UserError, match="-d 1000"):
        candidate_sizes(1000, 64, 1)


def test_auto_batch_on_cpu_divides_d_and_run_dir_has_tensorboard(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    args = ["train", "-i", text_shards["train"], "-j", text_shards["val"], "-o", run, *TINY,
            "-b", "auto", "-t", "32", "-d", str(3 * 32), "-x", "2", "-v", "100", "-s", "0", "-lg", "1"]  # fmt: skip
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "-b auto: B=3" in out  # largest divisor of -d/T = 3 that is <= 4
    assert "gpu: none (running on the CPU)" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["batch_size"] == 0 and cfg["grad_accum"] == 1
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
