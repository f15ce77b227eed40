"""End-to-end training on CPU: learning, exact resume after SIGKILL, llm.c's log, bad input."""

import os
import signal
import time

import numpy as np

from gpt2train.formats.shards import write_shard
from tests.helpers import TINY, cli_subprocess, run_cli, tiny_train_args, torch_threads


def _log(path):
    with open(os.path.join(path, "main.log")) as f:
        return f.read().splitlines()


def test_tiny_model_learns_text(tmp_path, text_shards, capsys):
    code, out, err = run_cli(tiny_train_args(text_shards, tmp_path, 40, ["-v", "20"]), capsys)
    assert code == 0, err
    val = [float(ln.split("tel:")[1]) for ln in _log(tmp_path) if "tel:" in ln]
    assert len(val) == 3  # steps 0, 20, 40
    assert val[-1] < val[0] - 3.0, val  # from ~10.8 (uniform over 50257) to well below
    assert "step   40/40 | loss" in out and "tok/s" in out and "ETA" in out
    assert "num_parameters: 3323648" in out


def test_main_log_lines_are_llmc_format(tmp_path, text_shards, capsys):
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path, 4), capsys)
    assert code == 0, err
    lines = _log(tmp_path)
    assert lines[0].startswith("s:0 tel:")
    import re

    assert all(re.fullmatch(r"s:\d+ (tel:\d+\.\d{4}|trl:\d+\.\d{4} lr:\d+\.\d{6} norm:\d+\.\d{2})", ln) for ln in lines)
    assert [ln.split()[0] for ln in lines if "trl" in ln] == ["s:0", "s:1", "s:2", "s:3"]
    assert lines[-1].startswith("s:4 tel:")


def test_sigkill_then_resume_gives_identical_log(tmp_path, text_shards, capsys):
    steps = 12
    ref = tmp_path / "ref"
    with torch_threads(1):  # as the killed subprocess runs
        code, _, err = run_cli(tiny_train_args(text_shards, ref, steps, ["-n", "4"]), capsys)
    assert code == 0, err

    run = tmp_path / "killed"
    proc = cli_subprocess(tiny_train_args(text_shards, run, steps, ["-n", "4", "-y", "1"]))
    deadline = time.time() + 120
    while not (run / "DONE_00000004").exists() and time.time() < deadline:
        time.sleep(0.05)
    while time.time() < deadline:  # let it get into step 6 before killing
        if os.path.exists(run / "main.log") and any(ln.startswith("s:5 trl") for ln in _log(run)):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / "DONE_00000004").exists()

    with torch_threads(1):
        code, out, err = run_cli(tiny_train_args(text_shards, run, steps, ["-n", "4", "-y", "1"]), capsys)
    assert code == 0, err
    assert "resumed from checkpoint at step" in out
    assert _log(run) == _log(ref)


def test_sigterm_writes_checkpoint_and_exits_zero(tmp_path, text_shards):
    run = tmp_path / "term"
    proc = cli_subprocess(tiny_train_args(text_shards, run, 500, ["-n", "1000"]))
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(run / "main.log") and any(ln.startswith("s:2 trl") for ln in _log(run)):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped on SIGTERM" in out
    assert any(n.startswith("DONE_") for n in os.listdir(run))


