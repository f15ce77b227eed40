"""AdamW on bf16 parameters without an fp32 master copy (llm.c's ``-w 0``), with stochastic rounding.

The update is computed in fp32 from the bf16 parameter, the gradient and fp32 moments; the new
value is then rounded to bf16 *stochastically*: a uniform random 16-bit integer is added to the
low 16 bits of the fp32 bit pattern before they are dropped. A value a fraction f of the way from
one bf16 neighbour to the next (in magnitude) lands on the far one with probability f, so the
rounding is unbiased and small updates are not lost to round-to-nearest. Values already
representable in bf16 (low bits zero) never move.

The random bits are a pure function of (seed, step, parameter index, element index), so a run
resumed from a checkpoint rounds exactly as one never stopped.

Pieces:

* :func:`stochastic_round_to_bf16` -- plain-PyTorch stochastic rounding (torch random bits).
* :func:`adamw_bf16_stochastic_reference` -- plain-PyTorch AdamW step + stochastic rounding.
* :func:`adamw_bf16_stochastic_` -- the same step as one Triton kernel (Philox random bits, so
  its roundings differ from the reference's; its fp32 math is the same).
* :class:`BF16AdamW` -- a ``torch.optim.Optimizer`` using the kernel on CUDA and the reference
  elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch

from gpt2train.kernels._bf16_optim import BF16ParamAdamW, fp32_zeros, launch_update
from gpt2train.kernels._triton import interpreting

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """Hash integers (seed, step, index, ...) into one 31-bit seed (splitmix64 rounds)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h & 0x7FFFFFFF


def round_with_bits(x: torch.Tensor, rand16: torch.Tensor) -> torch.Tensor:
    """bf16 of fp32 ``x`` after adding ``rand16`` (int32 in [0, 65536)) to its low 16 bits.

    Non-finite values are passed through unchanged (to bf16).
    """
    bits = x.contiguous().view(torch.int32)
    # int32 add on the raw pattern: the sign bit is untouched for finite values, so this rounds
    # the magnitude up with probability (low bits / 2^16) for either sign
    rounded = ((bits + rand16) & -65536).view(torch.float32)
    return torch.where(torch.isfinite(x), rounded, x).to(torch.bfloat16)  # exact: low bits are 0


