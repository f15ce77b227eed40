"""GPT-2's BPE files shipped as package data: the same encoding as tiktoken builds from them, hash-checked."""

from __future__ import annotations

import shutil

import pytest
import tiktoken
import tiktoken.load

from gpt2train.data import tokenizer
from gpt2train.data.tokenizer import EOT_TOKEN, gpt2_encoding
from gpt2train.errors import UserError
from tests.helpers import run_cli


@pytest.fixture
def tampered_bpe_dir(tmp_path, monkeypatch):
    """A copy of the BPE folder with one byte of encoder.json changed, in the package's place."""
    copy = tmp_path / "gpt2_bpe"
    shutil.copytree(tokenizer.BPE_DIR, copy)
    data = bytearray((copy / "encoder.json").read_bytes())
    data[100] ^= 1
    (copy / "encoder.json").write_bytes(bytes(data))
    monkeypatch.setattr(tokenizer, "BPE_DIR", copy)
    gpt2_encoding.cache_clear()
    yield copy
    gpt2_encoding.cache_clear()  # the next user builds from the real files again


def test_encoding_equals_tiktoken_ranks_from_the_files(monkeypatch, pydoc_text):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files in place, cache nothing
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        str(tokenizer.BPE_DIR / "vocab.bpe"),
        str(tokenizer.BPE_DIR / "encoder.json"),
        vocab_bpe_hash=tokenizer.BPE_SHA256["vocab.bpe"],
        encoder_json_hash=tokenizer.BPE_SHA256["encoder.json"],
    )
    ours = gpt2_encoding()
    assert ours._mergeable_ranks == ranks and ours.n_vocab == 50257 and ours.eot_token == EOT_TOKEN
    reference = tiktoken.Encoding("gpt2-ref", pat_str=ours._pat_str, mergeable_ranks=ranks,
                                  special_tokens={"<|endoftext|>": EOT_TOKEN})  # fmt: skip
    text = pydoc_text[:50_000] + " héllo wörld 123 🙂"
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    assert ours.decode(ours.encode_ordinary(text)) == text


def test_tampered_file_is_a_one_line_error(tampered_bpe_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("some text\n\nmore text\n")
    code, _, err = run_cli(["prepare", "text", "--input", src, "-o", tmp_path / "out", "--no-progress"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert f"{tampered_bpe_dir / 'encoder.json'} is not GPT-2's encoder.json" in err
    assert "Traceback" not in err


def test_export_refuses_a_changed_vocab_bpe(tmp_path, monkeypatch, tiny_config):
    from gpt2train.formats.hf import write_hf_dir
    from gpt2train.model import build_model

    copy = tmp_path / "gpt2_bpe"
    shutil.copytree(tokenizer.BPE_DIR, copy)
    with open(copy / "vocab.bpe", "a", encoding="utf-8") as f:
        f.write("x y\n")  # one merge more
    monkeypatch.setattr(tokenizer, "BPE_DIR", copy)
    model = build_model(tiny_config, seed=0)
    with pytest.raises(UserError, match=r"gpt2_bpe/vocab\.bpe is not GPT-2's vocab\.bpe"):
        write_hf_dir(tmp_path / "hf", tiny_config, model.state_dict())
    assert not (tmp_path / "hf" / "merges.txt").exists()
