"""Shared Triton helpers: availability without importing, and the interpreter switch."""

from __future__ import annotations

import importlib.util
import os


def triton_available() -> bool:
    """True if Triton is installed (kernels then run on CUDA, or on CPU with TRITON_INTERPRET=1).

    Does not import it: Triton reads TRITON_INTERPRET when it is first imported.
    """
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when Triton kernels run in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"
