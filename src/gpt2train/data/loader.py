"""Batches of token sequences from llm.c shards, for training and for validation.

Training order is a function of the seed and the total batch size only, never of the world size:
every step's global batch is a fixed list of sequences, and each rank takes its own slice of it.
So 1 GPU and 8 GPUs see the same tokens at the same step, and a run can resume on another GPU
count. Shards are opened lazily and read with positioned reads; with ``shuffle`` the shard order and the order
of sequences inside each shard are permuted per epoch by generators seeded from (seed, epoch[, shard]).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from gpt2train.config import is_int
from gpt2train.errors import UserError
from gpt2train.formats.shards import (
    HEADER_BYTES,
    TOKEN_DTYPE,
    ShardInfo,
    check_token_ids,
    expand_pattern,
    read_shard_header,
)


class ShardUnreadable(UserError):
    """A train or val shard that could be read at start-up can no longer be read."""


class ShardSet:
    """A sorted list of shards, headers checked up front, tokens read with positioned reads.

    Positioned reads (not a memory map) so that a shard that is truncated, removed from a network
    filesystem or fails with an I/O error mid-run raises :class:`ShardUnreadable`, which the trainer
    turns into a checkpoint and one line, instead of a bus error that kills the process.
    """

    def __init__(self, pattern: str, flag: str, vocab_size: int | None = None):
        self.pattern = pattern
        self.infos: list[ShardInfo] = [read_shard_header(p) for p in expand_pattern(pattern, flag)]
        # every token must have a row in the model (and be a possible target): checked as each shard is opened, so
        # that a start on 100 shards does not read 20 GB first (check_shards checks them all at once)
        self.vocab_size = vocab_size
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.infos)

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)

    @property
    def num_tokens(self) -> int:
        return sum(i.num_tokens for i in self.infos)

    def _read_bytes(self, shard: int, nbytes: int, offset: int) -> bytes:
        if shard not in self._fds:
            if self.vocab_size is not None:
                try:
                    check_token_ids(self.infos[shard], self.vocab_size)
                except UserError as e:  # the run stops as for a damaged shard: a checkpoint, then one line
                    raise ShardUnreadable(str(e)) from None
            self._fds[shard] = os.open(self.infos[shard].path, os.O_RDONLY)
        return os.pread(self._fds[shard], nbytes, offset)

    def read(self, shard: int, start: int, count: int) -> np.ndarray:
        """Tokens ``[start, start + count)`` of shard ``shard`` as uint16."""
        info = self.infos[shard]
        nbytes = count * TOKEN_DTYPE.itemsize
        try:
            data = self._read_bytes(shard, nbytes, HEADER_BYTES + start * TOKEN_DTYPE.itemsize)
        except OSError as e:
            raise ShardUnreadable(f"token shard {info.path} became unreadable: {e.strerror or e}") from None
        if len(data) != nbytes:
            raise ShardUnreadable(f"token shard {info.path} became unreadable: it is now shorter than the "
                                  f"{info.num_tokens} tokens its header announced")  # fmt: skip
        return np.frombuffer(data, dtype=TOKEN_DTYPE)


def check_shards(pattern: str, flag: str, vocab_size: int | None) -> None:
    """Every shard of ``pattern``: header and length, and (with ``vocab_size``) token ids below it, or a UserError
    naming the shard; the id scan's result is cached per file."""
    for info in ShardSet(pattern, flag).infos:
        if vocab_size is not None:
            check_token_ids(info, vocab_size)


