"""AdamW as llm.c uses it (weight decay on 2-D weights only); ZeRO-1's sharded AdamW is in zero.py."""

from __future__ import annotations

import torch
import torch.nn as nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: 2-D tensors (wte, wpe and every matmul weight) decay; biases and LayerNorms do not."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def bf16_adamw(groups: list[dict], lr: float, betas: tuple[float, float], eps: float, seed: int,
               master: bool) -> torch.optim.Optimizer:  # fmt: skip
    """The AdamW for bf16 parameters (replicated, and on ZeRO-1's shards): ``master`` (``--bf16-params 1``)
    MasterAdamW, the fp32 master copy in the optimizer state; else (``-w 0``) BF16AdamW, no master copy,
    stochastic rounding. Both keep fp32 moments."""
    if master:
        from gpt2train.kernels.master_adamw import MasterAdamW

        return MasterAdamW(groups, lr=lr, betas=betas, eps=eps)
    from gpt2train.kernels.stochastic_round import BF16AdamW

    return BF16AdamW(groups, lr=lr, betas=betas, eps=eps, seed=seed)


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], eps: float,
                    device_type: str, seed: int = 42, bf16_master: bool = False,
                    flat: bool = False) -> torch.optim.Optimizer:  # fmt: skip
    """AdamW (fused on CUDA), replicated on every rank (-z 1 uses zero.ZeroAdamW instead).

    bf16 parameters get :func:`bf16_adamw`'s choice: with ``bf16_master`` (``--bf16-params 1``) the fp32
    master copy lives in the optimizer; without it (``-w 0``) there is none (stochastic rounding). With
    ``flat`` (one process: DDP keeps gradients in its own buckets) their parameters and gradients are
    first moved into one buffer each, in group order, so a step is two kernel launches.
    """
    groups = param_groups(model, weight_decay)
    if any(p.dtype == torch.bfloat16 for p in model.parameters()):
        grad_buffer = flatten_parameters_([p for g in groups for p in g["params"]])[1] if flat else None
        optimizer = bf16_adamw(groups, lr, betas, eps, seed, master=bf16_master)
        if grad_buffer is not None:
            optimizer.grad_buffers = [grad_buffer]
        return optimizer
    kwargs = dict(lr=lr, betas=betas, eps=eps)
    if device_type == "cuda":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = False  # the single-tensor path: bit-reproducible on CPU
    return torch.optim.AdamW(groups, **kwargs)


@torch.no_grad()
def flatten_parameters_(params: list[torch.Tensor], numel: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Move ``params`` into one flat buffer, in order, and give each a ``.grad`` that is a view into a
    second (zeroed) one: autograd then accumulates every gradient in place into that buffer. Returns
    (parameter buffer, gradient buffer); ``numel`` pads both (ZeRO-1 shards evenly)."""
    total = sum(p.numel() for p in params)
    like = params[0]
    param_flat = torch.zeros(max(total, numel or 0), dtype=like.dtype, device=like.device)
    grad_flat = torch.zeros_like(param_flat)
    offset = 0
    for p in params:
        n = p.numel()
        param_flat[offset : offset + n].copy_(p.data.reshape(-1))
        p.data = param_flat[offset : offset + n].view_as(p)
        p.grad = grad_flat[offset : offset + n].view_as(p)
        offset += n
    return param_flat, grad_flat


@torch.no_grad()
def persistent_grads_(model: nn.Module) -> None:
    """Give every trainable parameter without a ``.grad`` a zeroed one, for the loop to zero in place after each step.
    Under CUDA graphs (``--compile-mode reduce-overhead``) autograd must add each micro-step's gradient into a
    ``.grad`` that already exists: a parameter without one would keep the first micro-step's gradient in the graph's
    own memory, which the next micro-step's replay overwrites (the modern recipe's d12 run failed so on an H200,
    2026-12-04; pytorch/pytorch#169545). The flat layout's ``.grad`` views (flatten_parameters_) already persist."""
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group at ``lr``, times the group's ``lr_scale`` where it has one (Muon's groups, train/muon.py)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr
