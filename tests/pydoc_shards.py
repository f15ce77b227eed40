"""Tiny train/val token shards from Python's own documentation (pydoc_data), so tests need no ../shared."""

from __future__ import annotations

import numpy as np
import pytest


def write_pydoc_shards(out_dir, chars: int = 200_000) -> dict:
    """{'train': path, 'val': path}: the first ``chars`` characters of pydoc_data's topics as GPT-2 tokens; the
    first 10% is val."""
    from gpt2train.data.text_sources import pydoc_docs
    from gpt2train.data.tokenizer import EOT_TOKEN, encode
    from gpt2train.formats.shards import write_shard

    text = "\n\n".join(pydoc_docs())[:chars]
    tokens = np.array([EOT_TOKEN] + encode(text), dtype=np.uint16)
    n_val = len(tokens) // 10
    paths = {"val": f"{out_dir}/pydoc_val.bin", "train": f"{out_dir}/pydoc_train.bin"}
    write_shard(paths["val"], tokens[:n_val])
    write_shard(paths["train"], tokens[n_val:])
    return paths


@pytest.fixture(scope="session")
def pydoc_shards(tmp_path_factory) -> dict:
    return write_pydoc_shards(tmp_path_factory.mktemp("pydoc"))
