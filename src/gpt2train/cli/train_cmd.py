"""`gpt2train train`: llm.c's flags (same letters, same defaults) beside readable long options.

The flags, defaults and help are TrainConfig's (config.py's ``setting``); the parser and docs/training.md's flag
table are both built from them. After changing a field, refresh the table from the repository root with
``python -m gpt2train.cli.train_cmd --write-flag-table`` (tests/test_flags.py fails until it matches).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from gpt2train.config import TrainConfig
from gpt2train.errors import UserError
from gpt2train.paths import cache_dir

FLAG_TABLE_DOC = Path(__file__).resolve().parents[3] / "docs" / "training.md"
FLAG_TABLE_START = "<!-- flag table: made by python -m gpt2train.cli.train_cmd --write-flag-table -->"
FLAG_TABLE_END = "<!-- end of the flag table -->"


def _batch_size(text: str) -> int | str:
    """-b N, or -b auto (kept as the word here; config_from_args stores it as 0 and refuses a literal 0)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


# argparse's type for each TrainConfig annotation (None, the default of some, is never parsed); -b also takes auto
_TYPES = {"int": int, "float": float, "str": str}
_PARSE_AS = {"batch_size": _batch_size}


def flag_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields that have flags (every one but ``extra``), in the class's order."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("flags")]


def _add_flag(p: argparse.ArgumentParser, f: dataclasses.Field) -> None:
    flags, text = f.metadata["flags"], f.metadata["help"].replace("%", "%%")  # argparse %-formats help
    if f.type == "bool":  # a switch that flips the default: --no-shuffle, --plain
        action = "store_false" if f.default else "store_true"
        p.add_argument(*flags, dest=f.name, action=action, default=f.default, help=text)
        return
    typ = _PARSE_AS.get(f.name) or _TYPES[f.type.removesuffix(" | None")]
    p.add_argument(*flags, dest=f.name, type=typ, default=f.default, metavar=f.metadata["metavar"], help=text)


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a GPT-2 (llm.c's flags)",
        add_help=False,  # -h is HellaSwag, as in llm.c
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a GPT-2 from scratch or from a checkpoint. Flags and defaults follow llm.c's "
        "train_gpt2cu; every flag also has a long option.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    for f in flag_fields():
        _add_flag(p, f)
    # llm.c's multi-node flags: accepted so pasted commands work; torchrun's environment is what counts
    for flag in ("-pn", "-pr", "-pg", "-pi", "-ps", "-pf", "-pm", "-pp"):
        p.add_argument(flag, dest="llmc_" + flag[1:], default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _table_default(f: dataclasses.Field) -> str:
    if f.type == "bool":
        return "off"  # the switch not given
    return "none" if f.default is None else f"`{f.default}`"


def flag_table() -> str:
    """The Markdown table of every flag (llm.c's short one, the long option, the default, the help), in
    TrainConfig's order: what docs/training.md shows between its flag table markers."""
    rows = ["| flag | long option | default | meaning |", "|---|---|---|---|"]
    for f in flag_fields():
        *short, long = f.metadata["flags"]
        meaning = f.metadata["help"].replace("|", "\\|").replace("*", "\\*")  # Markdown's table cell, no emphasis
        rows.append(f"| {' '.join(short)} | {long} | {_table_default(f)} | {meaning} |")
    return "\n".join(rows) + "\n"


def with_flag_table(doc: str) -> str:
    """``doc`` (docs/training.md's text) with flag_table() between its markers."""
    head, start, rest = doc.partition(FLAG_TABLE_START + "\n")
    _, end, tail = rest.partition(FLAG_TABLE_END)
    if not start or not end:
        raise ValueError(f"the flag table's markers are missing: {FLAG_TABLE_START} ... {FLAG_TABLE_END}")
    return head + start + flag_table() + end + tail


def config_from_args(args) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    if values.get("batch_size") == "auto":
        values["batch_size"] = 0  # the trainer probes for the largest B that fits
    elif isinstance(values.get("batch_size"), int) and values["batch_size"] < 1:
        raise UserError(f"-b {values['batch_size']}: use -b auto for the largest micro-batch that fits, or a "
                        "positive -b")  # fmt: skip
    return TrainConfig(**values)


def run(args) -> int:
    from gpt2train.train.launch import apply_llmc_process_flags
    from gpt2train.train.loop import train

    apply_llmc_process_flags(args)
    # growable segments keep the allocator from fragmenting between differently sized step buffers
    # (the difference between nvidia-smi's and the allocator's peak); read when CUDA starts, so set here
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    # compiled kernels kept beside our other caches (not in /tmp), so a second start skips compilation
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    code = train(config_from_args(args))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # the run's files are closed and its process group destroyed; the interpreter's own teardown can still
        # abort a process in torch's gloo threads ("terminate called without an active exception", a finished run
        # exiting -6 under load in a fresh-clone CI run), so a process of several leaves without it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="Write the flag table into docs/training.md.")
    cli.add_argument("--write-flag-table", action="store_true", required=True)
    cli.add_argument("doc", nargs="?", default=FLAG_TABLE_DOC, type=Path)
    doc = cli.parse_args().doc
    doc.write_text(with_flag_table(doc.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the flag table into {doc}")
