"""llm.c token shards: a 256 x int32 little-endian header, then uint16 tokens.

Header: [0] = 20240520 (magic), [1] = 1 (version), [2] = number of tokens. llm.c's HellaSwag
eval files use magic 20240522 and are not token shards. Shards are memory-mapped, never read
whole into RAM, and every check names the file. The header's count must equal the file's length, and
:func:`check_token_ids` refuses ids the model has no row for: a shard is trusted in no other way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpt2train.errors import UserError

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
EVAL_MAGIC = 20240522
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")


@dataclass(frozen=True)
class ShardInfo:
    path: str
    num_tokens: int
    file_bytes: int


def read_shard_header(path: str | os.PathLike) -> ShardInfo:
    """Check a shard's header and size; return its token count. Raises UserError naming the file."""
    path = str(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise UserError(f"cannot read token shard {path}: {e.strerror or e}") from None
    if len(raw) < HEADER_BYTES:
        raise UserError(f"token shard {path} is {size} bytes, shorter than its 1024-byte header: file is truncated")
    header = np.frombuffer(raw, dtype="<i4")
    if header[0] == EVAL_MAGIC:
        raise UserError(f"{path} is an llm.c eval file (magic {EVAL_MAGIC}), not a token shard")
    if header[0] != SHARD_MAGIC:
        raise UserError(f"{path} is not an llm.c token shard: magic {int(header[0])}, expected {SHARD_MAGIC}")
    if header[1] != SHARD_VERSION:
        raise UserError(f"token shard {path} has version {int(header[1])}, expected {SHARD_VERSION}")
    ntok = int(header[2])
    # the header's count must describe the whole file: a smaller one would train on a fraction of it
    # silently, a negative or larger one reads past the end
    held, odd = divmod(size - HEADER_BYTES, TOKEN_DTYPE.itemsize)
    if ntok != held or odd:
        what = "truncated or damaged" if ntok > held else "damaged (or has trailing data)"
        raise UserError(
            f"token shard {path} is {what}: its header says {ntok} tokens but the file holds "
            f"{size - HEADER_BYTES} bytes of tokens ({held} tokens); re-create it"
        )
    return ShardInfo(path=path, num_tokens=ntok, file_bytes=size)


# the largest token id of each shard checked so far, by (path, inode, size, mtime): a shard is scanned once per
# process even though the trainer, the loaders and `data info` all check it
_max_id_cache: dict[tuple, int] = {}
_SCAN_TOKENS = 1 << 24  # 32 MB per chunk: the scan of a 100M-token shard stays a fraction of a second


def max_token_id(info: ShardInfo) -> int:
    """The largest token id in a shard (-1 for an empty one), read in chunks from a memory map."""
    try:
        st = os.stat(info.path)
    except OSError as e:
        raise UserError(f"cannot read token shard {info.path}: {e.strerror or e}") from None
    key = (os.path.realpath(info.path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _max_id_cache:
        tokens = open_shard(info.path, info)
        top = -1
        for start in range(0, info.num_tokens, _SCAN_TOKENS):
            top = max(top, int(tokens[start : start + _SCAN_TOKENS].max()))
        _max_id_cache[key] = top
    return _max_id_cache[key]


def check_token_ids(info: ShardInfo, vocab_size: int) -> None:
    """UserError naming the shard when it holds a token id the model has no row for (>= ``vocab_size``);
    the padded rows of the embedding (50257..50303 for GPT-2) are never targets either."""
    top = max_token_id(info)
    if top < vocab_size:
        return
    tokens = open_shard(info.path, info)
    first = next(
        start + int(np.argmax(chunk >= vocab_size))
        for start in range(0, info.num_tokens, _SCAN_TOKENS)
        if (chunk := np.asarray(tokens[start : start + _SCAN_TOKENS])).max() >= vocab_size
    )
    raise UserError(
        f"token shard {info.path} holds token id {int(tokens[first])} at position {first}, but the model's "
        f"vocabulary has {vocab_size} ids (0..{vocab_size - 1}): the shard was made with another tokenizer or is "
        "damaged; re-create it with gpt2train prepare"
    )


def open_shard(path: str | os.PathLike, info: ShardInfo | None = None) -> np.memmap:
    """Memory-map a shard's tokens (uint16) after checking its header."""
    info = info or read_shard_header(path)
    return np.memmap(info.path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(info.num_tokens,))


def write_shard(path: str | os.PathLike, tokens) -> int:
    """Write tokens (any int array with values < 65536) as an llm.c shard, atomically."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise UserError(f"cannot write {path}: token ids must lie in [0, 65535] for uint16 shards")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, tokens.size
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(TOKEN_DTYPE, copy=False).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return int(tokens.size)


def expand_pattern(pattern: str, flag: str) -> list[str]:
    """Sorted files matching a glob (or one path); UserError naming ``flag`` if nothing matches."""
    import glob

    paths = sorted(glob.glob(pattern))
    if not paths and os.path.isfile(pattern):
        paths = [pattern]
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        raise UserError(f"{flag} {pattern!r} matches no files: check the path or prepare the data first")
    return paths
