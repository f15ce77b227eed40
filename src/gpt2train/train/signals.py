"""Signals a run answers: SIGTERM/SIGINT stop it after the step with a checkpoint; SIGUSR1 writes a checkpoint
after the step and goes on training."""

from __future__ import annotations

import signal
import time

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


class StopRequest:
    """SIGTERM/SIGINT (preemption, Ctrl-C): finish the step, write a checkpoint, exit 0."""

    def __init__(self):
        self.signal_name: str | None = None
        self.when = 0.0
        self._previous = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.when = time.perf_counter()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
