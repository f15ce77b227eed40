"""Live views of a run beyond main.log: TensorBoard (and Weights & Biases) scalars, GPU status lines."""

from __future__ import annotations

import shutil
import subprocess

import torch

from gpt2train.optional import require


class ScalarSink:
    """Writes scalars to TensorBoard event files in the run dir (when tensorboard is installed) and to
    Weights & Biases (when ``wandb_project`` is given: a one-line error without the wandb extra). A no-op
    otherwise."""

    def __init__(self, output_dir: str | None, active: bool, tensorboard: bool = True,
                 wandb_project: str | None = None, config: dict | None = None, warn=print):  # fmt: skip
        self.tb = self.wandb = None
        if not (active and output_dir):
            return
        wandb = require("wandb", "wandb", "--wandb") if wandb_project else None  # before anything is written
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=output_dir)
            except ImportError:
                warn("TensorBoard logging is off: pip install tensorboard to get event files in the run dir")
        if wandb is not None:
            self.wandb = wandb.init(project=wandb_project, dir=output_dir, config=config or {}, resume="allow")

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
