"""torch.distributed setup from the launcher's environment, and small collectives.

torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...) or llm.c's -pn/-pr flags (train/launch.py) set the
process group up; without them, the tasks of an ``srun`` step (SLURM_PROCID, SLURM_STEP_NUM_TASKS,
SLURM_LOCALID) or of ``mpirun`` (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK) are recognised and joined the
same way, so they do not each train alone into the same -o.
"""

from __future__ import annotations

import datetime
import os
import re
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


DEFAULT_PORT = 29500


def first_node(nodelist: str) -> str | None:
    """The first host of a Slurm node list ("gpu[003-004,07],cpu1" -> "gpu003"), or None for a form this
    simple reader does not know (several bracket groups in one name: then MASTER_ADDR must be given)."""
    head = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?", nodelist)
    prefix, ranges, rest = head.group(1), head.group(2), nodelist[head.end() :]
    if ranges is None:
        return prefix or None
    first = re.match(r"\d+", ranges)
    if not first or (rest and not rest.startswith(",")):
        return None
    return prefix + first.group(0)


def _int_env(env, *names: str) -> int | None:
    for name in names:
        if env.get(name, "").strip():
            try:
                return int(env[name])
            except ValueError:
                raise UserError(f"{name}={env[name]!r} is not a whole number") from None
    return None


def launcher_environment(env=None) -> dict[str, str]:
    """The torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) for a launch by
    ``srun`` or ``mpirun`` of several tasks without torchrun; {} for torchrun, -pn, one task, or no launcher.
    A one-task srun step, a batch script or an ``salloc`` shell (no srun step) is one process."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env or "RANK" in env:
        return {}
    # a task of an srun step: srun alone sets SLURM_STEP_NUM_TASKS (a batch script or an salloc shell has the
    # job's SLURM_NTASKS but is one process)
    if "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:
        name, how = "srun", "srun --ntasks-per-node=GPUS python -m gpt2train train ... (one task per GPU)"
        rank, world = _int_env(env, "SLURM_PROCID"), _int_env(env, "SLURM_STEP_NUM_TASKS")
        local = _int_env(env, "SLURM_LOCALID")
        nodes = _int_env(env, "SLURM_STEP_NUM_NODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES")
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
        master = "127.0.0.1" if nodes == 1 else first_node(nodelist) if nodelist else None
        job = _int_env(env, "SLURM_JOB_ID")
        port = DEFAULT_PORT + job % 10000 if job is not None else DEFAULT_PORT  # jobs sharing a node differ
    elif "OMPI_COMM_WORLD_RANK" in env:
        name, how = "mpirun", "mpirun -np GPUS -x MASTER_ADDR=<first host> python -m gpt2train train ..."
        rank, world = _int_env(env, "OMPI_COMM_WORLD_RANK"), _int_env(env, "OMPI_COMM_WORLD_SIZE")
        local = _int_env(env, "OMPI_COMM_WORLD_LOCAL_RANK")
        one_node = world is not None and _int_env(env, "OMPI_COMM_WORLD_LOCAL_SIZE") == world
        master, port = ("127.0.0.1" if one_node else None), DEFAULT_PORT
    else:
        return {}
    if world is None or world <= 1:
        return {}
    if rank is None or not 0 <= rank < world:
        raise UserError(f"{name}: task rank {rank} is not in 0..{world - 1}; launch with {how}")
    master = env.get("MASTER_ADDR") or master
    if not master:
        raise UserError(f"{name} launched {world} tasks over several nodes and the first node's address is not "
                        f"known: set MASTER_ADDR (e.g. export MASTER_ADDR=$(hostname) in the batch script), or "
                        f"launch with torchrun")  # fmt: skip
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local if local is not None else 0),
            "MASTER_ADDR": master, "MASTER_PORT": env.get("MASTER_PORT") or str(port)}  # fmt: skip


def setup(device_preference: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Join the process group the launcher describes (torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...,
    or srun's / mpirun's own variables: launcher_environment)."""
    os.environ.update(launcher_environment())
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


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process in the process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes, in place (and returned). NCCL reduces CUDA tensors and gloo CPU ones: a
    tensor on the other kind of device is reduced through a copy on the backend's."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            on_backend = t if t.is_cuda else t.to(torch.device("cuda", torch.cuda.current_device()))
        else:
            on_backend = t if t.device.type == "cpu" else t.cpu()
        dist.all_reduce(on_backend, op=dist.ReduceOp.SUM)
        if on_backend is not t:
            t.copy_(on_backend)
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
