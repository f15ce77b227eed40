"""`python -m bench`: the one entry point to the measuring tools, and the tools it added (memory table, scaling,
loss check) with a stand-in for the run they start (test_bench_throughput runs a real one; their figures come from
the GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench import __main__ as entry
from bench import loss_check, memory_table, scaling, throughput

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


def _fake_runs(monkeypatch, errors: dict | None = None) -> list:
    """throughput.run_one replaced by a stand-in that records each call and answers with made-up figures (or the
    error given for its B): the tools' own logic, without training (test_bench_throughput runs a real one)."""
    calls = []

    def run_one(args, model, path, extra, log_name=""):
        calls.append((args, model, path, extra))
        res = throughput.RunResult(model, path, args.batch_size, args.seq_len, args.total_batch_size,
                                   args.recompute, args.master_weights, f"-e {model} -b {args.batch_size} "
                                   + " ".join(extra))  # fmt: skip
        error = (errors or {}).get(args.batch_size)
        res.ok, res.error = error is None, error
        if res.ok:
            res.tok_s, res.ms_per_step, res.val_loss = 1000.0 * args.batch_size, 5.0, 5.5 + len(calls) / 100
            res.peak_alloc_mib, res.peak_reserved_mib = 100.0 * args.batch_size, 110.0 * args.batch_size
        return res

    monkeypatch.setattr(throughput, "run_one", run_one)
    return calls


def test_memory_table_runs_each_b_and_stops_at_the_first_out_of_memory(tmp_path, capsys, monkeypatch):
    calls = _fake_runs(monkeypatch, errors={4: "error: out of GPU memory at step 0 with -b 4"})
    out = tmp_path / "mem.json"
    argv = ["-e", "d12", "-t", "16", "--out", str(out), "0 1 1 2 4 8", "2 0 8", "--", "--device", "cpu"]
    assert memory_table.main(argv) == 0  # out of memory is a result, not a failure
    # B=8 of the first group is never tried after B=4 ran out of memory; the next group still runs
    assert [(a.batch_size, a.recompute, a.master_weights, a.total_batch_size) for a, *_ in calls] == [
        (1, 0, 1, 32), (2, 0, 1, 64), (4, 0, 1, 128), (8, 2, 0, 256)]  # fmt: skip
    assert all(extra == ["--device", "cpu"] for *_, extra in calls)
    runs = json.loads(out.read_text())["runs"]
    assert [(r["B"], r["ok"]) for r in runs] == [(1, True), (2, True), (4, False), (8, True)]
    table = capsys.readouterr().out.splitlines()
    assert table[-1].startswith("| d12 | 8 | 2 | 0 | --device cpu | 8,000 |")
    assert any(ln.startswith("| d12 | 4 | 0 | 1 |") and "out of memory" in ln for ln in table)


def test_memory_table_fails_on_an_error_that_is_not_out_of_memory(monkeypatch, capsys):
    _fake_runs(monkeypatch, errors={2: "error: -i x: no file matches"})
    assert memory_table.main(["0 1 2"]) == 1


def _result(tok_s, ok=True):
    return throughput.RunResult("d12", "fast", 64, 1024, 524288, 0, 1, "", ok=ok, tok_s=tok_s, ms_per_step=1.0,
                                error=None if ok else "boom")  # fmt: skip


def test_scaling_table_speedup_and_efficiency():
    rows = scaling.table([_result(100.0), _result(190.0), _result(0, ok=False)], [1, 2, 4]).splitlines()
    assert "| 2 | 1.0 | 190 | 1.90 | 0.950 |" in rows[3]
    assert "failed: boom" in rows[4]


def test_loss_check_runs_the_check_n_times_and_reports_the_mean(tmp_path, capsys, monkeypatch):
    calls = _fake_runs(monkeypatch)
    out = tmp_path / "loss.json"
    assert loss_check.main(["--runs", "2", "--out", str(out), "--", "--fp8", "2"]) == 0
    assert len(calls) == 2
    args, model, path, extra = calls[0]
    assert (model, path, args.batch_size, args.seq_len, args.total_batch_size, args.steps) == ("d12", "fast", 32,
                                                                                                1024, 131072, 200)  # fmt: skip
    assert extra[-2:] == ["--fp8", "2"] and " ".join(extra).startswith("-v 25 -m 20 -l 0.0006 -u 50")  # the lever last
    data = json.loads(out.read_text())
    assert [r["val_loss"] for r in data["runs"]] == [5.51, 5.52]
    assert data["mean_val_loss"] == pytest.approx(5.515)
    assert "mean val loss 5.5150" in capsys.readouterr().out


def test_loss_check_baseline_runs_the_fast_path_first_and_gives_the_verdict(tmp_path, capsys, monkeypatch):
    """--baseline: the bf16 fast path's runs first (every FP8 setting off), then the lever's; the verdict compares
    the means against the check's +0.01. The stand-in's losses rise by 0.01 a run: 5.51, 5.52 then 5.53, 5.54."""
    calls = _fake_runs(monkeypatch)
    out = tmp_path / "loss.json"
    assert loss_check.main(["--runs", "2", "--baseline", "--out", str(out), "--", "--fp8", "2"]) == 0
    assert [c[3][-6:] for c in calls[:2]] == [["-k", "cosine", "--fp8", "0", "--fp8-classifier", "0"]] * 2
    assert [c[3][-2:] for c in calls[2:]] == [["--fp8", "2"]] * 2
    data = json.loads(out.read_text())
    assert data["baseline_mean_val_loss"] == pytest.approx(5.515) and data["mean_val_loss"] == pytest.approx(5.535)
    assert data["verdict"] == "fails" and "+0.0200 over the bf16 fast path's mean in this sitting: fails" in (
        capsys.readouterr().out
    )
    calls.clear()  # one run each: 5.51 then 5.52, +0.01, which holds
    assert loss_check.main(["--runs", "1", "--baseline", "--", "--fp8", "1"]) == 0
    assert "in this sitting: holds" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # nothing to compare
        loss_check.main(["--runs", "2", "--baseline"])


