"""torch.distributed setup from torchrun's environment (or llm.c's -pn/-pr flags), and small collectives."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gpt2train.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int) -> torch.device:
    """``auto`` takes this process's GPU when CUDA is there, else the CPU."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def setup(device_preference: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        # a dead or hung rank ends the job after timeout_s instead of hanging it forever
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)  # fmt: skip
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def first_failure(message: str | None, device: torch.device) -> tuple[int, str] | None:
    """Collective: each rank passes its error (None if it succeeded); every rank gets (rank, error) of the
    lowest failing rank, or None if none failed. One scalar all-reduce when nothing failed."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return None if message is None else (0, message)
    world, rank = dist.get_world_size(), dist.get_rank()
    flag = torch.tensor(float(rank if message is not None else world), device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    failing = int(flag.item())
    if failing == world:
        return None
    box = [message]
    dist.broadcast_object_list(box, src=failing, device=device if device.type == "cuda" else None)
    return failing, box[0]
