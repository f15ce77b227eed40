"""Learning-rate schedules, as llm.c's -k names them: warmup, then decay to final_lr_frac * lr."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "linear", "constant", "wsd")


def learning_rate(step: int, lr: float, warmup: int, total_steps: int, final_frac: float,
                  kind: str = "cosine", wsd_decay_frac: float = 0.2) -> float:  # fmt: skip
    """LR of 0-based ``step``: linear warmup over ``warmup`` steps ((step+1)/warmup, as llm.c), then the decay.
    ``kind`` is one of SCHEDULES (config.resolve checks -k)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    min_lr = lr * final_frac
    if kind == "constant":
        return lr
    span = max(total_steps - warmup, 1)
    progress = min(max((step - warmup) / span, 0.0), 1.0)
    if kind == "cosine":
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
    if kind == "linear":
        return lr - progress * (lr - min_lr)
    # wsd: warmup, stable at lr, then linear decay over the last wsd_decay_frac of the steps
    decay_start = total_steps - int(wsd_decay_frac * total_steps)
    if step < decay_start:
        return lr
    frac = (step - decay_start) / max(total_steps - decay_start, 1)
    return lr - min(frac, 1.0) * (lr - min_lr)
