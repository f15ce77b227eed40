"""JSON from files a user hands us: a damaged file is one ``error:`` line that names it (and the line), never a
traceback."""

from __future__ import annotations

import json
from pathlib import Path

from gpt2train.errors import UserError


def parse_json(text: str, where: str):
    """``json.loads(text)``, or a UserError starting with ``where`` (a file, or ``file:line``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply") from None


def read_json_object(path: str | Path, remedy: str) -> dict:
    """The JSON object in the file ``path``; a UserError naming it (and saying ``remedy``) when it cannot be read,
    is not JSON or holds something else than an object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    obj = parse_json(text, str(path))
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a JSON object: {remedy}")
    return obj
