"""llm.c's multi-process flags (-pn -pr -pg -ps ...) mapped onto torch.distributed's environment."""

from __future__ import annotations

import os

from gpt2train.errors import UserError


def apply_llmc_process_flags(args) -> None:
    """With ``-pn N -pr R [-pg G] [-ps HOST]`` and no torchrun environment, set RANK/WORLD_SIZE/... so
    one process per GPU started by hand (or by Slurm/mpirun) joins the same group; torchrun wins."""
    pn = getattr(args, "llmc_pn", None)
    if pn is None or "WORLD_SIZE" in os.environ:
        return
    try:
        world, rank = int(pn), int(getattr(args, "llmc_pr", None) or 0)
        per_node = int(getattr(args, "llmc_pg", None) or 8)
    except ValueError:
        raise UserError("-pn/-pr/-pg take integers") from None
    if not 0 <= rank < world:
        raise UserError(f"-pr {rank} is not in 0..{world - 1} for -pn {world}")
    os.environ.update(
        WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank % per_node),
        MASTER_ADDR=getattr(args, "llmc_ps", None) or os.environ.get("MASTER_ADDR", "127.0.0.1"),
        MASTER_PORT=os.environ.get("MASTER_PORT", "29500"),
    )  # fmt: skip
