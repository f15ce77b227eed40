"""Where gpt2train keeps downloads and evaluation files by default."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GPT2TRAIN_CACHE``, else ``$XDG_CACHE_HOME/gpt2train``, else ``~/.cache/gpt2train``."""
    if os.environ.get("GPT2TRAIN_CACHE"):
        return Path(os.environ["GPT2TRAIN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpt2train"


def default_hellaswag_path() -> Path:
    """Where ``prepare hellaswag`` stores the validation file and ``train -h 1`` / ``eval`` look for it."""
    return cache_dir() / "hellaswag" / "hellaswag_val.jsonl"
