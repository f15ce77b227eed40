"""Helpers for tests that run the command line in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from gpt2train.cli import main

TINY = ["--n-layer", "2", "--n-head", "4", "--n-embd", "64", "--max-seq-len", "64"]


def run_cli(argv: list[str], capsys=None) -> tuple[int, str, str]:
    """Run ``gpt2train argv`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        code = e.code if isinstance(e.code, int) else 2
    out, err = ("", "")
    if capsys is not None:
        captured = capsys.readouterr()
        out, err = captured.out, captured.err
    return code, out, err


def cli_subprocess(argv: list[str], **kwargs) -> subprocess.Popen:
    """Start ``python -m gpt2train argv`` as a child process (stdout/stderr piped)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "gpt2train", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kwargs)  # fmt: skip


def tiny_train_args(shards: dict, out_dir, steps: int, extra: list | None = None) -> list:
    return ["train", "-i", shards["train"], "-j", shards["val"], "-o", out_dir, *TINY, "-b", "4", "-t", "32",
            "-d", "256", "-x", steps, "-v", 4, "-m", 2, "-s", 0, "-l", "3e-3", *(extra or [])]  # fmt: skip
