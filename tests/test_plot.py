"""gpt2train plot: llm.c's main.log, our run dirs (progress.jsonl, config.json), errors."""

from __future__ import annotations

import json
import math

import pytest

from gpt2train.errors import UserError
from gpt2train.plot import BASELINES, baseline_for, parse_panels, plot_runs, smooth
from gpt2train.runinfo import load_run, parse_main_log

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def llmc_log(path, steps=40, val_every=10, extras=False):
    """A main.log as llm.c writes it (old format without lr/norm unless ``extras``)."""
    lines = []
    for s in range(steps):
        if s % val_every == 0:
            lines.append(f"s:{s} tel:{4.0 - s / 50:.4f}")
            lines.append(f"s:{s} eval:{0.25 + s / 2000:.4f}")
        loss = 4.5 - s / 40 + 0.05 * math.sin(s)
        lines.append(f"s:{s} trl:{loss:.4f}" + (f" lr:{6e-4 * min(1, (s + 1) / 5):.6f} norm:1.23" if extras else ""))
    lines.append(f"s:{steps} tel:{4.0 - steps / 50:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def our_run(tmp_path):
    """A run dir as our trainer writes it: main.log with lr/norm, progress.jsonl, config.json."""
    d = tmp_path / "log124M"
    d.mkdir()
    llmc_log(d / "main.log", extras=True)
    (d / "main.log").open("a").write("some other line kind our trainer may add\n")
    with open(d / "progress.jsonl", "w") as f:
        for s in range(40):
            rec = {
                "step": s,
                "max_steps": 40,
                "loss": 4.5 - s / 40,
                "lr": 6e-4,
                "norm": 1.2,
                "ms": 950.0,
                "tok_s": 550000.0 + s,
                "mfu": 0.45,
                "time": 1.7e9 + s,
            }
            if s % 10 == 0:
                rec["val_loss"] = 4.0 - s / 50
            f.write(json.dumps(rec) + "\n")
    cfg = {
        "model": "d12",
        "n_layer": 12,
        "n_head": 12,
        "n_embd": 768,
        "batch_size": 64,
        "seq_len": 1024,
        "total_batch_size": 524288,
        "max_steps": 40,
    }
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_parse_llmc_log(tmp_path):
    log = parse_main_log(llmc_log(tmp_path / "main.log"))
    assert len(log["train"]) == 40 and log["train"][0][2] is None  # old format: no lr
    assert [s for s, _ in log["val"]] == [0, 10, 20, 30, 40]
    assert log["hellaswag"][-1] == (30, pytest.approx(0.265))


def test_parse_resumed_log_keeps_the_redone_steps(tmp_path):
    p = tmp_path / "main.log"
    p.write_text(
        "s:0 tel:5.0\ns:0 trl:5.1\ns:1 trl:5.0\ns:2 trl:4.9\ns:3 trl:4.8\n"
        "s:2 trl:4.7\ns:3 trl:4.6\ns:4 trl:4.5\ns:5 trl:nan\ns:6 trl:4."
    )
    log = parse_main_log(p)
    assert [(s, v) for s, v, _, _ in log["train"][:5]] == [(0, 5.1), (1, 5.0), (2, 4.7), (3, 4.6), (4, 4.5)]
    assert math.isnan(log["train"][5][1]) and log["train"][-1][0] == 6  # "4." parses; nan kept, not plotted


def test_plot_llmc_log_png(tmp_path, cli_main):
    log = llmc_log(tmp_path / "main.log")
    out = tmp_path / "curves.png"
    assert cli_main(["plot", str(log), "-o", str(out), "--model", "d12"]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_plot_our_run_all_panels_tokens_svg(tmp_path, our_run, cli_main):
    llmc = llmc_log(tmp_path / "llmc.log")
    out = tmp_path / "curves.svg"
    argv = [
        "plot",
        str(our_run),
        str(llmc),
        "-o",
        str(out),
        "--x",
        "tokens",
        "-d",
        "524288",
        "--smooth",
        "5",
        "--panels",
        "val,hellaswag,train,lr,throughput",
    ]
    assert cli_main(argv) == 0
    svg = out.read_text()
    assert "<svg" in svg and "OpenAI GPT-2 (124M)" in svg and "OpenAI GPT-3 (124M)" in svg


def test_plot_progress_only(tmp_path, our_run):
    (our_run / "main.log").unlink()
    run = load_run(our_run)
    assert len(run.train) == 40 and [s for s, _ in run.val] == [0, 10, 20, 30]
    out = plot_runs([str(our_run / "progress.jsonl")], str(tmp_path / "p.png"), panels=("val", "train"))
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_plot_errors(tmp_path, cli_main, capsys):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    junk = tmp_path / "junk.log"
    junk.write_text("hello\nstep 1 loss 3.2\n")
    nolog = tmp_path / "nolog"
    nolog.mkdir()
    good = llmc_log(tmp_path / "main.log")
    png = str(tmp_path / "x.png")
    cases = [
        ([str(empty), "-o", png], "empty.log: no training log lines"),
        ([str(junk), "-o", png], "junk.log: no training log lines"),
        ([str(tmp_path / "missing"), "-o", png], "missing: no such run directory"),
        ([str(nolog), "-o", png], "nolog: not a run directory"),
        ([str(good), "-o", str(tmp_path / "x.jpg")], "-o"),
        ([str(good), "-o", str(tmp_path / "nodir" / "x.png")], "does not exist"),
        ([str(good), "-o", png, "--panels", "val,nope"], "--panels"),
        ([str(good), "-o", png, "--x", "tokens"], "tokens per step unknown"),
        ([str(good), "-o", png, "--model", "foo"], "--model foo"),
    ]
    for argv, needle in cases:
        assert cli_main(["plot", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err and err.count("\n") == 1, (argv, err)
    with pytest.raises(SystemExit) as e:
        cli_main(["plot", str(good)])  # -o missing: usage error
    assert e.value.code == 2


def test_smooth_and_helpers():
    assert smooth([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert smooth([1.0, 5.0], 0) == [1.0, 5.0]
    assert baseline_for(48, 1600) is BASELINES[48] and baseline_for(12, 768).val_loss == 3.4250
    assert baseline_for(2, 64) is None
    assert parse_panels("val, train") == ("val", "train")
    with pytest.raises(UserError):
        parse_panels("")
