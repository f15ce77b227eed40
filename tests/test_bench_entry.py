"""`python -m bench`: the one entry point to the measuring tools, and the tools it added (memory table, scaling,
loss check) on the CPU with a tiny model (their figures come from the GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench import __main__ as entry
from bench import loss_check, memory_table, scaling, throughput

from tests.helpers import TINY

ROOT = Path(__file__).resolve().parents[1]


def test_lists_every_tool_and_each_module_exists(capsys):
    assert entry.main([]) == 0
    out = capsys.readouterr().out
    for name, (module, _) in entry.TOOLS.items():
        assert f"  {name} " in out
        assert (ROOT / "bench" / f"{module}.py").is_file(), module


def test_dispatches_a_tools_help():
    # a fresh process in the repository root, as a user types it: the tool's own argparse answers
    proc = subprocess.run([sys.executable, "-m", "bench", "memory-table", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--cap-mib" in proc.stdout and "groups" in proc.stdout


def test_unknown_tool_is_one_line_error(capsys):
    assert entry.main(["nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown bench tool 'nope'") and "throughput" in err and "\n" not in err


def test_memory_group_parsing():
    assert memory_table.parse_group("2 1 16 32") == (2, 1, [16, 32])
    with pytest.raises(Exception, match="one or more B"):
        memory_table.parse_group("2 1")


def test_memory_table_runs_each_b_and_stops_at_a_failure_it_reports(text_shards, tmp_path, capsys):
    out = tmp_path / "mem.json"
    argv = ["-i", text_shards["train"], "-j", text_shards["val"], "-e", "d12", "-t", "16",
            "--out", str(out), "0 1 1 2", "--", *TINY, "--device", "cpu"]  # fmt: skip
    assert memory_table.main(argv) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [(r["B"], r["total_batch"], r["ok"]) for r in runs] == [(1, 32, True), (2, 64, True)]
    assert all(r["tok_s"] > 0 and r["recompute"] == 0 for r in runs)
    assert capsys.readouterr().out.splitlines()[-1].startswith("| d12 | 2 | 0 | 1 | ")


def _result(tok_s, ok=True):
    return throughput.RunResult("d12", "fast", 64, 1024, 524288, 0, 1, "", ok=ok, tok_s=tok_s, ms_per_step=1.0,
                                error=None if ok else "boom")  # fmt: skip


def test_scaling_table_speedup_and_efficiency():
    rows = scaling.table([_result(100.0), _result(190.0), _result(0, ok=False)], [1, 2, 4]).splitlines()
    assert "| 2 | 1.0 | 190 | 1.90 | 0.950 |" in rows[3]
    assert "failed: boom" in rows[4]


def test_loss_check_reports_the_last_val_loss(text_shards, tmp_path, capsys):
    out = tmp_path / "loss.json"
    argv = ["-i", text_shards["train"], "-j", text_shards["val"], "--runs", "1", "--steps", "4",
            "-b", "2", "-t", "16", "-d", "32", "--out", str(out), "--", *TINY, "--device", "cpu", "-v", "2"]  # fmt: skip
    assert loss_check.main(argv) == 0
    data = json.loads(out.read_text())
    (run,) = data["runs"]
    assert run["ok"] and data["mean_val_loss"] == run["val_loss"] and 0 < run["val_loss"] < 12
    assert "-k cosine" in run["command"] and run["command"].endswith("-v 2")
    assert f"mean val loss {run['val_loss']:.4f}" in capsys.readouterr().out


def test_launcher_runs_through_capped_or_torchrun():
    assert throughput.launcher()[1:] == ["-m", "gpt2train"]
    capped = throughput.launcher(cap_mib=80300)
    assert capped[1].endswith("bench/capped.py") and capped[2:] == ["--mib", "80300", "--"]
    assert "--nproc_per_node=2" in throughput.launcher(nproc=2)
    with pytest.raises(SystemExit, match="one process"):
        throughput.launcher(cap_mib=80300, nproc=2)


def test_scaling_runs_several_processes(text_shards, tmp_path):
    # two CPU processes under torchrun (gloo): the path a multi-GPU run takes
    out = tmp_path / "scaling.json"
    argv = ["-i", text_shards["train"], "-j", text_shards["val"], "-e", "d12", "--gpus", "2", "-b", "2",
            "-t", "16", "-d", "64", "--steps", "3", "--warmup", "1", "--out", str(out), "--", *TINY, "--device", "cpu"]  # fmt: skip
    assert scaling.main(argv) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["ok"] and run["tok_s"] > 0 and "--nproc_per_node=2" in run["command"]
