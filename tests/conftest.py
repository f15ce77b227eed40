"""Shared test fixtures: the shared data folder, a tiny model shape, tinyshakespeare shards."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from gpt2train.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("GPT2TRAIN_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $GPT2TRAIN_SHARED/data): real text files for tests."""
    d = _shared_dir() / "data"
    if not d.exists():
        pytest.skip(f"shared data folder {d} not found")
    return d


@pytest.fixture
def tiny_config() -> ModelConfig:
    """2 layers, 64 channels: the model size of every CPU test."""
    return ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=64)


TINY_ARGS = ["--n-layer", "2", "--n-head", "4", "--n-embd", "64", "--max-seq-len", "64"]


@pytest.fixture(scope="session")
def shakespeare_shards(tmp_path_factory, shared_data) -> dict:
    """tinyshakespeare as GPT-2 tokens: {'train': path, 'val': path}; the first 10% is val."""
    from gpt2train.data.tokenizer import EOT_TOKEN, encode
    from gpt2train.formats.shards import write_shard

    out = tmp_path_factory.mktemp("shakespeare")
    text = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")
    tokens = np.array([EOT_TOKEN] + encode(text), dtype=np.uint16)
    n_val = len(tokens) // 10
    paths = {"val": out / "tiny_shakespeare_val.bin", "train": out / "tiny_shakespeare_train.bin"}
    write_shard(paths["val"], tokens[:n_val])
    write_shard(paths["train"], tokens[n_val:])
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def cli_main():
    """``gpt2train.cli.main``, the in-process command line."""
    from gpt2train.cli import main

    return main
