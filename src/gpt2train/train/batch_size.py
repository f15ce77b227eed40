"""``-b auto``: the largest micro-batch that fits, keeping the total batch (-d) by adjusting accumulation."""

from __future__ import annotations

import torch

from gpt2train.errors import UserError
from gpt2train.precision import autocast


def candidate_sizes(total_batch: int, seq_len: int, world_size: int, limit: int = 1024) -> list[int]:
    """Micro-batch sizes B (largest first) for which -d is a whole number of B*T*world micro-batches."""
    if total_batch <= 0:
        return list(range(limit, 0, -1))
    seqs_per_rank, rem = divmod(total_batch, seq_len * world_size)
    if rem:
        raise UserError(
            f"-d {total_batch} is not divisible by T*world = {seq_len}*{world_size}: choose -d as a multiple"
        )
    return [b for b in range(min(seqs_per_rank, limit), 0, -1) if seqs_per_rank % b == 0]


def fits(model, batch_size: int, seq_len: int, device: torch.device, autocast_dtype) -> bool:
    """Run one real forward and backward at this size; False on CUDA out-of-memory."""
    vocab = model.config.vocab_size
    try:
        x = torch.randint(0, vocab, (batch_size, seq_len), device=device)
        with autocast(device, autocast_dtype):
            loss = model(x, x)
        loss.backward()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def auto_batch_size(model, total_batch: int, seq_len: int, world_size: int, device: torch.device,
                    autocast_dtype, start: int | None = None, cpu_default: int = 4,
                    reserve_bytes: int = 0) -> int:  # fmt: skip
    """On CUDA, probe real steps from ``start`` (the planner's estimate) downwards and upwards among the
    sizes that divide -d, with ``reserve_bytes`` held aside meanwhile (the optimizer state, which the first
    update allocates); on the CPU, the largest such size not above ``cpu_default``."""
    sizes = candidate_sizes(total_batch, seq_len, world_size)
    if device.type != "cuda":
        return next((b for b in sizes if b <= cpu_default), sizes[-1])
    try:
        held = torch.empty(reserve_bytes, dtype=torch.uint8, device=device)
    except torch.OutOfMemoryError:
        raise UserError(
            f"-b auto: the optimizer state ({reserve_bytes / 2**30:.1f} GiB) alone does not fit on "
            f"{torch.cuda.get_device_name(device)}; use -z 1 on several GPUs or a smaller model"
        ) from None
    try:
        return _largest_fitting(model, sizes, seq_len, device, autocast_dtype, start)
    finally:
        del held
        torch.cuda.empty_cache()


def _largest_fitting(model, sizes: list[int], seq_len: int, device: torch.device, autocast_dtype,
                     start: int | None) -> int:  # fmt: skip
    """Binary search over ``sizes`` (largest first; memory grows with B) by probing real steps."""
    lo, hi = len(sizes) - 1, 0  # indices: sizes[lo] smallest, sizes[hi] largest
    if start:
        hi = next((i for i, b in enumerate(sizes) if b <= 2 * start), hi)
    best = None
    while hi <= lo:
        mid = (hi + lo) // 2
        if fits(model, sizes[mid], seq_len, device, autocast_dtype):
            best, lo = sizes[mid], mid - 1
        else:
            hi = mid + 1
    if best is None:
        raise UserError(f"-b auto: not even B={sizes[-1]} fits on {torch.cuda.get_device_name(device)} at "
                        f"-t {seq_len}; use -r 2, -w 0 or a shorter -t")  # fmt: skip
    return best
