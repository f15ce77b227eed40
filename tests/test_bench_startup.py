"""bench/startup.py on the CPU: its cold and warm starts, the split it reads and what its sampler says (the
figures themselves come from the GPU)."""

from __future__ import annotations

import json
import os

from bench import startup

from tests.helpers import TINY


def test_a_cold_and_a_warm_start_with_their_split_and_samples(text_shards, tmp_path, capsys):
    out = tmp_path / "startup.json"
    argv = ["-i", text_shards["train"], "-j", text_shards["val"], "-e", "d12", "-b", "2", "-t", "32", "-d", "128",
            "--sample", "--keep-page-cache", "--warm", "2", "--out", str(out), "--", *TINY, "--device", "cpu"]  # fmt: skip
    assert startup.main(argv) == 0
    result = json.loads(out.read_text())
    starts = result["starts"]
    assert [s["start"] for s in starts] == ["cold", "warm", "warm2"]  # --warm 2: two warm starts after the cold
    assert result["bytecode_fill"] is None  # this suite runs with PYTHONDONTWRITEBYTECODE set: nothing to fill
    for s in starts:
        assert s["ok"] and s["error"] is None
        parts = s["imports_s"] + s["setup_s"] + s["first_step_own_s"]
        assert abs(parts - s["first_step_s"]) <= 0.3  # the split adds up (each part rounded to 0.1 s)
        # the sampler saw the run's own functions and the imports, and no more time than the process lived
        assert "imports" in s["activities"] and any(k.startswith("gpt2train.") for k in s["activities"])
        assert 0 < sum(s["activities"].values()) <= s["wall_s"]
        assert s["compile_phases"] == {}  # nothing compiled on the CPU (--compile is off there)
    assert not any(s["page_cache_dropped"] for s in starts)  # --keep-page-cache
    table = capsys.readouterr().out
    assert "| d12 | cold | kept |" in table and "| d12 | warm2 | kept |" in table and "- d12 cold #0 (s): " in table


def test_bytecode_fill_is_one_throwaway_start_on_caches_of_its_own(monkeypatch, capsys, tmp_path):
    """Before the cold starts: one start of the first model, on new compile caches that no later start uses; none
    (and a note) where PYTHONDONTWRITEBYTECODE forbids writing bytecode."""
    args = type("Args", (), {"models": ["d48", "d12"]})()
    seen = []

    def one_start(args_, model, start, repeat, extra):
        seen.append((model, start, os.environ["TORCHINDUCTOR_CACHE_DIR"], os.environ["TRITON_CACHE_DIR"], extra))
        return startup.Start(model, start, repeat, False, True, None, 9.0, 2.0, 3.0, 4.0, 10.0)

    monkeypatch.setattr(startup, "one_start", one_start)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unchanged")
    monkeypatch.setenv("TRITON_CACHE_DIR", "unchanged")
    fill = startup.fill_bytecode(args, str(tmp_path), ["--fp8", "0"])
    caches = str(tmp_path / "bytecode_fill")
    assert fill.start == "bytecode_fill" and fill.ok and args.cache == caches
    assert seen == [("d48", "bytecode_fill", f"{caches}/inductor", f"{caches}/triton", ["--fp8", "0"])]
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert startup.fill_bytecode(args, str(tmp_path / "again"), []) is None and len(seen) == 1
    assert "PYTHONDONTWRITEBYTECODE is set" in capsys.readouterr().out


def test_split_reads_the_trainers_line():
    got = startup.split("Python and imports 1.5 s, setup 3.4 s, evaluation and sampling 0.2 s, the first step 4.6 s")
    assert got == {"imports_s": 1.5, "setup_s": 3.4, "first_step_own_s": 4.6}
    assert startup.split(None) == {"imports_s": None, "setup_s": None, "first_step_own_s": None}


def test_activity_names_what_a_stack_was_doing():
    run = [("/usr/lib/python3.11/runpy.py", "_run_code"), ("/r/src/gpt2train/train/loop.py", "train_step")]
    assert startup.activity(run) == "gpt2train.train.loop.train_step"
    inductor = ("/site/torch/_inductor/compile_fx.py", "compile_fx")
    assert startup.activity([*run, ("/site/torch/_dynamo/eval_frame.py", "_fn"), inductor]) == (
        "Inductor (lowering, code generation, cache)"
    )
    waiting = [*run, inductor, ("/usr/lib/python3.11/concurrent/futures/_base.py", "result")]
    assert startup.activity(waiting) == "waiting for compile workers"
    # a future waited on outside Inductor (the data prefetcher's, say) is the function that waits
    assert startup.activity([*run, ("/usr/lib/python3.11/concurrent/futures/_base.py", "result")]) == (
        "gpt2train.train.loop.train_step"
    )
    assert startup.activity([*run, ("<frozen importlib._bootstrap>", "_find_and_load")]) == "imports"
    assert startup.activity([("/usr/lib/python3.11/threading.py", "wait")]) == "other"
    # Inductor's generated code running (its first launches), told by the folder Inductor writes it to
    generated = [*run, inductor, ("/cache/inductor/ab/cabc.py", "call")]
    assert startup.activity(generated, "/cache/inductor") == startup.RUNNING
    assert startup.activity(generated) == "Inductor (lowering, code generation, cache)"
    triton = ("/site/triton/compiler/compiler.py", "compile")
    assert startup.activity([*generated, triton], "/cache/inductor") == "Triton compiling in this process"


def test_compile_phases_sums_torchs_timings_by_phase(monkeypatch):
    import torch._dynamo.utils as dynamo_utils

    monkeypatch.setattr(dynamo_utils, "compilation_time_metrics", {"bytecode_tracing": [0.1, 0.2], "load": [0.5]})
    assert startup.compile_phases() == {"load": 0.5, "bytecode_tracing": 0.3}  # summed, largest first
    row = startup.Start("d48", "warm", 0, False, True, None, 9.0, 1.5, 3.0, 4.5, 12.0, {"imports": 3.0},
                        startup.compile_phases())  # fmt: skip
    assert "  torch's compile phases (s): load 0.50, bytecode_tracing 0.30" in startup.table([row])