def _err_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_input_gives_one_line_errors(tmp_path, text_shards, capsys):
    sh = text_shards
    base = ["train", *TINY, "-b", "4", "-t", "32", "-x", "2", "-s", "0"]
    cases = []
    # empty / non-matching -i glob
    cases.append((["-i", str(tmp_path / "nope_*.bin"), "-j", sh["val"]], "-i"))
    # wrong magic
    bad = tmp_path / "bad_magic.bin"
    bad.write_bytes(b"\x00" * 2048)
    cases.append((["-i", str(bad), "-j", sh["val"]], "bad_magic.bin"))
    # shorter than its header says
    short = tmp_path / "short.bin"
    write_shard(short, np.arange(1000))
    short.write_bytes(short.read_bytes()[:1500])
    cases.append((["-i", str(short), "-j", sh["val"]], "short.bin"))
    # fewer tokens than one batch
    tiny = tmp_path / "tiny.bin"
    write_shard(tiny, np.arange(20))
    cases.append((["-i", str(tiny), "-j", sh["val"]], "tiny.bin"))
    # -d not divisible by B*T
    cases.append((["-i", sh["train"], "-j", sh["val"], "-d", "1000"], "-d 1000"))
    # unknown -e
    cases.append((["-i", sh["train"], "-j", sh["val"], "-e", "d13"], "d13"))
    cases.append((["-i", sh["train"], "-j", sh["val"], "-e", str(tmp_path / "missing.bin")], "missing.bin"))
    # truncated checkpoint given as -e
    trunc = tmp_path / "trunc.bin"
    trunc.write_bytes((20240326).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"\x01" * 2000)
    cases.append((["-i", sh["train"], "-j", sh["val"], "-e", str(trunc)], "trunc.bin"))
    # output dir not writable (a path below a regular file)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases.append((["-i", sh["train"], "-j", sh["val"], "-o", str(blocker / "run")], "-o"))
    for extra, needle in cases:
        code, _, err = run_cli(base + extra, capsys)
        assert code != 0, extra
        line = _err_line(err)
        assert needle in line, (needle, line)


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(tiny_train_args(text_shards, run, 8, ["-n", "4"]), capsys)
    assert code == 0, err
    state = run / "state_00000008_00000.safetensors"
    state.write_bytes(state.read_bytes()[:-50])
    code, out, err = run_cli(tiny_train_args(text_shards, run, 8, ["-n", "4", "-y", "1"]), capsys)
    assert code == 0, err
    assert "checkpoint at step 8 is unusable" in out
    assert "resumed from checkpoint at step 4" in out


def test_shard_unreadable_mid_run_stops_with_a_checkpoint(tmp_path, text_shards, capsys, monkeypatch):
    """The second train shard cannot be opened when the loader reaches it: one line, and a checkpoint of the
    steps done so far that -y 1 resumes from once the shard is back."""
    import gpt2train.data.loader as loader_mod
    from gpt2train import rundir

    tokens = np.fromfile(text_shards["train"], dtype=np.uint16, offset=1024)[:6000]
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        write_shard(data / f"part_train_{i:06d}.bin", tokens[i * 3000 : (i + 1) * 3000])
    real_read = loader_mod.ShardSet._read_bytes

    def failing_read(self, shard, nbytes, offset):
        if self.infos[shard].path.endswith("part_train_000001.bin"):  # the second shard, reached mid-run
            raise OSError(5, "Input/output error")
        return real_read(self, shard, nbytes, offset)

    monkeypatch.setattr(loader_mod.ShardSet, "_read_bytes", failing_read)
    run = tmp_path / "run"
    args = ["train", "-i", str(data / "part_train_*.bin"), "-j", text_shards["val"], "-o", run, *TINY,
            "-b", "4", "-t", "32", "-d", "256", "-x", "40", "-v", "0", "-s", "0", "--no-shuffle"]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    line = _err_line(err)
    assert code == 1 and "became unreadable" in line and "part_train_000001.bin" in line, line
    step = rundir.latest_usable_step(str(run), warn=lambda _m: None)
    assert step is not None and 0 < step < 40 and f"checkpoint at step {step}" in line
    # the shard is back: the run resumes there and finishes
    monkeypatch.setattr(loader_mod.ShardSet, "_read_bytes", real_read)
    code, _, err = run_cli([*args, "-y", "1"], capsys)
    assert code == 0, err
    assert any(ln.startswith("s:39 trl") for ln in _log(run))


def test_startup_line_splits_the_time_to_first_step():
    """The parts (imports, setup, evaluation before the step, the step) add up to the total; a part under 0.05 s
    is left out."""
    from gpt2train.train.report import StartupClock

    clock = StartupClock(launched=100.0, entered=102.25, built=105.0)
    line = clock.line(step_start=105.02, step_end=111.0)
    assert line == "time to first step: 11.0 s (Python and imports 2.2 s, setup 2.8 s, the first step 6.0 s)"
    assert "evaluation" in clock.line(step_start=106.0, step_end=111.0)


def test_process_age_counts_from_the_process_start():
    """ "time to first step" counts from the process's start (Python and torch imports included): a child
    process's age at its end is at most the wall time its parent saw, and more than its own import time."""
    import subprocess
    import sys
    import time

    code = ("import time; t = time.perf_counter(); import torch; from gpt2train.train.report import process_age; "
            "print(process_age(), time.perf_counter() - t)")  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    age, imports = map(float, out.split())
    assert imports - 0.02 <= age <= wall + 0.02, (age, imports, wall)  # /proc/uptime has 10 ms steps
