"""Outlier detection for -sl / -sg: the z-score of a value against a running window (llm.c's meaning)."""

from __future__ import annotations

import math
from collections import deque


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
