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


def confined_name(name: object, source: str | os.PathLike, what: str = "file name") -> str:
    """``name``, read from the file ``source``, if it is a plain file name inside ``source``'s directory.

    Names read from files (DONE records, HuggingFace index.json) are never followed out of their directory:
    a non-string, an empty name, ``.``/``..``, an absolute path or one with a separator is a UserError
    naming ``source``.
    """
    from gpt2train.errors import UserError

    plain = (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and not os.path.isabs(name)
    )
    if not plain:
        raise UserError(
            f"{source} names {what} {name!r}, which is not a plain file name in its directory: the file is damaged "
            "or tampered with; re-create it"
        )
    return name
