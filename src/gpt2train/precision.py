"""The compute precision of a forward pass: bf16 autocast, or none (fp32)."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bf16 (or ``dtype``) autocast on ``device``; a no-op context when ``dtype`` is None (fp32 compute)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
