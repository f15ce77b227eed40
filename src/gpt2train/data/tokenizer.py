"""GPT-2's BPE through tiktoken, built offline from GPT-2's own files shipped in this package.

tiktoken would normally download encoder.json and vocab.bpe; ``gpt2_bpe/`` holds the same two files
(OpenAI's gpt-2 repository, MIT license: see gpt2_bpe/NOTICE), checked against their sha256 before use,
so tokenizing never needs the network and never trusts a changed file.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from gpt2train.errors import UserError

EOT_TOKEN = 50256
_GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


BPE_DIR = Path(__file__).with_name("gpt2_bpe")
# the hashes tiktoken checks its downloads of the same files against
BPE_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


def read_bpe_file(name: str) -> bytes:
    """The bytes of GPT-2's BPE file ``name`` (encoder.json or vocab.bpe), after checking their sha256."""
    path = BPE_DIR / name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read GPT-2's BPE file {path}: {e.strerror or e}; reinstall gpt2train") from None
    if hashlib.sha256(data).hexdigest() != BPE_SHA256[name]:
        raise UserError(f"{path} is not GPT-2's {name} (its sha256 differs): reinstall gpt2train")
    return data


def checked_bpe_dir() -> Path:
    """The folder of GPT-2's encoder.json and vocab.bpe, both checked against their sha256."""
    for name in BPE_SHA256:
        read_bpe_file(name)
    return BPE_DIR


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

    byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
    encoder = json.loads(read_bpe_file("encoder.json"))
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
