"""llm.c token shards: a 256 x int32 little-endian header, then uint16 tokens.

Header: [0] = 20240520 (magic), [1] = 1 (version), [2] = number of tokens. llm.c's HellaSwag
eval files use magic 20240522 and are not token shards. Shards are memory-mapped, never read
whole into RAM, and every check names the file.
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
    expected = HEADER_BYTES + ntok * TOKEN_DTYPE.itemsize
    if size < expected:
        raise UserError(
            f"token shard {path} is truncated: header says {ntok} tokens ({expected} bytes) but the file has "
            f"{size} bytes; re-create it"
        )
    return ShardInfo(path=path, num_tokens=ntok, file_bytes=size)


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
