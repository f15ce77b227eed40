"""Mixed precision: the autocast context that forward passes run under."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` (bf16) on ``device``'s kind of device; a context that does nothing when ``dtype`` is
    None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
