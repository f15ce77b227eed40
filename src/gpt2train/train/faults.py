"""Fault injection for tests: ``GPT2TRAIN_INJECT="kind@step[@rank],..."`` makes a run misbehave on purpose.

Kinds: ``nan_loss`` (the step's loss becomes NaN), ``grad_spike`` (gradients x 1e4 after backward),
``raise`` (RuntimeError in the step), ``exit`` (the process dies with exit code 13, no clean-up), and
three that SIGKILL the process in the middle of writing the checkpoint of that step:
``exit_in_model`` (the model's temp file cut to half its bytes), ``exit_in_state`` (the same for the
state file) and ``exit_before_done`` (every file renamed into place, the DONE record not yet written);
and two that make that write fail as a full disk would (OSError ENOSPC): ``fail_in_model`` and
``fail_in_state`` (with ``@rank``, on that rank only).
Without the variable nothing is injected and nothing is checked on the hot path but a set lookup.
"""

from __future__ import annotations

import errno
import os
import re
import signal

from gpt2train.train import checkpoint

CHECKPOINT_KINDS = {"exit_in_model": "model", "exit_in_state": "state", "exit_before_done": "done",
                    "fail_in_model": "model", "fail_in_state": "state"}  # fmt: skip
KINDS = ("nan_loss", "grad_spike", "raise", "exit", *CHECKPOINT_KINDS)


class Faults:
    def __init__(self, rank: int, spec: str | None = None):
        spec = os.environ.get("GPT2TRAIN_INJECT", "") if spec is None else spec
        self.planned: set[tuple[str, int]] = set()
        for item in filter(None, (s.strip() for s in spec.split(","))):
            parts = item.split("@")
            kind, step = parts[0], int(parts[1])
            if kind not in KINDS:
                raise ValueError(f"GPT2TRAIN_INJECT: unknown fault {kind!r}; known: {', '.join(KINDS)}")
            if len(parts) < 3 or int(parts[2]) == rank:
                self.planned.add((kind, step))
        # the checkpoint module calls the hook only while one of its faults is planned in this process
        in_ckpt = {(CHECKPOINT_KINDS[k], s, k.startswith("fail")) for k, s in self.planned if k in CHECKPOINT_KINDS}
        checkpoint.fault_hook = _checkpoint_killer(in_ckpt) if in_ckpt else None

    def __call__(self, kind: str, step: int) -> bool:
        """Whether ``kind`` is planned at ``step``; each fires once, so a step re-run after a rollback is clean."""
        if (kind, step) not in self.planned:
            return False
        self.planned.discard((kind, step))
        return True

    def maybe_crash(self, step: int, rank: int) -> None:
        if self("raise", step):
            raise RuntimeError(f"injected failure on rank {rank} at step {step}")
        if self("exit", step):
            os._exit(13)


def _checkpoint_killer(planned: set[tuple[str, int, bool]]):
    def hook(phase: str, path: str) -> None:
        step = int(re.search(r"_(\d{8})", os.path.basename(path)).group(1))
        if (phase, step, True) in planned:  # fail_in_*: the write fails, the process lives on
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        if (phase, step, False) not in planned:
            return
        if phase in ("model", "state"):  # as if the power went after half the bytes reached the disk
            size = os.path.getsize(path)
            os.truncate(path, size // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    return hook
