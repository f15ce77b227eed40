"""Facts about accelerators: the dense bf16 peak that MFU is measured against, and memory.

Peaks are llm.c's (llmc/mfu.h, bf16 with fp32 accumulate, dense): Hopper's 756 TFLOP/s at 456
tensor cores and 1620 MHz, scaled to the H100 SXM's 528 cores and 1830 MHz = 988.8 TFLOP/s; A100 312.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    """One accelerator: llm.c's dense bf16 peak and the memory that nvidia-smi reports as total."""

    name: str
    peak_tflops: float
    memory_mib: int
    hopper: bool = False  # compute capability 9.x: FP8 tensor cores, where --fp8 -1 was measured


_H100_SXM_TFLOPS = 756.0 * (528 / 456) * (1830 / 1620)

GPUS = {
    "h100": GPU("NVIDIA H100 80GB HBM3 (SXM)", _H100_SXM_TFLOPS, 81559, hopper=True),
    "h100-pcie": GPU("NVIDIA H100 PCIe", 756.0, 81559, hopper=True),
    # H200 is the same GH100 chip and clocks as the H100 SXM, with 141 GB of HBM3e
    "h200": GPU("NVIDIA H200", _H100_SXM_TFLOPS, 143771, hopper=True),
    "a100": GPU("NVIDIA A100-SXM4-80GB", 312.0, 81920),
    "a100-40": GPU("NVIDIA A100 40GB", 312.0, 40960),
}


def gpu_kind(device_name: str) -> str | None:
    """Key of ``GPUS`` for a CUDA device name ('NVIDIA H100 80GB HBM3' -> 'h100'), None if unknown."""
    name = device_name.lower()
    if "h200" in name:
        return "h200"
    if "h100" in name:
        return "h100-pcie" if "pcie" in name else "h100"
    if "a100" in name:
        return "a100-40" if "40gb" in name else "a100"
    return None


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a CUDA device by name, None if unknown (then MFU is not shown)."""
    kind = gpu_kind(device_name)
    return GPUS[kind].peak_tflops * 1e12 if kind else None
