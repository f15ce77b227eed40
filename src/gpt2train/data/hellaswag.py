"""HellaSwag validation files (the official jsonl, or the same fields without ctx_a/ctx_b)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gpt2train.errors import UserError


@dataclass(frozen=True)
class HellaSwagExample:
    ctx: str
    endings: tuple[str, str, str, str]
    label: int


def load_examples(path) -> list[HellaSwagExample]:
    """Parse a HellaSwag jsonl file; each bad line is an error naming the file and line."""
    examples = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read HellaSwag file {path}: {e.strerror or e}") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            for key in ("ctx", "endings", "label"):
                if key not in obj:
                    raise UserError(f"{path}:{lineno}: HellaSwag example has no '{key}' field")
            endings = obj["endings"]
            if not isinstance(endings, list) or len(endings) != 4:
                n = len(endings) if isinstance(endings, list) else "no list of"
                raise UserError(f"{path}:{lineno}: HellaSwag example has {n} endings, expected 4")
            label = int(obj["label"])
            if label not in range(4):
                raise UserError(f"{path}:{lineno}: label {label} is not in 0..3")
            examples.append(HellaSwagExample(str(obj["ctx"]), tuple(str(e) for e in endings), label))
    if not examples:
        raise UserError(f"HellaSwag file {path} holds no examples")
    return examples
