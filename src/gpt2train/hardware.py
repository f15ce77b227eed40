"""Facts about accelerators: the dense bf16 peak that MFU is measured against (llm.c's figures)."""

from __future__ import annotations

# TFLOP/s, dense bf16, as llm.c's mfu.h lists them per card
PEAK_BF16_TFLOPS = {
    "h100": 988.8,  # H100 SXM
    "h200": 988.8,  # same GH100 chip as the H100 SXM, more memory
    "a100": 312.0,
}
GPU_MEMORY_GIB = {"h100": 80.0, "h200": 141.0, "a100": 80.0}


def gpu_kind(device_name: str) -> str | None:
    """'h100' / 'h200' / 'a100' from a CUDA device name, None if unknown."""
    name = device_name.lower()
    for kind in ("h200", "h100", "a100"):
        if kind in name:
            return kind
    return None


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a CUDA device by name, None if unknown (then MFU is not shown)."""
    kind = gpu_kind(device_name)
    return PEAK_BF16_TFLOPS[kind] * 1e12 if kind else None
