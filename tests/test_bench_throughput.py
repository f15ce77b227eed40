"""bench/throughput.py on the CPU: its runs, parsing and table (figures themselves come from the GPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from tests.helpers import TINY

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "bench" / "throughput.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_throughput_runs_both_paths_and_writes_json(text_shards, tmp_path, capsys):
    tp = _load()
    out = tmp_path / "tp.json"
    argv = ["-i", text_shards["train"], "-j", text_shards["val"], "-e", "d12", "-b", "2", "-t", "32",
            "-d", "128", "--steps", "4", "--warmup", "1", "--out", str(out), "--", *TINY, "--device", "cpu"]  # fmt: skip
    assert tp.main(argv) == 0
    data = json.loads(out.read_text())
    runs = {r["path"]: r for r in data["runs"]}
    assert set(runs) == {"fast", "plain"}
    for r in runs.values():
        assert r["ok"] and r["error"] is None
        assert len(r["step_ms"]) == 4 and r["ms_per_step"] > 0
        assert abs(r["tok_s"] - 128 / (r["ms_per_step"] / 1000)) / r["tok_s"] < 0.5
        assert r["first_step_s"] is not None
        assert r["vs_ref_tok_s"] is None  # not the reference's shape: no ratio
    assert "--plain" in runs["plain"]["command"] and "--plain" not in runs["fast"]["command"]
    table = capsys.readouterr().out.strip().splitlines()
    assert table[-3].startswith("| model | path |") and table[-1].startswith("| d12 | plain |")


def test_throughput_reports_a_failed_run_and_goes_on(text_shards, tmp_path):
    tp = _load()
    out = tmp_path / "tp.json"
    argv = ["-i", text_shards["train"], "-j", text_shards["val"], "-e", "d12", "-b", "2", "-t", "32",
            "-d", "100", "--steps", "2", "--paths", "plain", "--out", str(out), "--", *TINY, "--device", "cpu"]  # fmt: skip
    assert tp.main(argv) == 1  # -d 100 is not a multiple of B*T: the run fails with a one-line error
    (run,) = json.loads(out.read_text())["runs"]
    assert not run["ok"] and "-d" in run["error"]


def test_parse_run_takes_the_median_after_warmup(tmp_path):
    tp = _load()
    prog = tmp_path / "progress.jsonl"
    ms = [3000.0, 100.0, 110.0, 90.0, 105.0]
    prog.write_text("".join(json.dumps({"step": i, "kind": "train", "ms": m, "tok_s": 1e5 / m, "mfu": 40.0}) + "\n"
                            for i, m in enumerate(ms)))  # fmt: skip
    stdout = ("time to first step: 12.5 s (Python and imports 2.0 s, setup 3.5 s, the first step 7.0 s)\n"
              "peak GPU memory: 23107 MiB allocated, 24000 MiB reserved\n")  # fmt: skip
    got = tp.parse_run(stdout, str(prog), warmup=1)
    assert got["ms_per_step"] == 102.5 and got["first_step_s"] == 12.5
    assert got["first_step_parts"] == "Python and imports 2.0 s, setup 3.5 s, the first step 7.0 s"
    assert got["peak_alloc_mib"] == 23107 and got["mfu"] == 40.0
