"""The README's example outputs are what the commands print: each fenced block of `gpt2train plan` commands that
is followed at once by a fenced output block must match the first command's real output, character for character."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.helpers import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def fenced_blocks(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, content) of every ``` block of a Markdown text (line numbers from 0)."""
    blocks, start = [], None
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("```"):
            if start is None:
                start = i
            else:
                blocks.append((start, i, "".join(lines[start + 1 : i])))
                start = None
    return blocks


def plan_examples() -> list[tuple[str, str]]:
    """(command, the output block shown right after it) for each README example of `gpt2train plan`."""
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    examples = []
    for (_, end, commands), (start, _, shown) in zip(blocks, blocks[1:]):
        lines = [ln for ln in commands.splitlines() if ln.strip()]
        if start == end + 1 and lines and all(ln.startswith("gpt2train plan ") for ln in lines):
            examples.append((lines[0].split("#")[0].strip(), shown))
    return examples


def test_the_readme_has_plan_examples():
    assert plan_examples(), "no `gpt2train plan` example with its output found in README.md"


@pytest.mark.parametrize(("command", "shown"), [pytest.param(c, s, id=c) for c, s in plan_examples()])
def test_plan_example_output_matches(command, shown, capsys):
    code, out, err = run_cli(shlex.split(command)[1:], capsys)
    assert code == 0, err
    assert out == shown, f"README.md shows another output for `{command}`: update it to\n{out}"
