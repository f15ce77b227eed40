"""Live views of a run beyond main.log: TensorBoard (and Weights & Biases) scalars, GPU status lines."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess

import torch

from gpt2train.optional import require

WANDB_ID_FILE = "wandb_id"


class ScalarSink:
    """Writes scalars to TensorBoard event files in the run dir (when tensorboard is installed) and to
    Weights & Biases (when ``wandb_project`` is given: a one-line error without the wandb extra). A no-op
    otherwise.

    ``resume_step``: the run goes on from the checkpoint at that step. TensorBoard drops the events a killed run
    wrote from that step on (purge_step; a fresh run drops all earlier events), so no step appears twice; the
    val/eval values of the step itself are logged again from progress.jsonl. W&B resumes the run whose id
    RUN/wandb_id keeps."""

    def __init__(self, output_dir: str | None, active: bool, tensorboard: bool = True,
                 wandb_project: str | None = None, config: dict | None = None, warn=print,
                 resume_step: int | None = None):  # fmt: skip
        self.tb = self.wandb = None
        if not (active and output_dir):
            return
        wandb = require("wandb", "wandb", "--wandb") if wandb_project else None  # before anything is written
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # a fresh run hides an earlier run's events in the dir (as it wipes main.log); a resumed one those past
                # its checkpoint
                self.tb = SummaryWriter(log_dir=output_dir, purge_step=0 if resume_step is None else resume_step)
            except ImportError:
                warn("TensorBoard logging is off: pip install tensorboard to get event files in the run dir")
        if wandb is not None:
            run_id = _wandb_run_id(output_dir, resume_step is not None)
            self.wandb = wandb.init(project=wandb_project, dir=output_dir, config=config or {}, id=run_id,
                                    resume="allow")  # fmt: skip
        if resume_step is not None and self.tb is not None:
            self.log(resume_step, _evals_at(os.path.join(output_dir, "progress.jsonl"), resume_step))

    def log(self, step: int, values: dict) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _wandb_run_id(output_dir: str, resuming: bool) -> str:
    """The W&B run id of this run directory: the kept one when resuming, else a new one (kept for later)."""
    path = os.path.join(output_dir, WANDB_ID_FILE)
    if resuming and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if run_id := f.read().strip():
                return run_id
    run_id = secrets.token_hex(4)
    with open(path, "w", encoding="utf-8") as f:
        f.write(run_id + "\n")
    return run_id


def _evals_at(progress_path: str, step: int) -> dict:
    """The val loss and HellaSwag scores progress.jsonl holds for ``step``, as scalar tags."""
    tags = {
        "val_loss": "val/loss",
        "hellaswag_acc_norm": "eval/hellaswag_acc_norm",
        "hellaswag_acc": "eval/hellaswag_acc",
    }
    values = {}
    try:
        with open(progress_path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("step") == step and rec.get("kind") in ("val", "eval"):
                    values.update({tag: rec[key] for key, tag in tags.items() if key in rec})
    except OSError:
        pass
    return values


def gpu_status(device: torch.device) -> str:
    """One line: utilisation, memory, power and temperature of this process's GPU (nvidia-smi), plus
    PyTorch's own peak; on a CPU, says so."""
    if device.type != "cuda":
        return "gpu: none (running on the CPU)"
    allocated = torch.cuda.max_memory_allocated(device) / 2**20
    line = f"gpu {device.index}: torch peak {allocated:.0f} MiB"
    if shutil.which("nvidia-smi"):
        query = "utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu"
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits",
                                  "-i", str(device.index)], capture_output=True, text=True, timeout=10)  # fmt: skip
            util, used, total, power, temp = (v.strip() for v in out.stdout.strip().split(","))
            line += f" | util {util}% | mem {used}/{total} MiB | power {power} W | {temp} C"
        except (subprocess.SubprocessError, ValueError, OSError):
            line += " | nvidia-smi gave no reading"
    return line
