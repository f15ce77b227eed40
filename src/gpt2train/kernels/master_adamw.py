"""AdamW on bf16 parameters with the fp32 master copy inside the optimizer (llm.c's ``-w 1`` layout).

The model holds bf16 parameters (2 bytes each) and bf16 gradients; the optimizer state holds, per
parameter, an fp32 master copy (``state["master"]``, made from the bf16 parameter at its first step,
as llm.c does) and AdamW's two fp32 moments. Each step updates master and moments in fp32 exactly as
``torch.optim.AdamW`` (single-tensor path) updates an fp32 parameter, from the bf16 gradient, then
writes the parameter as the master rounded to the nearest bf16 (ties to even). 16 bytes per parameter
in all (2 + 2 + 4 + 8), and no per-step bf16 casts of fp32 weights in the forward and backward passes.

Pieces:

* :func:`adamw_master_reference` -- plain-PyTorch step, torch.optim.AdamW's ops in torch's order
  (the CPU path and the test oracle).
* :func:`adamw_master_` -- the same step as one Triton kernel: reads the bf16 gradient, master and
  moments, writes master, moments and the bf16 parameter in one pass.
* :class:`MasterAdamW` -- a ``torch.optim.Optimizer`` using the kernel on CUDA, the reference elsewhere.

A module of its own rather than part of stochastic_round.py: no randomness is involved, and the
optimizer state (and so the checkpoint) differs from BF16AdamW's by the master copy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch

from gpt2train.kernels._bf16_optim import BF16ParamAdamW, fp32_zeros, launch_update
from gpt2train.kernels._triton import interpreting


def _hyper(lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, step: int) -> dict:
    """torch.optim.AdamW's per-step scalars (Python floats, computed as torch computes them)."""
    if step < 1:
        raise ValueError(f"AdamW step counts from 1, got {step}")
    step_f = float(step)  # torch keeps the step as a float tensor and reads it back with .item()
    bias_correction1 = 1 - beta1**step_f
    bias_correction2 = 1 - beta2**step_f
    return dict(
        decay=1 - lr * weight_decay,
        lerp_weight=1 - beta1,
        beta2=float(beta2),
        one_minus_beta2=1 - beta2,
        bias_correction2_sqrt=bias_correction2**0.5,
        eps=float(eps),
        neg_step_size=-(lr / bias_correction1),
    )


@torch.no_grad()
def adamw_master_reference(
    param: torch.Tensor,
    grad: torch.Tensor,
    master: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
) -> None:
    """One AdamW step on the fp32 ``master`` and moments (in place), then ``param`` (bf16) = master
    rounded to nearest. The ops are torch.optim.AdamW's single-tensor ones, in its order."""
    hp = _hyper(lr, beta1, beta2, eps, weight_decay, step)
    g = grad.float()
    if weight_decay != 0:
        master.mul_(hp["decay"])
    exp_avg.lerp_(g, hp["lerp_weight"])
    exp_avg_sq.mul_(hp["beta2"]).addcmul_(g, g, value=hp["one_minus_beta2"])
    denom = (exp_avg_sq.sqrt() / hp["bias_correction2_sqrt"]).add_(hp["eps"])
    master.addcdiv_(exp_avg, denom, value=hp["neg_step_size"])
    param.copy_(master)  # fp32 -> bf16: round to nearest even


# What the kernel guarantees against the reference (measured on the GPU, bench/kernels_gpu_check.py
# --checks adamw_master; BENCHMARKS.md): the moments within a few fp32 ulps (the GPU may contract a multiply-add
# that torch rounds twice), the master within MASTER_ULPS ulps of the update's operands. Ulps of the operands, not
# of the result: where the step nearly cancels the master, a last-bit difference is many ulps of the small result.
MASTER_ULPS = 4.0


def master_error_ulps(before: torch.Tensor, expected: torch.Tensor, got: torch.Tensor) -> float:
    """Largest |got - expected| in fp32 ulps of the update's operands (the master ``before`` it and the step)."""
    operands = before.abs() + (expected - before).abs()
    return ((got - expected).abs() / (2.0**-23 * operands).clamp_min(torch.finfo(torch.float32).tiny)).max().item()


