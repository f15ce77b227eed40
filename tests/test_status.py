"""gpt2train status on hand-made run dirs: progress.jsonl timing, llm.c main.log only, checkpoints."""

from __future__ import annotations

import json
import os

import pytest

from gpt2train.runinfo import format_status, list_checkpoints, run_status

T0 = 1_700_000_000.0


def write_progress(path, steps, start_time, dt=2.0, max_steps=100, mode="w"):
    with open(path, mode) as f:
        for i, s in enumerate(steps):
            rec = {
                "step": s,
                "max_steps": max_steps,
                "loss": 5.0 - s / 100,
                "lr": 1e-4,
                "norm": 0.9,
                "ms": 1900.0,
                "tok_s": 260000.0,
                "mfu": 0.41,
                "time": start_time + i * dt,
            }
            if s % 10 == 0:
                rec["val_loss"] = 5.1 - s / 100
            f.write(json.dumps(rec) + "\n")


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    lines = []
    for s in range(30):
        if s % 10 == 0:
            lines += [f"s:{s} tel:{5.1 - s / 100:.4f}", f"s:{s} eval:{0.25:.4f}"]
        lines.append(f"s:{s} trl:{5.0 - s / 100:.4f} lr:0.000100 norm:0.90")
    (d / "main.log").write_text("\n".join(lines) + "\n")
    write_progress(d / "progress.jsonl", range(30), T0)
    (d / "config.json").write_text(json.dumps({"model": "d12", "total_batch_size": 524288, "max_steps": 100}))
    for name in [
        "model_00000010.bin",
        "state_00000010_00000.safetensors",
        "state_00000010_00001.safetensors",
        "DONE_00000010",
        "model_00000020.bin",
        "state_00000020_00000.safetensors",
    ]:
        (d / name).write_bytes(b"\0" * 100)
    return d


def test_status_from_progress(run_dir):
    st = run_status(run_dir, now=T0 + 60)
    assert st["last_step"] == 29 and st["max_steps"] == 100
    assert st["train_loss"] == {"step": 29, "value": pytest.approx(4.71)}
    assert st["val_loss"]["step"] == 20 and st["hellaswag"] == {"step": 20, "value": 0.25}
    assert st["tok_s"] == 260000.0 and st["mfu"] == 0.41 and not st["timing_approximate"]
    assert st["elapsed_s"] == pytest.approx(29 * 2.0 + 1.9)
    assert st["eta_s"] == pytest.approx(70 * 2.0)
    assert st["state"] == "running"
    assert [(c["step"], c["complete"], c["state_files"]) for c in st["checkpoints"]] == [
        (10, True, 2),
        (20, False, 1),
    ]
    text = format_status(st)
    assert "29 / 100" in text and "20 (incomplete: no DONE)" in text and "ETA 2m20s" in text


def test_status_while_training_and_after_resume(run_dir):
    # a half-written line, then a restart from step 20 an hour later: steps 20.. are redone
    with open(run_dir / "progress.jsonl", "a") as f:
        f.write('{"step": 30, "max_st')
    write_progress(run_dir / "progress.jsonl", range(20, 40), T0 + 3600, mode="a")
    st = run_status(run_dir, now=T0 + 3600 + 40)
    assert st["last_step"] == 39
    # the hour of downtime is not training time: 19 gaps before the restart + 19 after
    assert st["elapsed_s"] == pytest.approx(19 * 2.0 + 19 * 2.0 + 1.9)
    assert st["eta_s"] == pytest.approx(60 * 2.0)
    assert run_status(run_dir, now=T0 + 90000)["state"] == "stopped"


def test_status_llmc_main_log_only(run_dir):
    for name in ("progress.jsonl",):
        (run_dir / name).unlink()
    os.utime(run_dir / "config.json", (T0, T0))
    os.utime(run_dir / "main.log", (T0 + 300, T0 + 300))
    st = run_status(run_dir, now=T0 + 310)
    assert st["timing_approximate"] and st["elapsed_s"] == pytest.approx(300)
    assert st["tok_s"] == pytest.approx(524288 * 30 / 300)
    assert st["eta_s"] == pytest.approx(70 * 10.0)
    assert st["lr"] == pytest.approx(1e-4)
    assert "approximate" in format_status(st)


def test_status_finished(run_dir):
    write_progress(run_dir / "progress.jsonl", range(30), T0, max_steps=30)
    st = run_status(run_dir, now=T0 + 1e6)
    assert st["state"] == "finished" and st["eta_s"] is None


def test_list_checkpoints_empty(tmp_path):
    assert list_checkpoints(tmp_path) == []


def test_status_cli(run_dir, tmp_path, cli_main, capsys):
    assert cli_main(["status", str(run_dir), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["last_step"] == 29 and len(st["checkpoints"]) == 2
    assert cli_main(["status", str(run_dir)]) == 0
    assert "checkpoints" in capsys.readouterr().out
    assert cli_main(["status", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err
