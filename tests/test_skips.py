"""Never exit 0 after training nothing: every update skipped, or --max-skips (default 10) in a row, is an error;
a resumed run that is already complete says so."""

from gpt2train.config import TrainConfig
from tests.helpers import run_cli, tiny_train_args


def _nan_at(steps) -> str:
    return ",".join(f"nan_loss@{s}" for s in steps)


def test_a_run_that_skipped_every_update_fails(tmp_path, text_shards, capsys, monkeypatch):
    monkeypatch.setenv("GPT2TRAIN_INJECT", _nan_at(range(3)))
    code, out, err = run_cli(tiny_train_args(text_shards, tmp_path / "run", 3), capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: every update of steps 0..2 was skipped (last: non-finite"), (
        err
    )
    assert out.count("skipping update of step") == 3


def test_default_max_skips_stops_after_ten_in_a_row(tmp_path, text_shards, capsys, monkeypatch):
    assert TrainConfig().max_skips == 10
    monkeypatch.setenv("GPT2TRAIN_INJECT", _nan_at(range(1, 14)))
    code, out, err = run_cli(tiny_train_args(text_shards, tmp_path / "run", 14), capsys)
    assert code == 1
    assert "error: 10 updates in a row were skipped (last at step 10: non-finite loss" in err
    assert "--max-skips 10); stopping" in err
    assert "resume with -y 1" in err and "step   12/14" not in out


def test_max_skips_zero_never_stops_but_one_good_update_is_enough(tmp_path, text_shards, capsys, monkeypatch):
    monkeypatch.setenv("GPT2TRAIN_INJECT", _nan_at(range(1, 12)))
    code, out, err = run_cli(tiny_train_args(text_shards, tmp_path / "run", 12, ["--max-skips", "0"]), capsys)
    assert code == 0, err
    assert out.count("skipping update of step") == 11


def test_resuming_a_complete_run_says_so(tmp_path, text_shards, capsys):
    args = tiny_train_args(text_shards, tmp_path / "run", 2, ["-n", "2"])
    assert run_cli(args, capsys)[0] == 0
    code, out, err = run_cli([*args, "-y", "1"], capsys)
    assert code == 0, err
    assert f"nothing to train: the run in {tmp_path / 'run'} is already complete at step 2 of 2" in out
    assert "done:" not in out
