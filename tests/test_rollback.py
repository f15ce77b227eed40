"""--on-max-skips rollback: K skipped updates in a row reload the newest checkpoint and drop the bad batches."""

import json
import math

import pytest
from safetensors.torch import save_file

from gpt2train import rundir
from gpt2train.train import checkpoint as ckpt
from tests.helpers import run_cli, tiny_train_args

ROLLBACK = ["-n", "4", "-v", "4", "--max-skips", "2", "--on-max-skips", "rollback"]


def _records(run, kind):
    with open(run / "progress.jsonl") as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


def _skip_batches_in_checkpoint(run, step, steps_to_skip):
    """Edit a checkpoint so that resuming it goes past the next ``steps_to_skip`` steps of data."""
    meta, tensors = ckpt.load_state(rundir.state_path(str(run), step, 0))
    meta["loader"]["position"]["seq_pos"] += steps_to_skip * meta["loader"]["seqs_per_step"]
    save_file(tensors, rundir.state_path(str(run), step, 0), metadata={"meta": json.dumps(meta)})
    ckpt.write_done(str(run), step, 1, 0, 1)  # the state file's size changed


def test_rollback_equals_a_run_that_never_saw_the_bad_batches(tmp_path, text_shards, capsys, monkeypatch):
    # NaN losses at steps 4 and 5: the second skip rolls back to the checkpoint at step 4
    monkeypatch.setenv("GPT2TRAIN_INJECT", "nan_loss@4,nan_loss@5")
    run = tmp_path / "rollback"
    code, out, err = run_cli(tiny_train_args(text_shards, run, 8, ROLLBACK), capsys)
    assert code == 0, err
    assert "rollback 1/3: 2 updates in a row were skipped (steps 4..5" in out
    assert "rolled back to the checkpoint at step 4, dropping the batches of steps 4..5" in out
    [event] = _records(run, "rollback")
    assert event["to_step"] == 4 and event["dropped_steps"] == [4, 5] and len(event["reasons"]) == 2
    losses = [r["loss"] for r in _records(run, "train")]
    assert [r["step"] for r in _records(run, "train")] == list(range(8)) and all(map(math.isfinite, losses))

    # the same run without those batches: stopped at step 4, its checkpoint moved past two steps of data
    monkeypatch.setenv("GPT2TRAIN_INJECT", "raise@4")
    ref = tmp_path / "ref"
    with pytest.raises(RuntimeError, match="injected failure"):
        run_cli(tiny_train_args(text_shards, ref, 8, ROLLBACK), capsys)
    _skip_batches_in_checkpoint(ref, 4, 2)
    monkeypatch.delenv("GPT2TRAIN_INJECT")
    code, _, err = run_cli(tiny_train_args(text_shards, ref, 8, [*ROLLBACK, "-y", "1"]), capsys)
    assert code == 0, err
    assert (run / "main.log").read_text() == (ref / "main.log").read_text()
    assert (run / "model_00000008.bin").read_bytes() == (ref / "model_00000008.bin").read_bytes()


def test_rollback_replays_the_good_steps_before_the_bad_ones(tmp_path, text_shards, capsys, monkeypatch):
    clean = tmp_path / "clean"
    assert run_cli(tiny_train_args(text_shards, clean, 8, ROLLBACK), capsys)[0] == 0
    # bad steps 5 and 6 after the checkpoint at 4: step 4 is re-run on its own batch, then 5 and 6 are dropped
    monkeypatch.setenv("GPT2TRAIN_INJECT", "nan_loss@5,nan_loss@6")
    run = tmp_path / "run"
    code, out, err = run_cli(tiny_train_args(text_shards, run, 8, ROLLBACK), capsys)
    assert code == 0, err
    assert "dropping the batches of steps 5..6" in out
    log, ref = (run / "main.log").read_text().splitlines(), (clean / "main.log").read_text().splitlines()
    upto_4 = [ln for ln in ref if int(ln.split()[0][2:]) <= 4]
    assert log[: len(upto_4)] == upto_4  # steps 0..4 as in the clean run
    assert log[len(upto_4)] != ref[len(upto_4)]  # step 5 trains on the batch of the old step 7
    assert [r["step"] for r in _records(run, "train")] == list(range(8))


def test_rollbacks_are_bounded(tmp_path, text_shards, capsys, monkeypatch):
    monkeypatch.setenv("GPT2TRAIN_INJECT", "nan_loss@2,nan_loss@3,nan_loss@4,nan_loss@5")
    args = ["-n", "2", "--max-skips", "2", "--on-max-skips", "rollback", "--max-rollbacks", "1"]
    code, out, err = run_cli(tiny_train_args(text_shards, tmp_path / "run", 8, args), capsys)
    assert code == 1
    assert "rollback 1/1" in out
    assert err.strip().startswith("error: 2 updates in a row were skipped (steps 4..5") and "after 1 rollback(s)" in err


def test_rollback_needs_checkpoints(tmp_path, text_shards, capsys):
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "a", 4, ["--max-skips", "2",
                                                                                   "--on-max-skips", "rollback"]),
                           capsys)  # fmt: skip
    assert code == 1 and "--on-max-skips rollback needs --max-skips K, -o DIR and -n N" in err
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "b", 4, ["--on-max-skips", "retry"]), capsys)
    assert code == 1 and "--on-max-skips 'retry': use stop or rollback" in err
