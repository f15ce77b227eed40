"""--deterministic 1: the switches that make two GPU runs (and a killed-and-resumed one) bit-identical.

What varies between GPU runs without it: cuBLAS picks reduction splits by workspace (fixed by
CUBLAS_WORKSPACE_CONFIG), flash and memory-efficient attention accumulate dQ with atomics in backward
(PyTorch switches them to their deterministic variants under ``use_deterministic_algorithms``), cuDNN
attention has no deterministic backward (PyTorch then does not pick it), and Inductor may choose kernel
configurations by timing them (``torch._inductor.config.deterministic`` turns that off). Any op left
without a deterministic implementation raises instead of silently differing (warn_only=False).

The fused classifier is deterministic as it is: its Triton kernel owns one row per program (no atomics),
and its one ``scatter_add_`` writes a single column per row, which PyTorch runs deterministically here.
"""

from __future__ import annotations

import contextlib
import os

import torch

from gpt2train.errors import UserError

CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_VALUE = ":4096:8"
_CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")  # the two settings NVIDIA documents as reproducible


def prepare_environment(flag: int, device_preference: str) -> None:
    """Check --deterministic and set CUBLAS_WORKSPACE_CONFIG before anything creates a cuBLAS handle.

    Call it before any CUDA work: cuBLAS reads the variable once, when its first handle is made; if CUDA
    is already initialised with another value, it may be too late, so that is an error rather than a
    silently different run.
    """
    if flag not in (0, 1):
        raise UserError(f"--deterministic {flag}: use 0 (off) or 1 (on)")
    if not flag or device_preference == "cpu" or not torch.cuda.is_available():
        return
    current = os.environ.get(CUBLAS_ENV)
    if current in _CUBLAS_DETERMINISTIC:
        return
    if torch.cuda.is_initialized():
        raise UserError(
            f"--deterministic 1: CUDA was initialised before {CUBLAS_ENV} could be set (it is {current!r}); "
            f"start the process with {CUBLAS_ENV}={CUBLAS_VALUE} in its environment"
        )
    os.environ[CUBLAS_ENV] = CUBLAS_VALUE


def _inductor_config():
    try:
        from torch._inductor import config
    except ImportError:  # a build without Inductor
        return None
    return config if hasattr(config, "deterministic") else None


@contextlib.contextmanager
def mode(enabled: bool, attention: str):
    """Within the block, PyTorch runs only deterministic kernels (and raises on an op without one).

    The process-wide switches are put back on exit, so an in-process run does not change the next one.
    Yields a dict describing the mode, recorded in config.json and in each checkpoint.
    """
    if not enabled:
        yield {"enabled": False}
        return
    if attention == "cudnn":
        raise UserError("--attention cudnn with --deterministic 1: cuDNN attention has no deterministic backward; "
                        "use --attention auto, flash, efficient or math")  # fmt: skip
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)  # fmt: skip
    inductor = _inductor_config()
    saved_inductor = inductor.deterministic if inductor is not None else None
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if inductor is not None:
        inductor.deterministic = True
    try:
        yield {
            "enabled": True,
            "cublas_workspace_config": os.environ.get(CUBLAS_ENV),
            "inductor_deterministic": inductor is not None,
            "torch": torch.__version__,
        }
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        if inductor is not None:
            inductor.deterministic = saved_inductor
