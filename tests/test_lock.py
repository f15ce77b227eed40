"""One run per run directory: a second `train` on a locked -o is refused with the holder's pid; a stale lock
file (its process gone) is taken over; a run that fails before writing anything leaves no -o behind."""

import json
import os
import subprocess
import sys

from gpt2train.train.lock import LOCK_NAME, RunDir, RunLock, lock_holder
from tests.helpers import run_cli, tiny_train_args

_HOLD = """
import sys, time
from gpt2train.train.lock import RunLock
lock = RunLock(sys.argv[1]); lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes stdin
lock.release()
"""


def _holder(run_dir) -> subprocess.Popen:
    """A child process holding the lock of ``run_dir`` until its stdin is closed."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(run_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_train_on_a_locked_dir_is_refused_naming_the_holder(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = _holder(run)
    try:
        code, out, err = run_cli(tiny_train_args(text_shards, run, 2), capsys)
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: -o "), err
        assert str(run) in lines[0] and f"pid {holder.pid}" in lines[0] and "another run is training" in lines[0]
        assert sorted(os.listdir(run)) == [LOCK_NAME]  # the refused run wrote nothing and took nothing away
        assert lock_holder(str(run))["pid"] == holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not (run / LOCK_NAME).exists()  # the holder removed its lock as it ended
    code, out, err = run_cli(tiny_train_args(text_shards, run, 2), capsys)
    assert code == 0, err


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": "somehost", "started": "2026-01-01T00:00:00+00:00"}
    (run / LOCK_NAME).write_text(json.dumps(stale))
    code, out, err = run_cli(tiny_train_args(text_shards, run, 2), capsys)
    assert code == 0, err
    assert f"took over the lock of a run that is no longer running (pid {stale['pid']} on somehost" in out
    assert (run / "main.log").exists() and not (run / LOCK_NAME).exists()


def test_lock_is_exclusive_between_processes_and_released_by_a_kill(tmp_path):
    holder = _holder(tmp_path)
    second = RunLock(str(tmp_path))
    try:
        second.acquire()
        raise AssertionError("a second lock was granted")
    except Exception as e:
        assert "another run is training" in str(e) and f"pid {holder.pid}" in str(e)
    holder.kill()  # SIGKILL: no clean-up, the file stays, the kernel drops the flock
    holder.wait(timeout=30)
    assert lock_holder(str(tmp_path))["pid"] == holder.pid
    second.acquire()
    assert second.previous["pid"] == holder.pid and lock_holder(str(tmp_path))["pid"] == os.getpid()
    second.release()


def test_run_dir_removes_only_the_folders_it_made(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    made = RunDir(str(existing / "a" / "b"))
    made.open(warn=lambda m: None)
    made.close(failed=True)
    assert sorted(os.listdir(existing)) == []  # a/b made by the run: gone; existing/ itself stays
    kept = RunDir(str(existing))
    kept.open(warn=lambda m: None)
    kept.close(failed=True)
    assert existing.is_dir()
