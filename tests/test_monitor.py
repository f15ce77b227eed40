"""-b auto on the CPU, TensorBoard event files, -lg lines, config.json."""

import json
import os
import sys
import types

import pytest

from gpt2train.errors import UserError
from gpt2train.train.batch_size import candidate_sizes
from tests.helpers import TINY, resume_copy, run_cli, tiny_train_args


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


def _scalar_steps(run) -> dict:
    """{tag: [steps]} of every scalar in the run dir's TensorBoard event files, as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_shows_each_step_once_after_a_kill_and_resume(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    args = tiny_train_args(text_shards, run, 8, ["-n", "4"])
    assert run_cli(args, capsys)[0] == 0
    # as if killed after logging steps 4..7 but before the checkpoint of step 8: resume from step 4
    resumed = resume_copy(run, tmp_path / "resumed", 8, args)
    code, out, err = run_cli(resumed, capsys)
    assert code == 0 and "resumed from checkpoint at step 4" in out, err
    assert len([n for n in os.listdir(tmp_path / "resumed") if n.startswith("events.out.tfevents")]) == 2
    steps = _scalar_steps(tmp_path / "resumed")
    assert steps["train/loss"] == list(range(8))  # steps 4..7 once, from the resumed run
    assert steps["val/loss"] == [0, 4, 8]  # the val loss of step 4 (not recomputed on resume) is kept
    assert steps == _scalar_steps(run)
    # a fresh run (no -y 1) in the same dir starts over, as main.log does: the earlier events are hidden
    fresh = resumed[:-2]  # without resume_copy's "-y 1"
    fresh[fresh.index("-x") + 1] = "2"
    assert run_cli(fresh, capsys)[0] == 0
    assert _scalar_steps(tmp_path / "resumed")["train/loss"] == [0, 1]


class _FakeWandb(types.ModuleType):
    """Stands in for wandb: records init's arguments."""

    def __init__(self):
        super().__init__("wandb")
        self.inits = []

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return types.SimpleNamespace(log=lambda values, step: None, finish=lambda: None)


def test_wandb_resumes_the_run_id_kept_in_the_run_dir(tmp_path, text_shards, capsys, monkeypatch):
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = tmp_path / "run"
    args = tiny_train_args(text_shards, run, 4, ["-n", "2", "--wandb", "proj"])
    assert run_cli(args, capsys)[0] == 0
    run_id = (run / "wandb_id").read_text().strip()
    assert fake.inits[0]["id"] == run_id and fake.inits[0]["resume"] == "allow" and fake.inits[0]["project"] == "proj"
    resumed = resume_copy(run, tmp_path / "resumed", 4, args)
    assert run_cli(resumed, capsys)[0] == 0
    assert fake.inits[1]["id"] == run_id  # the same W&B run goes on
    assert run_cli(args, capsys)[0] == 0  # a fresh run (no -y 1) in the same dir is a new W&B run
    assert fake.inits[2]["id"] != run_id and (run / "wandb_id").read_text().strip() == fake.inits[2]["id"]
