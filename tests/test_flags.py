"""`gpt2train train`'s flags are written once, on TrainConfig's fields: the parser, `--help` and docs/training.md's
flag table come from them, so they cannot drift apart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gpt2train.cli import build_parser
from gpt2train.cli.train_cmd import FLAG_TABLE_START, config_from_args, flag_fields, flag_table, with_flag_table
from gpt2train.config import TrainConfig
from tests.helpers import run_cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def parse(*argv: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_every_field_but_extra_has_flags_and_help():
    for f in dataclasses.fields(TrainConfig):
        if f.name == "extra":
            assert "flags" not in f.metadata
            continue
        flags, text = f.metadata.get("flags"), f.metadata.get("help")
        assert flags and text and text.strip() == text, f.name
        *short, long = flags
        assert long.startswith("--") and all(s.startswith("-") and not s.startswith("--") for s in short), f.name
        if f.type == "bool":  # a switch: one long option that flips the default
            assert not short and long.startswith("--no-") == f.default, f.name


def test_each_flag_is_used_once():
    flags = [flag for f in flag_fields() for flag in f.metadata["flags"]]
    assert len(flags) == len(set(flags))


def test_every_auto_setting_says_what_minus_one_means():
    for f in flag_fields():
        if f.default == -1 and f.type == "int":
            assert "-1:" in f.metadata["help"], f.name


def test_no_arguments_give_the_defaults():
    assert parse() == TrainConfig()


def test_flags_set_their_fields():
    cfg = parse("-b", "auto", "-h", "1", "--no-shuffle", "--plain", "--no-tensorboard", "--wandb", "proj", "-l", "1e-3",
                "--optimizer", "muon", "--n-layer", "2", "-pn", "1", "-pr", "0")  # fmt: skip
    assert (cfg.batch_size, cfg.hellaswag, cfg.shuffle, cfg.plain, cfg.tensorboard) == (0, 1, False, True, False)
    assert (cfg.wandb, cfg.lr, cfg.optimizer, cfg.n_layer) == ("proj", 1e-3, "muon", 2)
    assert parse("--batch-size", "8").batch_size == 8


def test_a_bad_batch_size_is_a_usage_error(capsys):
    code, _, err = run_cli(["train", "-b", "many"], capsys)
    assert code == 2 and "argument -b/--batch-size: expected an integer or 'auto', got 'many'" in err


def test_help_lists_every_option_with_its_default(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    text = " ".join(out.split())  # argparse wraps lines
    assert code == 0
    for f in flag_fields():
        assert all(flag in text for flag in f.metadata["flags"]), f.name
    assert text.count("(default: ") == len(flag_fields())
    assert "model_%08d.bin" in text  # help is %-formatted by argparse: the field's text comes out as written
    assert "-pn" not in text  # llm.c's multi-node flags are accepted, not listed


def test_docs_flag_table_is_the_generated_one():
    doc = DOC.read_text(encoding="utf-8")
    assert FLAG_TABLE_START in doc
    assert with_flag_table(doc) == doc, (
        "docs/training.md's flag table differs from TrainConfig's: run "
        "`python -m gpt2train.cli.train_cmd --write-flag-table` from the repository root"
    )


def test_flag_table_has_a_row_per_flag():
    rows = flag_table().splitlines()[2:]
    assert len(rows) == len(flag_fields())
    for row, f in zip(rows, flag_fields()):
        assert row.count(" | ") == 3 and f" {f.metadata['flags'][-1]} " in row  # `|` in help is escaped


def test_flag_table_needs_its_markers():
    with pytest.raises(ValueError, match="markers"):
        with_flag_table("no table here\n")
