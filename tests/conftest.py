"""Test fixtures: a tiny model shape, and data made from the repository alone (Python's own docs as text,
synthetic HellaSwag examples), so the whole suite runs on a fresh clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpt2train.config import ModelConfig
from gpt2train.data.text_sources import pydoc_docs
from tests.helpers import write_hellaswag


@pytest.fixture(scope="session")
def pydoc_text() -> str:
    """Python's reference docs (pydoc_data.topics) as one text, documents apart by blank lines: ~139k tokens."""
    return "\n\n".join(pydoc_docs())


@pytest.fixture(scope="session")
def hellaswag_jsonl(tmp_path_factory) -> Path:
    """A HellaSwag-format jsonl of 32 synthetic examples (the official file's fields), for eval tests."""
    return write_hellaswag(tmp_path_factory.mktemp("hellaswag") / "hellaswag_val.jsonl", 32)


@pytest.fixture
def tiny_config() -> ModelConfig:
    """2 layers, 64 channels: the model size of every CPU test."""
    return ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=64)


TINY_ARGS = ["--n-layer", "2", "--n-head", "4", "--n-embd", "64", "--max-seq-len", "64"]


@pytest.fixture(scope="session")
def text_shards(tmp_path_factory) -> dict:
    """Python's docs as GPT-2 tokens (EOT before each document): {'train': path, 'val': path}; the first 10%
    is val."""
    from gpt2train.data.tokenizer import EOT_TOKEN, encode
    from gpt2train.formats.shards import write_shard

    out = tmp_path_factory.mktemp("text")
    tokens = np.array([t for doc in pydoc_docs() for t in (EOT_TOKEN, *encode(doc))], dtype=np.uint16)
    n_val = len(tokens) // 10
    paths = {"val": out / "text_val.bin", "train": out / "text_train.bin"}
    write_shard(paths["val"], tokens[:n_val])
    write_shard(paths["train"], tokens[n_val:])
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def cli_main():
    """``gpt2train.cli.main``, the in-process command line."""
    from gpt2train.cli import main

    return main
