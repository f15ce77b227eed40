"""TEMPORARY shim (the model helper's accelerate.py replaces it): the fast paths of a model, in one call.

Today's ``model.configure_fast_paths`` and the trainer's torch.compile code behind the interface the trainer uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FastPaths:
    recompute: int = 0
    recompute_whole: int = 0
    gelu_fusion: int = 0
    fp8: int = 0
    accumulate_grads: bool = False
    fused_classifier: bool = False
    classifier_chunk: int = 16384
    compile: bool = False
    compile_scope: str = "blocks"
    compile_mode: str = "default"


def accelerate(model, paths: FastPaths) -> torch.nn.Module:
    """Switch ``model``'s fast paths on in place; returns the module the training step calls (``model`` itself, or
    torch.compile(model) for compile scope "model")."""
    classifier = None
    if paths.fused_classifier:
        try:
            from gpt2train.kernels import select_classifier_loss

            classifier = select_classifier_loss(True, paths.classifier_chunk or 1 << 62)
        except ImportError:
            classifier = None
    model.configure_fast_paths(
        recompute=paths.recompute, classifier_loss=classifier, gelu_fusion=paths.gelu_fusion, fp8=paths.fp8,
        accumulate_grads=paths.accumulate_grads, recompute_whole=paths.recompute_whole,
    )  # fmt: skip
    if not paths.compile:
        return model
    mode = None if paths.compile_mode == "default" else paths.compile_mode
    if paths.compile_scope == "model":
        return torch.compile(model, mode=mode)
    for block in model.transformer.h:  # regional: every block shares one compiled graph, so start-up does not grow
        block.compile(mode=mode)
    return model
