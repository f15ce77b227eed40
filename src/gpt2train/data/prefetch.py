"""Prepare the next step's batches on a background thread (in pinned memory on CUDA) while the GPU works."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from gpt2train.data.loader import TrainLoader


class Prefetcher:
    """Wraps a TrainLoader: ``next_step()`` returns batches prepared while the previous step ran.

    The loader runs one step ahead, so ``state_dict()`` returns the position saved right after the
    last step handed out, which is where a resumed run must continue.
    """

    def __init__(self, loader: TrainLoader, pin_memory: bool):
        self.loader = loader
        self.pin = pin_memory
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpt2train-data")
        self._future = None
        self._state = loader.state_dict()

    def _load(self):
        batches = self.loader.next_step()
        if self.pin:
            batches = [(x.pin_memory(), y.pin_memory()) for x, y in batches]
        return batches, self.loader.state_dict()

    def next_step(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batches, self._state = self._future.result() if self._future else self._load()
        self._future = self._pool.submit(self._load)
        return batches

    def state_dict(self) -> dict:
        return self._state

    def load_state_dict(self, state: dict) -> None:
        if self._future is not None:
            self._future.result()
            self._future = None
        self.loader.load_state_dict(state)
        self._state = self.loader.state_dict()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
