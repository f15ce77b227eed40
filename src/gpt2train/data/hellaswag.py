"""HellaSwag validation files (the official jsonl, or the same fields without ctx_a/ctx_b)."""

from __future__ import annotations

from dataclasses import dataclass

from gpt2train.errors import UserError
from gpt2train.formats.json_text import parse_json


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
    lineno = 0
    try:
        with f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                examples.append(_example(parse_json(line, f"{path}:{lineno}"), f"{path}:{lineno}"))
    except UnicodeDecodeError:
        raise UserError(f"{path}:{lineno + 1}: not UTF-8 text; is this the HellaSwag jsonl file?") from None
    if not examples:
        raise UserError(f"HellaSwag file {path} holds no examples")
    return examples


def _example(obj, where: str) -> HellaSwagExample:
    """One line's example, every field of the type llm.c's files hold: ctx a string, endings a list of four
    strings, label an int in 0..3 (not a bool, float or string: those would be scored silently as something else)."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: a HellaSwag line must be a JSON object, not {type(obj).__name__}")
    for key in ("ctx", "endings", "label"):
        if key not in obj:
            raise UserError(f"{where}: HellaSwag example has no '{key}' field")
    ctx, endings, label = obj["ctx"], obj["endings"], obj["label"]
    if not isinstance(ctx, str):
        raise UserError(f"{where}: HellaSwag 'ctx' is {ctx!r}, expected a string")
    if not isinstance(endings, list) or len(endings) != 4:
        n = len(endings) if isinstance(endings, list) else "no list of"
        raise UserError(f"{where}: HellaSwag example has {n} endings, expected 4")
    if not all(isinstance(e, str) for e in endings):
        raise UserError(f"{where}: HellaSwag endings must be 4 strings, got {endings!r}"[:300])
    if isinstance(label, bool) or not isinstance(label, int) or label not in range(4):
        raise UserError(f"{where}: label {label!r} is not an integer in 0..3")
    return HellaSwagExample(ctx, tuple(endings), label)
