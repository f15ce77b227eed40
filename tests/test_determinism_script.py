"""bench/determinism_gpu.py on the CPU with a tiny model (the lead runs the real one on a GPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.helpers import TINY

BENCH = Path(__file__).resolve().parents[1] / "bench" / "determinism_gpu.py"


def test_cpu_smoke(tmp_path, text_shards, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = importlib.util.spec_from_file_location("determinism_gpu", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    argv = ["--out", str(out), "-i", text_shards["train"], "-j", text_shards["val"], "-e", "d6",
            "-b", "4", "-t", "32", "-x", "4", "--kill-at", "3", "--checkpoint-every", "2", "--modes", "1",
            "--device", "cpu", "--timeout", "120", *[f"--train-arg={a}" for a in TINY]]  # fmt: skip
    assert mod.main(argv) == 0
    report = json.loads((out / "determinism.json").read_text())
    r = report["results"]["1"]
    assert r["run2_vs_run1"]["identical"] and r["resumed_vs_run1"]["identical"], r
    assert r["ms_per_step"] is not None
    assert "| 1 |" in (out / "determinism.txt").read_text()
    assert (out / "det1_killed_resumed_main.log").exists() and not list(out.glob("*.bin"))
