"""Checks made once before the first step, so a run fails in seconds rather than at its first checkpoint.

- the output dir has free space for at least three checkpoints (the newest, the one being written, and
  one spare for retention to delete after the new one is complete);
- on CUDA, the first step's peak memory is reported (one line), so the headroom is known early.
Shard headers are checked by the data loader when it opens them.
"""

from __future__ import annotations

import shutil

import torch

from gpt2train.errors import UserError

CHECKPOINTS_NEEDED = 3


def checkpoint_bytes(num_params: int, model_file_dtype: str, master_weights: bool,
                     bf16_params: bool = False) -> dict[str, int]:  # fmt: skip
    """Estimated sizes of one checkpoint: the llm.c model file and the optimizer state (all ranks together).

    The state holds AdamW's two fp32 moments per parameter, plus the fp32 parameters themselves when the
    model file (bf16) cannot hold them exactly, or the optimizer's fp32 master copy (``--bf16-params 1``)."""
    model = num_params * (4 if model_file_dtype == "fp32" else 2)
    extra = 4 if (bf16_params or (model_file_dtype != "fp32" and master_weights)) else 0
    state = num_params * (2 * 4 + extra) + (1 << 20)  # +1 MiB: RNG states, JSON metadata, headers
    return {"model": model, "state": state}


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def check_output_space(out_dir: str, num_params: int, model_file_dtype: str, master_weights: bool,
                       checkpoint_every: int, bf16_params: bool = False) -> None:  # fmt: skip
    """UserError naming -o and the sizes when ``out_dir`` cannot hold the checkpoints this run will write."""
    if not out_dir:
        return
    sizes = checkpoint_bytes(num_params, model_file_dtype, master_weights, bf16_params)
    each = sizes["model"] + sizes["state"]
    # -n 0 still writes one on SIGTERM/SIGUSR1; with -n, the new one is complete before retention deletes
    count = CHECKPOINTS_NEEDED if checkpoint_every > 0 else 1
    free = shutil.disk_usage(out_dir).free
    if free < count * each:
        raise UserError(
            f"-o {out_dir}: {_gib(free)} free, but {count} checkpoint(s) of this model need about "
            f"{_gib(count * each)} (each: model file {_gib(sizes['model'])} + optimizer state "
            f"{_gib(sizes['state'])}); free space or point -o at a larger disk"
        )


def first_step_memory(device: torch.device, largest_batch: int | None = None) -> str | None:
    """One line on the first step's peak GPU memory, and the largest B the planner expects to fit (None off CUDA)."""
    if device.type != "cuda":
        return None
    from gpt2train.train.memory import usable_gpu_memory

    total = usable_gpu_memory(device)
    peak = torch.cuda.max_memory_reserved(device)
    line = (f"first step peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated, "
            f"{peak / 2**30:.2f} GiB reserved of {total / 2**30:.1f} GiB ({peak / total:.0%})")  # fmt: skip
    if largest_batch:
        line += f"; the largest B that should fit: {largest_batch} (gpt2train plan's estimate)"
    return line
