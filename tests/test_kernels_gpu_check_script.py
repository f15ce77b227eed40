"""bench/kernels_gpu_check.py runs its CPU path (a quick subset; the lead runs the rest on a GPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "kernels_gpu_check.py"


def test_cpu_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("kernels_gpu_check", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "k.json"
    argv = ["--device", "cpu", "--small", "--dtypes", "fp32", "--no-compile", "--reps", "1"]
    argv += ["--out", str(out)]
    assert mod.main(argv) == 0
    res = json.loads(out.read_text())
    checks = {r["check"] for r in res["rows"]}
    assert checks == {"classifier", "gelu_linear", "gelu_mlp", "fp8_linear", "fp8_cast", "adamw_bf16", "adamw_master"}
    assert not res["failures"]
