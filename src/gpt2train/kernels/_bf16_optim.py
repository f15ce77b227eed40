"""The shared loop of the AdamW variants that update bf16 parameters with fp32 state (``-w 0``'s
BF16AdamW and ``--bf16-params``'s MasterAdamW): the per-parameter update is a Triton kernel on CUDA
and a plain-torch reference elsewhere; the state stays fp32 across save and load."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain

import torch

from gpt2train.kernels._triton import triton_available


class BF16ParamAdamW(torch.optim.Optimizer):
    """Base: bf16 parameters, fp32 state tensors from :meth:`init_state`, one update call per parameter.

    Subclasses set ``kernel`` and ``reference`` (the update functions) and implement
    :meth:`init_state` and :meth:`update`. ``use_triton``: None (default) uses the kernel for CUDA
    parameters when Triton imports and the reference otherwise; True forces the kernel (e.g. on CPU
    under ``TRITON_INTERPRET=1``); False forces the reference.
    """

    kernel: Callable
    reference: Callable

    def __init__(self, params: Iterable, defaults: dict, use_triton: bool | None = None):
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dtype != torch.bfloat16:
                    raise TypeError(f"{type(self).__name__} updates bf16 parameters; got one of {p.dtype}")
        self.use_triton = use_triton

    def _update_fn(self, p: torch.Tensor) -> Callable:
        use = self.use_triton
        if use is None:
            use = p.is_cuda and triton_available()
        return type(self).kernel if use else type(self).reference

    def init_state(self, p: torch.Tensor) -> dict:
        """The fp32 state tensors of ``p`` at its first step (``step`` is added by the loop)."""
        raise NotImplementedError

    def update(self, p: torch.Tensor, group: dict, state: dict, index: int) -> None:
        """Update ``p`` in place from ``p.grad`` and ``state``; ``index`` is p's position over all groups."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                i, index = index, index + 1
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state.update(self.init_state(p))
                state["step"] += 1
                self.update(p, group, state, i)
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, but keeps the state tensors in fp32 (torch casts them to the bf16 param dtype)."""
        state = state_dict["state"]
        saved = {k: {n: t for n, t in s.items() if torch.is_tensor(t)} for k, s in state.items()}
        super().load_state_dict(state_dict)
        ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        for k, p in zip(ids, params):
            for name, t in saved.get(k, {}).items():
                self.state[p][name] = t.to(device=p.device, dtype=torch.float32, copy=True)


def fp32_zeros(p: torch.Tensor) -> torch.Tensor:
    return torch.zeros(p.shape, dtype=torch.float32, device=p.device)


def check_update_args(param: torch.Tensor, grad: torch.Tensor, *state: torch.Tensor) -> None:
    """The update kernels' contract: a bf16 ``param``, a bf16 or fp32 ``grad``, fp32 ``state`` tensors,
    all contiguous and of one shape."""
    if param.dtype != torch.bfloat16:
        raise TypeError(f"param must be bf16, got {param.dtype}")
    if not all(t.dtype == torch.float32 for t in state):
        raise TypeError("the optimizer state tensors must be fp32")
    if grad.dtype not in (torch.bfloat16, torch.float32):
        raise TypeError(f"grad must be bf16 or fp32, got {grad.dtype}")
    for t in (param, grad, *state):
        if not t.is_contiguous() or t.shape != param.shape:
            raise ValueError("param, grad and the optimizer state must be contiguous and of one shape")
