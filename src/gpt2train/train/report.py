"""What a run tells its user: the start-up table and config.json, the step line, and the one-line stops
(out of GPU memory, an unreadable shard, a signal) with the advice they carry."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

import torch

from gpt2train.config import Environment, ResolvedConfig
from gpt2train.errors import UserError
from gpt2train.train import memory
from gpt2train.train.runlog import format_duration


class Console:
    """Rank 0 prints; everyone else stays quiet."""

    def __init__(self, active: bool):
        self.active = active

    def __call__(self, *args, **kwargs) -> None:
        if self.active:
            print(*args, **kwargs, flush=True)


@dataclass
class StartupClock:
    """perf_counter() readings of a run's start-up, for the "time to first step" line and its parts."""

    launched: float  # the process's start
    entered: float  # train() called: the interpreter and the imports are behind
    built: float | None = None  # the model, data, optimizer and fast paths made

    def line(self, step_start: float, step_end: float) -> str:
        """``time to first step: T s (...)``: where the start-up went; the first step's own time is mostly
        compilation (or loading compiled graphs from the cache) and the first allocations."""
        built = self.built if self.built is not None else self.entered
        parts = [("Python and imports", self.entered - self.launched), ("setup", built - self.entered),
                 ("evaluation and sampling", step_start - built),
                 ("the first step", step_end - step_start)]  # fmt: skip
        shown = ", ".join(f"{name} {s:.1f} s" for name, s in parts if s >= 0.05)
        return f"time to first step: {step_end - self.launched:.1f} s ({shown})"


def process_age() -> float:
    """Seconds since this process started (Linux's /proc; 0.0 where that cannot be read)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def batch_fit_warning(
    batch: int,
    recompute: int,
    planned: dict[int, int | None],
    whole: int | None = None,
    whole_now: int = 0,
    limit: int | None = None,
) -> str | None:
    """A warning when ``-b`` is above ``limit``, the planner's largest B at the run's settings (default
    ``planned[recompute]``; ``planned``: its largest B at each -r level), naming what fits it by the same
    estimate: ``--recompute-whole whole`` (the fewest blocks recomputed whole; None: no count does) and the lowest
    -r; None when it fits or is not known (off CUDA). ``whole_now``: the run's own --recompute-whole."""
    limit = planned.get(recompute) if limit is None else limit
    if not limit or batch <= limit:
        return None
    fixes = [f"--recompute-whole {whole}"] if whole and whole > whole_now and recompute < 3 else []
    fixes += [f"-r {r}" for r, b in sorted(planned.items()) if r > recompute and b and b >= batch][:1]
    hint = (
        f"it fits with {' or '.join(fixes)} by the same estimate" if fixes else "nothing fits it: lower -b or use -w 0"
    )
    at = f"-r {recompute}" + (f" --recompute-whole {whole_now}" if whole_now else "")
    return (f"warning: -b {batch} is above the largest B that gpt2train plan expects to fit on this card at "
            f"{at} ({limit}); {hint} (the estimate is within a few percent; going on)")  # fmt: skip


def run_batch_fit_warning(rc: ResolvedConfig, env: Environment, batch: int) -> str | None:
    """batch_fit_warning for this run's -b on its card (None off CUDA); the planner models --fp8's saved copies."""
    if not env.gpu_memory:
        return None
    settings = memory.settings(rc, env.world_size)
    planned = memory.planned_by_recompute(rc.model_config, rc.seq_len, settings, env.gpu_memory)
    limit = memory.planned_max_batch(rc.model_config, rc.seq_len, settings, env.gpu_memory)
    whole = None
    if limit is not None and batch > limit:
        whole = memory.whole_blocks_needed(rc.model_config, rc.seq_len, settings, env.gpu_memory, batch)
    return batch_fit_warning(batch, rc.recompute, planned, whole, rc.recompute_whole, limit)


