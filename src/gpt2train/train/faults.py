"""Fault injection for tests: ``GPT2TRAIN_INJECT="kind@step[@rank],..."`` makes a run misbehave on purpose.

Kinds: ``nan_loss`` (the step's loss becomes NaN), ``grad_spike`` (gradients x 1e4 after backward),
``raise`` (RuntimeError in the step), ``exit`` (the process dies with exit code 13, no clean-up).
Without the variable nothing is injected and nothing is checked on the hot path but a set lookup.
"""

from __future__ import annotations

import os

KINDS = ("nan_loss", "grad_spike", "raise", "exit")


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

    def __call__(self, kind: str, step: int) -> bool:
        return (kind, step) in self.planned

    def maybe_crash(self, step: int, rank: int) -> None:
        if self("raise", step):
            raise RuntimeError(f"injected failure on rank {rank} at step {step}")
        if self("exit", step):
            os._exit(13)