def shard_order(num_shards: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order of the shards in an epoch: permuted by a generator seeded from (seed, epoch) with ``shuffle``."""
    if not shuffle:
        return np.arange(num_shards)
    return np.random.default_rng([seed, epoch]).permutation(num_shards)


@dataclass
class LoaderPosition:
    """Where the next global step starts: epoch, index into the epoch's shard order, sequence index."""

    epoch: int = 0
    shard_pos: int = 0
    seq_pos: int = 0


class TrainLoader:
    """Serves each step's micro-batches for one rank: ``next_step()`` -> list of (inputs, targets)."""

    def __init__(
        self,
        pattern: str,
        batch_size: int,
        seq_len: int,
        total_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 42,
        shuffle: bool = True,
        flag: str = "-i",
        on_epoch_end: Callable[[int], None] | None = None,
        vocab_size: int | None = None,
    ):
        B, T = batch_size, seq_len
        if total_batch_size % (B * T * world_size) != 0:
            raise UserError(
                f"-d {total_batch_size} is not divisible by B*T*world = {B}*{T}*{world_size} = {B * T * world_size}; "
                "choose -d as a multiple of it"
            )
        self.shards = ShardSet(pattern, flag, vocab_size)
        self.B, self.T, self.rank, self.world = B, T, rank, world_size
        self.seqs_per_step = total_batch_size // T
        self.grad_accum = total_batch_size // (B * T * world_size)
        self.seed, self.shuffle = seed, shuffle
        self.on_epoch_end = on_epoch_end
        self.seqs_in_shard = [(i.num_tokens - 1) // T for i in self.shards.infos]
        total_seqs = sum(self.seqs_in_shard)
        if total_seqs < self.seqs_per_step:
            raise UserError(
                f"{flag} {pattern!r} holds {self.shards.num_tokens} tokens, fewer than one step needs "
                f"({total_batch_size + 1}); use more data or a smaller -d / -b / -t"
            )
        self.pos = LoaderPosition()
        self._perm_cache: tuple[tuple[int, int], np.ndarray] | None = None

    @property
    def num_tokens(self) -> int:
        return self.shards.num_tokens

    # -- order ----------------------------------------------------------------------------------
    def _shard_order(self, epoch: int) -> np.ndarray:
        return shard_order(len(self.shards), self.seed, epoch, self.shuffle)

    def _seq_order(self, epoch: int, shard: int) -> np.ndarray:
        key = (epoch, shard)
        if self._perm_cache is None or self._perm_cache[0] != key:
            n = self.seqs_in_shard[shard]
            order = np.random.default_rng([self.seed, epoch, shard]).permutation(n) if self.shuffle else np.arange(n)
            self._perm_cache = (key, order)
        return self._perm_cache[1]

    def _take_global(self, count: int) -> list[tuple[int, int]]:
        """The next ``count`` sequences of the global stream as (shard, start token), advancing the position."""
        out = []
        order = self._shard_order(self.pos.epoch)
        while len(out) < count:
            shard = int(order[self.pos.shard_pos])
            n = self.seqs_in_shard[shard]
            take = min(count - len(out), n - self.pos.seq_pos)
            if take > 0:
                seq_ids = self._seq_order(self.pos.epoch, shard)[self.pos.seq_pos : self.pos.seq_pos + take]
                out.extend((shard, int(s) * self.T) for s in seq_ids)
                self.pos.seq_pos += take
            if self.pos.seq_pos >= n:
                self.pos.shard_pos += 1
                self.pos.seq_pos = 0
                if self.pos.shard_pos >= len(order):
                    if self.on_epoch_end:
                        self.on_epoch_end(self.pos.epoch)
                    self.pos = LoaderPosition(epoch=self.pos.epoch + 1)
                    order = self._shard_order(self.pos.epoch)
        return out

    # -- batches --------------------------------------------------------------------------------
    def next_step(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's ``grad_accum`` micro-batches of the next global step, each (B, T) int64 pair."""
        seqs = self._take_global(self.seqs_per_step)
        per_rank = self.seqs_per_step // self.world
        mine = seqs[self.rank * per_rank : (self.rank + 1) * per_rank]
        batches = []
        for m in range(self.grad_accum):
            buf = np.empty((self.B, self.T + 1), dtype=np.int64)
            for row, (shard, start) in enumerate(mine[m * self.B : (m + 1) * self.B]):
                buf[row] = self.shards.read(shard, start, self.T + 1)
            t = torch.from_numpy(buf)
            batches.append((t[:, :-1], t[:, 1:]))
        return batches

    def state_dict(self) -> dict:
        return {"position": asdict(self.pos), "seed": self.seed, "shuffle": self.shuffle,
                "seqs_per_step": self.seqs_per_step, "seq_len": self.T,
                "shards": [[i.path, i.num_tokens] for i in self.shards.infos]}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        """Restore the exact position; the data must be the same shards, order settings and step size.
        ``state`` must have passed :func:`loader_state_problem` (the checkpoint reader checks it)."""
        mine = self.state_dict()
        for key in ("seed", "shuffle", "seqs_per_step", "seq_len"):
            if state[key] != mine[key]:
                raise UserError(
                    f"cannot resume: the checkpoint's data loader had {key}={state[key]} but this run has "
                    f"{key}={mine[key]}; resume with the same -t/-d/seed or start fresh (-y 0)"
                )
        if [n for _, n in state["shards"]] != [n for _, n in mine["shards"]]:
            raise UserError("cannot resume: the train shards (-i) differ from the checkpoint's (count or sizes)")
        self.pos = LoaderPosition(**state["position"])


def loader_state_problem(state) -> str | None:
    """What is wrong with a :meth:`TrainLoader.state_dict` read from a file, or None: the types of every field,
    and a position that lies inside the shards it records (the shard order replayed from the seed)."""
    if not isinstance(state, dict):
        return "the loader state is not an object"
    for key, ok in (("seed", is_int), ("shuffle", lambda v: isinstance(v, bool)), ("seqs_per_step", is_int),
                    ("seq_len", is_int), ("shards", lambda v: isinstance(v, list)),
                    ("position", lambda v: isinstance(v, dict))):  # fmt: skip
        if key not in state:
            return f"the loader state has no {key!r}"
        if not ok(state[key]):
            return f"the loader state's {key!r} is {state[key]!r} of the wrong type"
    if state["seq_len"] <= 0 or state["seqs_per_step"] <= 0 or not 0 <= state["seed"] < 2**63:
        return "the loader state's seq_len, seqs_per_step or seed is out of range"
    shards = state["shards"]
    if not shards or not all(isinstance(s, list) and len(s) == 2 and is_int(s[1]) and s[1] > 0 for s in shards):
        return "the loader state's shard list is not a non-empty list of [path, token count]"
    pos = state["position"]
    if set(pos) != {"epoch", "shard_pos", "seq_pos"} or not all(is_int(v) and v >= 0 for v in pos.values()):
        return f"the loader position {pos!r} is not three counts >= 0 (epoch, shard_pos, seq_pos)"
    if pos["shard_pos"] >= len(shards):
        return f"the loader position's shard_pos {pos['shard_pos']} is out of range for {len(shards)} shards"
    order = shard_order(len(shards), state["seed"], pos["epoch"], state["shuffle"])
    seqs = (shards[int(order[pos["shard_pos"]])][1] - 1) // state["seq_len"]
    if pos["seq_pos"] >= max(seqs, 1):
        return f"the loader position's seq_pos {pos['seq_pos']} is out of range for a shard of {seqs} sequences"
    return None


class ValLoader:
    """llm.c's validation batches: batch k is tokens [k*B*T, k*B*T + B*T + 1) of a shard, in order.

    Batches never cross a shard boundary. With several ranks, rank r evaluates batches r, r+world, ...
    and the caller sums and divides by the batch count, so the val loss does not depend on the world size.
    """

    def __init__(self, pattern: str, batch_size: int, seq_len: int, max_batches: int, flag: str = "-j",
                 warn: Callable[[str], None] | None = None, vocab_size: int | None = None):  # fmt: skip
        self.shards = ShardSet(pattern, flag, vocab_size)
        self.B, self.T = batch_size, seq_len
        starts = []
        for s, info in enumerate(self.shards.infos):
            n = (info.num_tokens - 1) // (batch_size * seq_len)
            starts.extend((s, k * batch_size * seq_len) for k in range(n))
        if not starts:
            raise UserError(
                f"{flag} {pattern!r} holds fewer tokens than one val batch of B*T+1 = {batch_size * seq_len + 1}; "
                "use a smaller -b/-t or more val data"
            )
        if max_batches < 0:
            max_batches = len(starts)
        elif max_batches > len(starts):
            if warn:
                warn(
                    f"-m {max_batches} is more than the {len(starts)} val batches the split holds; using {len(starts)}"
                )
            max_batches = len(starts)
        self.batch_starts = starts[:max_batches]

    def __len__(self) -> int:
        return len(self.batch_starts)

    def batches(self, rank: int = 0, world_size: int = 1):
        """Yield this rank's (inputs, targets) val batches."""
        for shard, start in self.batch_starts[rank::world_size]:
            chunk = self.shards.read(shard, start, self.B * self.T + 1).astype(np.int64)
            t = torch.from_numpy(chunk)
            yield t[:-1].view(self.B, self.T), t[1:].view(self.B, self.T)