def print_header(run, rc: ResolvedConfig) -> None:
    """llm.c's start-up table, and config.json in the run dir (rank 0)."""
    m = rc.model_config
    precision = rc.dtype
    if rc.bf16_params:
        precision += ", bf16 params, fp32 master in the optimizer"
    rows = [
        ("train data pattern", rc.train_data), ("val data pattern", rc.val_data),
        ("output log dir", rc.output_dir or "NULL"), ("micro batch size B", run.B),
        ("sequence length T", run.T), ("total batch size", run.total_batch),
        ("grad accumulation", f"{run.grad_accum}{' (in the matmuls)' if rc.accumulate_in_matmul == 1 else ''}"),
        ("LR scheduler", rc.lr_schedule),
        ("learning rate (LR)", f"{rc.lr:e}"), ("warmup iterations", rc.warmup_steps),
        ("final LR fraction", f"{rc.final_lr_frac:e}"), ("weight decay", f"{rc.weight_decay:e}"),
        ("max_steps", run.max_steps), ("val_loss_every", rc.val_every),
        ("val batches", len(run.val_loader)), ("weight init method", rc.init_source),
        ("num_layers L", m.n_layer), ("num_heads NH", m.n_head), ("channels C", m.n_embd),
        ("max_sequence_length T", m.max_seq_len), ("vocab_size V", m.vocab_size),
        ("padded_vocab_size Vp", m.padded_vocab_size), ("num_parameters", f"{m.num_parameters():,}"),
        ("device", torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu"),
        ("precision", precision), ("num_processes", run.world_size),
        ("zero_stage", rc.zero_stage), ("recompute", rc.recompute),
        ("fast path", "on" if rc.fast else "off (plain PyTorch)"),
        ("deterministic", "on" if run.determinism["enabled"] else "off"),
    ]  # fmt: skip
    bar = "+-----------------------+----------------------------------------------------+"
    run.console(bar)
    for k, v in rows:
        run.console(f"| {k:<21} | {str(v):<50} |")
    run.console(bar)
    run.console(f"num_parameters: {m.num_parameters()}")
    if run.console.active and rc.output_dir:
        with open(os.path.join(rc.output_dir, "config.json"), "w") as f:
            json.dump({"train": rc.to_dict(), "model": m.to_dict(), "world_size": run.world_size,
                       "micro_batch_size": run.B,
                       "grad_accum": run.grad_accum, "max_steps": run.max_steps,
                       "total_batch_size": run.total_batch, "determinism": run.determinism,
                       "argv": sys.argv}, f, indent=2)  # fmt: skip


def step_line(step: int, max_steps: int, out: dict, dt: float, mfu: float | None, tok_s: float, tail: str) -> str:
    mfu_txt = f"{mfu:.1f}% bf16 MFU" if mfu is not None else "MFU n/a"
    return (f"step {step + 1:4d}/{max_steps} | loss {out['loss']:7.6f} ({out['zloss']:+.2f}z)| "
            f"norm {out['norm']:6.4f} ({out['zgrad']:+.2f}z)| lr {out['lr']:.2e} | {dt * 1000:.2f} ms | "
            f"{mfu_txt} | {tok_s:.0f} tok/s | {tail}")  # fmt: skip


def status_tail(last_val: float | None, device: torch.device, t_start: float, eta: float) -> str:
    """The end of each step line: last val loss, GPU memory, elapsed time and ETA."""
    parts = []
    if last_val is not None:
        parts.append(f"val {last_val:.4f}")
    if device.type == "cuda":
        parts.append(f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    parts.append(f"{format_duration(time.perf_counter() - t_start)} elapsed, ETA {format_duration(eta)}")
    return " | ".join(parts)


def out_of_memory(rc: ResolvedConfig, env: Environment, step: int | None, batch: int | None) -> UserError:
    """The one-line stop for running out of GPU memory: where (``step`` None: while setting up), at which settings
    (``batch`` None: not yet known), how much the card holds, and which flags make room (checkpoints already
    written are untouched)."""
    where = f"at step {step}" if step is not None else "while setting up"
    batch = batch or rc.batch_size or "auto"
    line = f"out of GPU memory {where} with -b {batch} -t {rc.seq_len} -r {rc.recompute} -w {rc.master_weights}"
    if env.device.type == "cuda":
        line += (f" ({torch.cuda.max_memory_reserved(env.device) / 2**30:.1f} of {env.gpu_memory / 2**30:.1f} GiB "
                 f"held on {torch.cuda.get_device_name(env.device)})")  # fmt: skip
    room = ["lower -b (-d stays: more micro-steps accumulate)"]
    settings = memory.settings(rc, env.world_size)
    whole = None
    if isinstance(batch, int):
        whole = memory.whole_blocks_needed(rc.model_config, rc.seq_len, settings, env.gpu_memory, batch)
    if whole and whole > rc.recompute_whole:
        room.append(f"recompute the first {whole} blocks whole (--recompute-whole {whole})")
    if rc.recompute < 3:
        room.append("raise -r to " + " or ".join(str(r) for r in range(rc.recompute + 1, 4)))
    if rc.master_weights:
        room.append("use -w 0")
    line += ": " + ", ".join(room) + " or let -b auto pick"
    if planned := memory.planned_max_batch(rc.model_config, rc.seq_len, settings, env.gpu_memory):
        line += f"; gpt2train plan expects B={planned} to fit"
    if rc.output_dir:
        line += f"; the checkpoints in {rc.output_dir} are untouched (resume with -y 1)"
    return UserError(line)


def unreadable_shard(err: Exception, step: int, output_dir: str | None, world_size: int, rank: int) -> str:
    """The stop for a train shard that became unreadable; with -o in one process the run was saved at ``step``."""
    if not output_dir:
        return f"{err}; no -o, so nothing was saved"
    if world_size > 1:  # the other ranks are inside this step's collectives and cannot join a write
        return f"{err} (rank {rank}); restore the file and resume with -y 1 from the last checkpoint"
    return f"{err}; wrote a checkpoint at step {step}: restore the file and resume with -y 1"


def signal_stop(signal_name: str, since: float, step: int, output_dir: str | None) -> str:
    if output_dir:
        where = f"checkpoint at step {step} in {output_dir}; resume with -y 1"
    else:
        where = "no -o given, so no checkpoint was written"
    return f"stopped on {signal_name} after {time.perf_counter() - since:.2f} s: {where}"


def finished(run, rc: ResolvedConfig, first_step: int, t_start: float) -> None:
    """The end of a run that trained to -x: its summary, or the error of one whose every update was skipped."""
    if first_step >= run.max_steps:
        run.console(f"nothing to train: the run in {rc.output_dir} is already complete at step {first_step} "
                    f"of {run.max_steps}; raise -x to train on, or use another -o")  # fmt: skip
        return
    if run.state.updates == 0:
        raise UserError(f"every update of steps {first_step}..{run.max_steps - 1} was skipped (last: "
                        f"{run.state.last_skip}): the weights did not change. Check the train data (gpt2train "
                        "data info), lower -l, or loosen -sl/-sg")  # fmt: skip
    run.console(f"done: {run.max_steps} steps in {format_duration(time.perf_counter() - t_start)}")
    if run.device.type == "cuda":
        run.console(f"peak GPU memory: {torch.cuda.max_memory_allocated(run.device) / 2**20:.0f} MiB allocated, "
                    f"{torch.cuda.max_memory_reserved(run.device) / 2**20:.0f} MiB reserved")  # fmt: skip
