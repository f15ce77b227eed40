"""srun / mpirun launches without torchrun: their variables set up one process group (two gloo processes with
Slurm's variables train as two ranks, with one process's losses), or a one-line error says how to launch."""

import os
import socket
import subprocess
import sys

import pytest

from gpt2train.errors import UserError
from gpt2train.train.distributed import DEFAULT_PORT, first_node, launcher_environment
from tests.helpers import run_cli, tiny_train_args

NO_CLIP = ["--grad-clip", "1e9"]  # as tests/test_distributed.py: the norm's summation order differs


def _srun_task(rank: int, tasks: int = 2, nodes: int = 2, **extra) -> dict:
    env = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
           "SLURM_NTASKS": str(tasks), "SLURM_STEP_NUM_TASKS": str(tasks), "SLURM_STEP_NUM_NODES": str(nodes),
           "SLURM_JOB_NODELIST": "gpu[003-004,007]"}  # fmt: skip
    return {**env, **extra}


def test_srun_tasks_become_ranks():
    got = launcher_environment(_srun_task(1, tasks=16))
    assert got == {"RANK": "1", "WORLD_SIZE": "16", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu003",
                   "MASTER_PORT": str(DEFAULT_PORT + 4242)}  # fmt: skip
    one_node = launcher_environment(_srun_task(0, nodes=1, MASTER_PORT="12345"))
    assert one_node["MASTER_ADDR"] == "127.0.0.1" and one_node["MASTER_PORT"] == "12345"
    assert launcher_environment(_srun_task(0, MASTER_ADDR="10.0.0.9"))["MASTER_ADDR"] == "10.0.0.9"


@pytest.mark.parametrize(
    "env",
    [
        {},  # no launcher
        {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "gpu1"},  # an salloc shell: no srun step
        {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8", "SLURM_PROCID": "0", "SLURM_STEP_ID": "4294967294"},  # batch script
        _srun_task(0, tasks=1, nodes=1),  # srun -n 1: one GPU
        {**_srun_task(3, tasks=8), "RANK": "3", "WORLD_SIZE": "8"},  # torchrun (under srun) wins
        {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "1"},
    ],
)
def test_one_process_launches_stay_one_process(env):
    assert launcher_environment(env) == {}


def test_slurm_without_a_known_first_node_says_how_to_launch():
    with pytest.raises(UserError, match="set MASTER_ADDR .* or launch with torchrun"):
        launcher_environment(_srun_task(0, SLURM_JOB_NODELIST="rack[1-2]-n[01-04]"))
    with pytest.raises(UserError, match="srun: task rank 5 is not in 0..1"):
        launcher_environment(_srun_task(5))


def test_mpirun_on_one_node_and_over_several():
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}  # fmt: skip
    assert launcher_environment(env) == {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                                         "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(DEFAULT_PORT)}  # fmt: skip
    with pytest.raises(UserError, match="mpirun launched 4 tasks over several nodes"):
        launcher_environment({**env, "OMPI_COMM_WORLD_LOCAL_SIZE": "2"})
    assert launcher_environment({**env, "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "MASTER_ADDR": "h1"})["MASTER_ADDR"] == "h1"


@pytest.mark.parametrize(
    "nodelist, first",
    [("node01", "node01"), ("node[01-04,07]", "node01"), ("gpu-a[1-2],gpu-b3", "gpu-a1"), ("a,b", "a"),
     ("n[007]", "n007"), ("rack[1-2]-n[1-3]", None), ("", None)],
)  # fmt: skip
def test_first_node(nodelist, first):
    assert first_node(nodelist) == first


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _srun(args, tasks: int = 2) -> list[subprocess.CompletedProcess]:
    """``args`` as ``srun -n tasks`` would start them on one node: plain processes with Slurm's variables."""
    port = str(_free_port())
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    procs = [subprocess.Popen([sys.executable, "-m", "gpt2train", *map(str, args)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**base, **_srun_task(r, tasks=tasks, nodes=1), "MASTER_PORT": port,
                                   "OMP_NUM_THREADS": "1"})
             for r in range(tasks)]  # fmt: skip
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.communicate()[0], "") for p in procs]


def _losses(run):
    return [float(ln.split("trl:")[1].split()[0]) for ln in (run / "main.log").read_text().splitlines() if "trl:" in ln]


def test_two_srun_tasks_train_as_two_ranks(tmp_path, text_shards, capsys):
    single = tmp_path / "single"
    code, _, err = run_cli(tiny_train_args(text_shards, single, 4, NO_CLIP), capsys)
    assert code == 0, err
    run = tmp_path / "srun"
    rank0, rank1 = _srun(tiny_train_args(text_shards, run, 4, NO_CLIP))
    assert rank0.returncode == 0 and rank1.returncode == 0, rank0.stdout[-3000:] + rank1.stdout[-3000:]
    assert "| num_processes         | 2 " in rank0.stdout
    assert _losses(run) == pytest.approx(_losses(single), abs=2e-4)


def test_srun_tasks_on_a_locked_dir_all_stop(tmp_path, text_shards):
    """Rank 0 finds -o taken; rank 1 must hear of it and stop too, not wait for rank 0 in a collective."""
    from gpt2train.train.lock import RunLock

    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(str(run))  # held by this (live) process
    lock.acquire()
    try:
        results = _srun(tiny_train_args(text_shards, run, 4))
    finally:
        lock.release()
    for res in results:
        assert res.returncode == 1 and "another run is training in this directory" in res.stdout, res.stdout[-2000:]
        assert f"pid {os.getpid()}" in res.stdout