# -- Triton ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _kernel(interpret: bool):
    # built on first use: triton.jit picks the interpreter from TRITON_INTERPRET at decoration time
    import triton
    import triton.language as tl

    @triton.jit
    def adamw_master_kernel(
        p_ptr,  # bf16 parameter viewed as int16 (written only)
        g_ptr,  # gradient: fp32, or bf16 viewed as int16
        w_ptr,  # fp32 master
        m_ptr,
        v_ptr,
        n_elements,
        decay,
        lerp_weight,
        beta2,
        one_minus_beta2,
        bias_correction2_sqrt,
        eps,
        neg_step_size,
        GRAD_BF16: tl.constexpr,
        LERP_LOW: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # a run can pass 2**31 elements
        mask = offs < n_elements
        if GRAD_BF16:  # bf16 -> fp32 is a 16-bit shift of the bit pattern
            g_bits = tl.load(g_ptr + offs, mask=mask, other=0).to(tl.uint16, bitcast=True).to(tl.uint32)
            g = (g_bits << 16).to(tl.float32, bitcast=True)
        else:
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + offs, mask=mask, other=0.0)
        m = tl.load(m_ptr + offs, mask=mask, other=0.0)
        v = tl.load(v_ptr + offs, mask=mask, other=0.0)
        # The fused multiply-adds below are where torch's CPU kernels fuse them (lerp_, addcmul_), so the
        # moments are torch.optim.AdamW's bit for bit (the master to 1 ulp, by the sqrt); the decay is an fma with a -0 addend (exact, signs kept) so that no
        # compiler contracts it into the update's add (torch rounds it on its own).
        w = tl.fma(w, decay, -0.0)
        # lerp_: start + weight * (end - start) for |weight| < 0.5, else end - (end - start) * (1 - weight)
        if LERP_LOW:
            m = tl.fma(lerp_weight, g - m, m)
        else:
            m = tl.fma(-(1.0 - lerp_weight), g - m, g)
        v = tl.fma(one_minus_beta2 * g, g, v * beta2)  # mul_, then addcmul_: self + (value * t1) * t2
        # correctly rounded sqrt and division, as torch's
        denom = tl.div_rn(tl.sqrt_rn(v), bias_correction2_sqrt) + eps
        w = w + tl.div_rn(neg_step_size * m, denom)  # addcdiv_: self + (value * t1) / t2
        # fp32 -> bf16, round to nearest even; NaN -> 0x7FC0 as torch's conversion
        bits = w.to(tl.uint32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
        rounded = tl.where(is_nan, 0x7FC0, rounded)
        tl.store(p_ptr + offs, rounded.to(tl.uint16).to(tl.int16, bitcast=True), mask=mask)
        tl.store(w_ptr + offs, w, mask=mask)
        tl.store(m_ptr + offs, m, mask=mask)
        tl.store(v_ptr + offs, v, mask=mask)

    return adamw_master_kernel


def adamw_master_(
    param: torch.Tensor,
    grad: torch.Tensor,
    master: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
    block: int = 1024,
) -> None:
    """:func:`adamw_master_reference` as one fused Triton kernel (in place).

    ``param`` bf16; ``grad`` bf16 or fp32; ``master``, ``exp_avg``, ``exp_avg_sq`` fp32; all
    contiguous, of one shape and device. Runs on CUDA, or on CPU tensors under ``TRITON_INTERPRET=1``.
    Moments equal the reference's bit for bit; the master is within 1 fp32 ulp of it (the kernel's
    sqrt is correctly rounded, torch's vectorized CPU sqrt not always); the parameter is the master
    rounded to nearest.
    """
    hp = _hyper(lr, beta1, beta2, eps, weight_decay, step)
    if weight_decay == 0:
        hp["decay"] = 1.0  # the reference skips the multiply; x * 1.0 == x
    names = ("decay", "lerp_weight", "beta2", "one_minus_beta2", "bias_correction2_sqrt", "eps", "neg_step_size")
    launch_update(_kernel(interpreting()), param, grad, (master, exp_avg, exp_avg_sq), tuple(hp[k] for k in names),
                  block, LERP_LOW=abs(hp["lerp_weight"]) < 0.5)  # fmt: skip


# -- optimizer ------------------------------------------------------------------------------------


class MasterAdamW(BF16ParamAdamW):
    """AdamW for bf16 parameters with an fp32 master copy and fp32 moments in the optimizer state.

    ``state[p]`` holds ``step`` (int), ``master``, ``exp_avg`` and ``exp_avg_sq`` (fp32, p's shape);
    the master is made from the bf16 parameter at its first step. Parameters whose ``grad`` is None
    are skipped. ``state_dict``/``load_state_dict`` carry the master, so a resumed run continues
    exactly. ``use_triton``: as :class:`~gpt2train.kernels._bf16_optim.BF16ParamAdamW`.
    """

    kernel = staticmethod(adamw_master_)
    reference = staticmethod(adamw_master_reference)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        use_triton: bool | None = None,
    ):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay), use_triton)

    def init_state(self, p: torch.Tensor) -> dict:
        master = p.detach().to(torch.float32, memory_format=torch.contiguous_format)
        return {"master": master, "exp_avg": fp32_zeros(p), "exp_avg_sq": fp32_zeros(p)}

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict, step: int, group: dict, index: int) -> None:
        beta1, beta2 = group["betas"]
        self._update_fn(p)(p, grad, state["master"], state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1, beta2,
                           group["eps"], group["weight_decay"], step)  # fmt: skip
