"""The update's guards: gradient clipping by the global norm (in fp32), and outlier detection for -sl / -sg
(the z-score of a value against a running window, llm.c's meaning)."""

from __future__ import annotations

import math
from collections import deque

import torch


@torch.no_grad()
def squared_norm_fp32(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Sum of squares of every element, accumulated in fp32 whatever the tensors' dtype (bf16 gradients with
    --bf16-params), as llm.c does: a norm summed in bf16 logs as 16.0000, 12.0000, 7.4375 and feeds -sg with it."""
    if not tensors:
        return torch.zeros(())
    norms = torch._foreach_norm(tensors, 2, dtype=torch.float32)
    return torch.stack(norms).square().sum()


@torch.no_grad()
def clip_to_norm_(tensors: list[torch.Tensor], norm: torch.Tensor, max_norm: float) -> None:
    """Scale ``tensors`` so that their global ``norm`` becomes at most ``max_norm`` (torch's clip coefficient,
    computed in fp32; NaN/Inf norms pass through to the skip check)."""
    if tensors:
        torch._foreach_mul_(tensors, (max_norm / (norm + 1e-6)).clamp(max=1.0))


def clip_grad_norm_fp32_(parameters, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ with the norm and the coefficient in fp32; returns the fp32 norm."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = squared_norm_fp32(grads).sqrt()
    clip_to_norm_(grads, norm, max_norm)
    return norm


class OutlierDetector:
    """z-score of each new value against the previous ``window`` values (NaN until the window is full).

    As llm.c does, a value that is an outlier above ``threshold`` is not added to the window (so the
    detector does not get less picky), except on the third outlier in a row, to avoid getting stuck.
    """

    def __init__(self, window: int = 64):
        self.window = window
        self.values: deque[float] = deque(maxlen=window)
        self.skipped_in_a_row = 0

    def update(self, value: float, threshold: float = 0.0) -> float:
        if not math.isfinite(value):  # never let a NaN/Inf into the window: it would poison every later z
            return float("nan")
        if len(self.values) < self.window:
            self.values.append(value)
            self.skipped_in_a_row = 0
            return float("nan")
        mean = sum(self.values) / self.window
        var = sum((v - mean) ** 2 for v in self.values) / self.window
        std = math.sqrt(var)
        z = 0.0 if std == 0.0 else (value - mean) / std
        if threshold and z > threshold:
            self.skipped_in_a_row += 1
            if self.skipped_in_a_row >= 3:
                self.values.append(value)
        else:
            self.skipped_in_a_row = 0
            self.values.append(value)
        return z

    def state_dict(self) -> dict:
        return {"values": list(self.values), "skipped_in_a_row": self.skipped_in_a_row}

    def load_state_dict(self, state: dict) -> None:
        self.values = deque(state["values"], maxlen=self.window)
        self.skipped_in_a_row = state["skipped_in_a_row"]
