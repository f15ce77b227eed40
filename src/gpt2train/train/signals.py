"""SIGUSR1: write a checkpoint after the current step and go on training (SIGTERM/SIGINT stop instead)."""

from __future__ import annotations

import signal

import torch

from gpt2train.train import distributed


class CheckpointRequest:
    """Set by SIGUSR1; ``take()`` answers once per signal whether to checkpoint now.

    Under several processes the flag is summed over ranks every step (one scalar all-reduce), so a signal
    reaching any rank makes every rank write the same step, and they never wait on each other in vain."""

    def __init__(self, device: torch.device, world_size: int):
        self.pending = False
        self.device, self.world_size = device, world_size
        self._previous = None

    def install(self) -> None:
        if not hasattr(signal, "SIGUSR1"):
            return
        try:
            self._previous = signal.signal(signal.SIGUSR1, self._handle)
        except ValueError:  # not the main thread
            pass

    def _handle(self, signum, frame) -> None:
        self.pending = True

    def take(self) -> bool:
        """True once after a SIGUSR1 (on any rank); clears the request."""
        pending, self.pending = self.pending, False  # cleared first: a signal arriving now is kept for later
        if self.world_size > 1:
            flag = torch.tensor(float(pending), device=self.device)
            distributed.all_reduce_sum(flag)
            pending = float(flag) > 0
        return pending

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None
