"""bench/kernels_gpu_check.py runs its CPU path (a quick subset; the lead runs the rest on a GPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "kernels_gpu_check.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("kernels_gpu_check", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_smoke(tmp_path):
    mod = _bench_module()
    out = tmp_path / "k.json"
    argv = ["--device", "cpu", "--small", "--dtypes", "fp32", "--no-compile", "--reps", "1"]
    argv += ["--out", str(out)]
    assert mod.main(argv) == 0
    res = json.loads(out.read_text())
    checks = {r["check"] for r in res["rows"]}
    assert checks == {"classifier", "gelu_linear", "gelu_mlp", "fp8_linear", "fp8_cast", "adamw_bf16", "adamw_master"}
    assert not res["failures"]


def test_op_overhead_check(tmp_path):
    """--checks op_overhead times the FP8 cast op three ways (ours, as a custom_op, the bare function) on the CPU."""
    mod = _bench_module()
    out = tmp_path / "k.json"
    assert mod.main(["--device", "cpu", "--small", "--checks", "op_overhead", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["our op (kernels/_library.py)", "torch.library.custom_op",
                                            "the function, no dispatch"]  # fmt: skip
    assert all(r["host_us_per_call"] > 0 for r in rows)
