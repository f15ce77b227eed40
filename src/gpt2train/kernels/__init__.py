"""Fast paths, each beside (or pointing at) the plain-PyTorch reference it is tested against.

``KERNELS`` lists what exists: for each fast path its callable, its reference, the switch that
turns it on and the tests that hold it to the reference. Importing this package imports torch
only; Triton is imported on first use of a Triton kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from gpt2train.kernels._triton import triton_available
from gpt2train.kernels.fused_classifier import DEFAULT_CHUNK_ROWS, chunked_classifier_loss, plain_classifier_loss
from gpt2train.kernels.gelu_linear import GeluLinear, gelu_linear, gelu_linear_reference
from gpt2train.kernels.gelu_mlp import GeluMLP, gelu_mlp, gelu_mlp_reference
from gpt2train.kernels.master_adamw import MasterAdamW, adamw_master_, adamw_master_reference
from gpt2train.kernels.stochastic_round import (
    BF16AdamW,
    adamw_bf16_stochastic_,
    adamw_bf16_stochastic_reference,
    stochastic_round_to_bf16,
)


@dataclass(frozen=True)
class KernelInfo:
    """One fast path: where it lives, what it must equal, how it is switched on."""

    name: str
    fast: str  # dotted path of the fast callable
    reference: str  # dotted path of the plain-PyTorch reference
    switch: str  # the flag / call that enables it
    needs_triton: bool
    tests: str


KERNELS: dict[str, KernelInfo] = {
    k.name: k
    for k in (
        KernelInfo(
            "chunked_classifier_loss",
            "gpt2train.kernels.fused_classifier.chunked_classifier_loss",
            "gpt2train.kernels.fused_classifier.plain_classifier_loss",
            "--fused-classifier (train/accelerate.py FastPaths.fused_classifier): GPT.classifier_loss",
            False,
            "tests/test_kernels_classifier.py",
        ),
        KernelInfo(
            "gelu_linear",
            "gpt2train.kernels.gelu_linear.gelu_linear",
            "gpt2train.kernels.gelu_linear.gelu_linear_reference",
            "-r 1 eager on GELU MLPs (train/accelerate.py): gelu_linear(h, c_proj.weight, c_proj.bias)",
            False,
            "tests/test_kernels_gelu_linear.py",
        ),
        KernelInfo(
            "gelu_mlp",
            "gpt2train.kernels.gelu_mlp.gelu_mlp",
            "gpt2train.kernels.gelu_mlp.gelu_mlp_reference",
            "-ge 1/2 with -r 0 (train/accelerate.py): GELU in cuBLASLt epilogues (ctypes; plain torch off CUDA)",
            False,
            "tests/test_kernels_gelu_mlp.py",
        ),
        KernelInfo(
            "fp8_linear",
            "gpt2train.kernels.fp8_linear.fp8_linear",
            "gpt2train.kernels.fp8_linear.fp8_linear_reference",
            "--fp8 1|2 (train/accelerate.py): the blocks' matmuls through torch._scaled_mm, per-tensor scales",
            False,
            "tests/test_kernels_fp8_linear.py",
        ),
        KernelInfo(
            "fp8_cast_transpose",
            "gpt2train.kernels.fp8_cast.cast_transpose",
            "gpt2train.kernels.fp8_cast.cast_transpose_reference",
            "--fp8-cast-kernel (on with --fp8 on CUDA; kernels/fp8_linear.py): each FP8 operand cast once into both "
            "layouts (fp32 ones rounded to bf16 first), its amax recorded for --fp8-scaling delayed",
            True,
            "tests/test_kernels_fp8_cast.py",
        ),
        KernelInfo(
            "fp8_grad_cast_transpose",
            "gpt2train.kernels.fp8_cast.grad_cast_transpose_kernel",
            "gpt2train.kernels.fp8_cast.grad_cast_transpose_reference",
            "--fp8-cast-kernel (kernels/fp8_linear.py, fp8_fused.py): a linear's FP8 output gradient cast into both "
            "layouts with its bias gradient's column sums from the same pass",
            True,
            "tests/test_kernels_fp8_cast.py",
        ),
        KernelInfo(
            "fp8_activation_cast_transpose",
            "gpt2train.kernels.fp8_cast.activation_cast_transpose_kernel",
            "gpt2train.kernels.fp8_cast.activation_cast_transpose_reference",
            "--fp8-gelu-cast (on with our FP8's delayed scaling and cast kernel; kernels/fp8_fused.py): GELU (or "
            "ReLU²) of c_fc's output cast into c_proj's FP8 input, its backward into c_fc's FP8 output gradient with "
            "the bias gradient",
            True,
            "tests/test_kernels_fp8_mlp.py",
        ),
        KernelInfo(
            "fp8_qkv_grad_cast_transpose",
            "gpt2train.kernels.fp8_cast.qkv_grad_cast_transpose_kernel",
            "gpt2train.kernels.fp8_cast.qkv_grad_cast_transpose_reference",
            "--fp8-qkv-cast (opt-in; kernels/fp8_fused.py): attention's q, k and v gradients gathered into the FP8 "
            "cast of c_attn's output gradient, with its bias gradient",
            True,
            "tests/test_kernels_fp8_qkv.py",
        ),
        KernelInfo(
            "fp8_ln_cast_transpose",
            "gpt2train.kernels.fp8_layernorm.ln_cast_transpose_kernel",
            "gpt2train.kernels.fp8_layernorm.ln_cast_transpose_reference",
            "--fp8-norm-cast (opt-in; fp8_linear.input_operand): ln_1 and ln_2 computed inside the FP8 casts of "
            "c_attn's and c_fc's inputs, with the statistics their backward takes",
            True,
            "tests/test_kernels_fp8_layernorm.py",
        ),
        KernelInfo(
            "linear_accumulate",
            "gpt2train.kernels.grad_accum.linear_accumulate",
            "torch.nn.functional.linear",
            "--accumulate-in-matmul (train/accelerate.py): weight gradients summed by the matmul",
            False,
            "tests/test_kernels_grad_accum.py",
        ),
        KernelInfo(
            "adamw_bf16_stochastic",
            "gpt2train.kernels.stochastic_round.adamw_bf16_stochastic_",
            "gpt2train.kernels.stochastic_round.adamw_bf16_stochastic_reference",
            "-w 0: BF16AdamW over bf16 parameters",
            True,
            "tests/test_kernels_stochastic_round.py",
        ),
        KernelInfo(
            "adamw_master",
            "gpt2train.kernels.master_adamw.adamw_master_",
            "gpt2train.kernels.master_adamw.adamw_master_reference",
            "--bf16-params 1: MasterAdamW over bf16 parameters, fp32 master copy in the optimizer",
            True,
            "tests/test_kernels_master_adamw.py",
        ),
    )
}


def available() -> dict[str, bool]:
    """Which fast paths can run in this environment (Triton ones need Triton importable)."""
    has_triton = triton_available()
    return {name: (has_triton or not k.needs_triton) for name, k in KERNELS.items()}


def select_classifier_loss(enabled: bool, chunk_rows: int = DEFAULT_CHUNK_ROWS, fp8: int = 0) -> Callable:
    """The classifier loss for ``GPT.classifier_loss``: chunked if enabled (its matmuls in FP8 with ``fp8``), else
    plain."""
    if not enabled:
        return plain_classifier_loss
    settings = {"chunk_rows": chunk_rows} if chunk_rows != DEFAULT_CHUNK_ROWS else {}
    if fp8:
        settings["fp8"] = fp8
    return functools.partial(chunked_classifier_loss, **settings) if settings else chunked_classifier_loss


__all__ = [
    "KERNELS",
    "KernelInfo",
    "available",
    "select_classifier_loss",
    "chunked_classifier_loss",
    "plain_classifier_loss",
    "GeluLinear",
    "gelu_linear",
    "gelu_linear_reference",
    "GeluMLP",
    "gelu_mlp",
    "gelu_mlp_reference",
    "BF16AdamW",
    "MasterAdamW",
    "adamw_master_",
    "adamw_master_reference",
    "adamw_bf16_stochastic_",
    "adamw_bf16_stochastic_reference",
    "stochastic_round_to_bf16",
    "triton_available",
]