def test_loss_check_baseline_from_reuses_the_sittings_fast_path_runs(tmp_path, capsys, monkeypatch):
    """--baseline-from: the fast path's runs of an earlier --out (its baseline, or a fast-path-only check), not run
    again: only the lever runs, and the verdict is against those."""
    calls = _fake_runs(monkeypatch)
    first = tmp_path / "first.json"
    assert loss_check.main(["--runs", "2", "--baseline", "--out", str(first), "--", "--fp8", "2"]) == 0
    calls.clear()  # the stand-in starts again at 5.51: the lever's runs 5.51, 5.52 against the baseline's same
    second = tmp_path / "second.json"
    assert (
        loss_check.main(["--runs", "2", "--baseline-from", str(first), "--out", str(second), "--", "--fp8", "1"]) == 0
    )
    assert [c[3][-2:] for c in calls] == [["--fp8", "1"]] * 2  # no fast-path runs this time
    data = json.loads(second.read_text())
    assert data["baseline_mean_val_loss"] == pytest.approx(5.515) and data["verdict"] == "holds"
    assert data["baseline_from"] == str(first) and "+0.0000 over the bf16 fast path's mean" in capsys.readouterr().out
    fast_only = tmp_path / "fast.json"
    assert loss_check.main(["--runs", "1", "--out", str(fast_only), "--", *loss_check.BF16_FLAGS]) == 0
    assert loss_check.main(["--runs", "1", "--baseline-from", str(fast_only), "--", "--fp8", "1"]) == 0
    lever_only = tmp_path / "lever.json"
    assert loss_check.main(["--runs", "1", "--out", str(lever_only), "--", "--fp8", "2"]) == 0
    default_only = tmp_path / "default.json"  # the fast path as it is by default: FP8 where that is on
    assert loss_check.main(["--runs", "1", "--out", str(default_only)]) == 0
    for argv, needle in (([str(tmp_path / "missing.json")], "cannot read it"),
                         ([str(lever_only)], "holds no bf16 fast-path runs"),
                         ([str(default_only)], "holds no bf16 fast-path runs")):  # fmt: skip
        with pytest.raises(SystemExit):
            loss_check.main(["--runs", "1", "--baseline-from", *argv, "--", "--fp8", "1"])
        assert needle in capsys.readouterr().err
    with pytest.raises(SystemExit):
        loss_check.main(["--runs", "1", "--baseline", "--baseline-from", str(first), "--", "--fp8", "1"])


def test_loss_check_recipe_modern_trains_both_paths_on_the_modern_recipe(tmp_path, capsys, monkeypatch):
    """--recipe modern: the baseline and the lever both train the modern recipe on its schedule, after the check's
    flags (so that they override its classic lr schedule) and before the lever's; a baseline of the other recipe is
    refused."""
    calls = _fake_runs(monkeypatch)
    out = tmp_path / "modern.json"
    assert (
        loss_check.main(["--recipe", "modern", "--runs", "1", "--baseline", "--out", str(out), "--", "--fp8", "1"]) == 0
    )
    (_, _, _, base), (_, _, _, lever) = calls
    for extra in (base, lever):
        k = extra.index("--recipe")
        assert extra[k + 1] == "modern" and extra.index("-k") < k < extra.index("wsd")  # the check's cosine overridden
    assert base[-4:] == loss_check.BF16_FLAGS and lever[-2:] == ["--fp8", "1"]
    assert json.loads(out.read_text())["recipe"] == "modern"
    with pytest.raises(SystemExit):
        loss_check.main(["--runs", "1", "--baseline-from", str(out), "--", "--fp8", "1"])
    assert "trained the modern recipe" in capsys.readouterr().err


def test_launcher_runs_through_capped_or_torchrun():
    assert throughput.launcher()[1:] == ["-m", "gpt2train"]
    capped = throughput.launcher(cap_mib=80300)
    assert capped[1].endswith("bench/capped.py") and capped[2:] == ["--mib", "80300", "--"]
    assert "--nproc_per_node=2" in throughput.launcher(nproc=2)
    with pytest.raises(SystemExit, match="one process"):
        throughput.launcher(cap_mib=80300, nproc=2)


def test_scaling_runs_one_process_per_gpu_count(tmp_path, monkeypatch):
    calls = _fake_runs(monkeypatch)
    out = tmp_path / "scaling.json"
    assert scaling.main(["-e", "d12", "--gpus", "1", "2", "--out", str(out), "--", "-z", "1"]) == 0
    assert [a.nproc for a, *_ in calls] == [1, 2]
    assert all(extra == ["-z", "1"] for *_, extra in calls)
    assert len(json.loads(out.read_text())["runs"]) == 2