def stochastic_round_to_bf16(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Round fp32 ``x`` to bf16 stochastically (unbiased), with random bits from ``generator``."""
    if x.dtype != torch.float32:
        raise TypeError(f"stochastic_round_to_bf16 expects fp32, got {x.dtype}")
    r = torch.randint(0, 1 << 16, x.shape, generator=generator, dtype=torch.int32, device=x.device)
    return round_with_bits(x, r)


def _hyper(lr, beta1, beta2, step):
    if step < 1:
        raise ValueError(f"AdamW step counts from 1, got {step}")
    return dict(
        lr=float(lr),
        beta1=float(beta1),
        beta2=float(beta2),
        one_minus_beta1=1.0 - beta1,
        one_minus_beta2=1.0 - beta2,
        bias_correction1=1.0 - beta1**step,
        bias_correction2=1.0 - beta2**step,
    )


def adamw_fp32_math(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
) -> torch.Tensor:
    """One AdamW step in fp32 (llm.c's formula); updates the moments in place, returns the new
    parameter in fp32 (before any rounding)."""
    hp = _hyper(lr, beta1, beta2, step)
    p = param.float()
    g = grad.float()
    exp_avg.mul_(hp["beta1"]).add_(g * hp["one_minus_beta1"])
    exp_avg_sq.mul_(hp["beta2"]).add_(g * g * hp["one_minus_beta2"])
    m_hat = exp_avg / hp["bias_correction1"]
    v_hat = exp_avg_sq / hp["bias_correction2"]
    return p - hp["lr"] * (m_hat / (v_hat.sqrt() + eps) + weight_decay * p)


@torch.no_grad()
def adamw_bf16_stochastic_reference(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
    seed: int,
) -> None:
    """Plain-PyTorch AdamW step on a bf16 ``param`` (in place), stochastic rounding seeded by
    ``mix_seed(seed, step)``. ``exp_avg``/``exp_avg_sq`` are fp32 and updated in place."""
    new = adamw_fp32_math(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step)
    gen = torch.Generator(device=param.device).manual_seed(mix_seed(seed, step))
    param.copy_(stochastic_round_to_bf16(new, gen))


# -- Triton ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _kernel(interpret: bool):
    # built on first use: triton.jit picks the interpreter from TRITON_INTERPRET at decoration time
    import triton
    import triton.language as tl

    @triton.jit(do_not_specialize=["seed"])
    def adamw_bf16_sr_kernel(
        p_ptr,  # bf16 parameter viewed as int16
        g_ptr,  # gradient: fp32, or bf16 viewed as int16
        m_ptr,
        v_ptr,
        n_elements,
        lr,
        beta1,
        beta2,
        one_minus_beta1,
        one_minus_beta2,
        bias_correction1,
        bias_correction2,
        eps,
        weight_decay,
        seed,
        GRAD_BF16: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        # 64-bit offsets: a flattened model's run can pass 2**31 elements
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_elements
        # bf16 -> fp32 is a 16-bit shift of the bit pattern
        p_bits = tl.load(p_ptr + offs, mask=mask, other=0).to(tl.uint16, bitcast=True).to(tl.uint32)
        p = (p_bits << 16).to(tl.float32, bitcast=True)
        if GRAD_BF16:
            g_bits = tl.load(g_ptr + offs, mask=mask, other=0).to(tl.uint16, bitcast=True).to(tl.uint32)
            g = (g_bits << 16).to(tl.float32, bitcast=True)
        else:
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        m = tl.load(m_ptr + offs, mask=mask, other=0.0)
        v = tl.load(v_ptr + offs, mask=mask, other=0.0)
        m = m * beta1 + g * one_minus_beta1
        v = v * beta2 + (g * g) * one_minus_beta2
        m_hat = tl.div_rn(m, bias_correction1)
        v_hat = tl.div_rn(v, bias_correction2)
        # correctly rounded sqrt and division, as torch does, so the fp32 math matches the reference
        upd = tl.div_rn(m_hat, tl.sqrt_rn(v_hat) + eps) + weight_decay * p
        new = p - lr * upd
        rand16 = tl.randint(seed, offs.to(tl.int32)) & 0xFFFF  # the bits of 32-bit offsets
        new_bits = new.to(tl.uint32, bitcast=True)
        finite = (new_bits & 0x7F800000) != 0x7F800000
        rounded = tl.where(finite, new_bits + rand16, new_bits) >> 16
        tl.store(p_ptr + offs, rounded.to(tl.uint16).to(tl.int16, bitcast=True), mask=mask)
        tl.store(m_ptr + offs, m, mask=mask)
        tl.store(v_ptr + offs, v, mask=mask)

    return adamw_bf16_sr_kernel


def adamw_bf16_stochastic_(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
    seed: int,
    block: int = 1024,
) -> None:
    """One fused AdamW step on a bf16 ``param`` in place, with stochastic rounding (Triton).

    ``grad`` is bf16 or fp32, ``exp_avg``/``exp_avg_sq`` fp32; all contiguous, same shape and
    device. The fp32 math is :func:`adamw_fp32_math`'s; the random bits come from Philox keyed by
    ``mix_seed(seed, step)`` and the element index (not the reference's torch bits).
    Runs on CUDA, or on CPU tensors under ``TRITON_INTERPRET=1``.
    """
    hp = _hyper(lr, beta1, beta2, step)
    names = ("lr", "beta1", "beta2", "one_minus_beta1", "one_minus_beta2", "bias_correction1", "bias_correction2")
    scalars = (*(hp[k] for k in names), float(eps), float(weight_decay), mix_seed(seed, step))
    launch_update(_kernel(interpreting()), param, grad, (exp_avg, exp_avg_sq), scalars, block)


# -- optimizer ------------------------------------------------------------------------------------


class BF16AdamW(BF16ParamAdamW):
    """AdamW for bf16 parameters with no fp32 master copy: fp32 moments, stochastic rounding.

    Each update call's rounding is seeded by ``mix_seed(group["seed"], index)`` and its step, where
    index is the position across all groups of the parameter it starts at (a call covers a run of
    parameters laid out back to back, see the base class), so results depend only on the seed, the
    step and the layout: deterministic, and exact across ``state_dict``/``load_state_dict``.
    ``use_triton``: as :class:`~gpt2train.kernels._bf16_optim.BF16ParamAdamW` (the kernel and the
    reference use different random bits).
    """

    kernel = staticmethod(adamw_bf16_stochastic_)
    reference = staticmethod(adamw_bf16_stochastic_reference)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        seed: int = 42,
        use_triton: bool | None = None,
    ):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, seed=seed), use_triton)

    def init_state(self, p: torch.Tensor) -> dict:
        return {"exp_avg": fp32_zeros(p), "exp_avg_sq": fp32_zeros(p)}

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict, step: int, group: dict, index: int) -> None:
        beta1, beta2 = group["betas"]
        self._update_fn(p)(p, grad, state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1, beta2, group["eps"],
                           group["weight_decay"], step, mix_seed(group["seed"], index))  # fmt: skip
