"""bench/time_to_loss.py --quick: the CPU smoke test of the time-to-loss benchmark (structure, not timing)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "time_to_loss.py"


def _load():
    spec = importlib.util.spec_from_file_location("time_to_loss", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_mode_writes_json_and_table(tmp_path, text_shards, capsys):
    bench = _load()
    out = tmp_path / "ttl.json"
    argv = ["--quick", "--train", text_shards["train"], "--val", text_shards["val"], "-o", str(out),
            "--steps", "2", "--val-every", "1", "--variants", "modern"]  # fmt: skip
    assert bench.main(argv) == 0
    res = json.loads(out.read_text())
    assert [v["name"] for v in res["variants"]] == ["classic", "modern"]
    classic = res["variants"][0]
    assert classic["status"] == "ok" and classic["steps_to_target"] is not None
    assert res["target_val_loss"] == classic["final_val_loss"]
    for v in res["variants"]:
        assert v["status"] in ("ok", "not reached"), v
        assert set(v) >= {"name", "flags", "steps_to_target", "seconds_to_target", "val_curve", "median_step_ms"}
        assert v["val_curve"][0][0] == 0 and v["val_curve"][-1][0] <= 2
    assert "target val loss" in capsys.readouterr().out


def test_variant_list():
    bench = _load()
    names = [n for n, _ in bench.variants(minus=True, only=None)]
    assert names[:2] == ["classic", "modern"] and "classic+muon" in names and "modern-rotary" in names
    assert len(names) == 2 + len(bench.SPEED) + 2 * len(bench.LEVERS)
    assert dict(bench.variants(minus=False, only=None))["modern+fp8"] == bench.MODERN + ["--fp8", "1"]
