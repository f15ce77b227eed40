"""Instability guards: NaN losses and gradient spikes are skipped, logged, and leave the parameters alone."""

import json
import math

import torch

from gpt2train.formats.llmc_model import read_llmc_model
from gpt2train.train.guards import OutlierDetector
from tests.helpers import run_cli, tiny_train_args


def test_outlier_detector_zscores():
    det = OutlierDetector(window=4)
    assert all(math.isnan(det.update(v)) for v in [1.0, 2.0, 1.0, 2.0])
    assert det.update(1.5) == 0.0
    z = det.update(10.0, threshold=3.0)
    assert z > 3.0 and 10.0 not in det.values  # an outlier does not widen the window
    assert math.isnan(det.update(float("nan"))) and all(math.isfinite(v) for v in det.values)


def _events(run, kind):
    with open(run / "progress.jsonl") as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


def _weights(run, step):
    return read_llmc_model(run / f"model_{step:08d}.bin")[1]


def test_nan_loss_is_skipped_and_parameters_unchanged(tmp_path, text_shards, capsys, monkeypatch):
    monkeypatch.setenv("GPT2TRAIN_INJECT", "nan_loss@3")
    run = tmp_path / "nan"
    code, out, err = run_cli(tiny_train_args(text_shards, run, 5, ["-n", "1", "-v", "100"]), capsys)
    assert code == 0, err
    assert "skipping update of step 3: non-finite loss" in out
    skips = _events(run, "skip")
    assert [s["step"] for s in skips] == [3]
    before, after = _weights(run, 3), _weights(run, 4)  # model after 3 updates, then after the skipped step 3
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(_weights(run, 4)["transformer.wte.weight"], _weights(run, 5)["transformer.wte.weight"])


def test_gradient_spike_is_skipped_by_grad_zscore(tmp_path, text_shards, capsys, monkeypatch):
    monkeypatch.setenv("GPT2TRAIN_INJECT", "grad_spike@7")
    run = tmp_path / "spike"
    args = ["-n", "1", "-v", "100", "-sg", "3", "--outlier-window", "5"]
    code, out, err = run_cli(tiny_train_args(text_shards, run, 9, args), capsys)
    assert code == 0, err
    skips = _events(run, "skip")
    assert [s["step"] for s in skips] == [7] and skips[0]["zgrad"] > 3
    assert "grad z-score" in skips[0]["reason"]
    before, after = _weights(run, 7), _weights(run, 8)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_too_many_skips_in_a_row_stop_with_a_clear_error(tmp_path, text_shards, capsys, monkeypatch):
    monkeypatch.setenv("GPT2TRAIN_INJECT", "nan_loss@2,nan_loss@3")
    run = tmp_path / "stop"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 6, ["--max-skips", "2"]), capsys)
    assert code == 1
    assert err.strip().startswith("error: 2 updates in a row were skipped (last at step 3")
