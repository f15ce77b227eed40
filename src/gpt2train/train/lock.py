"""One run per run directory: ``RUN/.lock``, held with flock(2) for the life of the training process.

The lock belongs to an open file descriptor, so the kernel drops it when the process ends however it ends
(SIGKILL, power loss on a local disk); the file's content (pid, host, start time) only names the holder in the
error line. A run that ends removes its lock file; one left by a killed run is held by no one and is simply
taken over.

``RunDir`` also makes the directory and, when the run fails before writing anything into it, removes the
folders it made itself (never one that existed before).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket

from gpt2train.errors import UserError
from gpt2train.outputs import check_writable

LOCK_NAME = ".lock"


def lock_holder(run_dir: str) -> dict:
    """What RUN/.lock says about the run that took it ({} when missing or unreadable)."""
    try:
        with open(os.path.join(run_dir, LOCK_NAME), encoding="utf-8") as f:
            record = json.load(f)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(record: dict) -> str:
    if not record:
        return "another process (its lock file names none)"
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')}, started {record.get('started', '?')}"


class RunLock:
    """An exclusive flock on RUN/.lock; ``acquire`` raises a UserError naming the live holder."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.fd: int | None = None
        self.previous: dict = {}  # what a stale lock file said, when this run took it over

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by exec'd children
            except OSError as e:
                raise UserError(f"-o {self.run_dir}: cannot write its lock file {self.path} ({e.strerror}); "
                                "choose a writable run directory") from None  # fmt: skip
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f"-o {self.run_dir}: another run is training in this directory "
                                f"({_describe(lock_holder(self.run_dir))}); wait for it to end, stop it, or use "
                                "another -o") from None  # fmt: skip
            except OSError as e:  # a file system without locks: say so rather than run unprotected in silence
                os.close(fd)
                raise UserError(f"-o {self.run_dir}: cannot lock {self.path} ({e.strerror}); use a run directory on "
                                "a file system with locks (a local disk or NFSv4)") from None  # fmt: skip
            try:  # a holder that ended between our open and our flock removed the file: lock the one at the path
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.previous = lock_holder(self.run_dir)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Remove the file while still holding it (so no other run's lock is removed), then unlock."""
        if self.fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self.fd)  # closing the last descriptor drops the flock
        self.fd = None


class RunDir:
    """``-o DIR`` for one run: made if missing, checked writable, locked by ``lock`` (rank 0 under torchrun)."""

    def __init__(self, path: str | None, lock: bool = True):
        self.path = path
        self.lock = RunLock(path) if path and lock else None
        self.created: list[str] = []  # folders this process made, deepest first

    def open(self, warn=print) -> None:
        if not self.path:
            return
        check_writable(self.path, "-o")
        missing, p = [], os.path.abspath(self.path)
        while not os.path.exists(p):
            missing.append(p)
            p = os.path.dirname(p)
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as e:
            raise UserError(f"-o {self.path}: cannot make the run directory ({e.strerror or e})") from None
        self.created = missing
        if self.lock is not None:
            self.lock.acquire()
            if self.lock.previous.get("pid") is not None:
                warn(f"took over the lock of a run that is no longer running ({_describe(self.lock.previous)})")

    def close(self, failed: bool) -> None:
        """Unlock; after a failure, remove the folders this run made if they are still empty."""
        if self.lock is not None:
            self.lock.release()
        if not failed:
            return
        for folder in self.created:  # deepest first; rmdir refuses a folder that is not empty
            try:
                os.rmdir(folder)
            except OSError:
                break
