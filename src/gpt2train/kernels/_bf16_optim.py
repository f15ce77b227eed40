"""The shared loop of the AdamW variants that update bf16 parameters with fp32 state (``-w 0``'s
BF16AdamW and ``--bf16-params``'s MasterAdamW): the per-parameter update is a Triton kernel on CUDA
and a plain-torch reference elsewhere; the state stays fp32 across save and load."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain

import torch

from gpt2train.kernels._triton import triton_available


class BF16ParamAdamW(torch.optim.Optimizer):
    """Base: bf16 parameters, fp32 state tensors from :meth:`init_state`, one update call per run.

    A run is a stretch of a group's parameters that lie back to back in one buffer, with their
    gradients and every state tensor back to back too (a model flattened by :func:`~gpt2train.train.optim.flatten_parameters_`,
    or ZeRO-1's shards): it is updated by one call over the whole stretch, so a step costs a launch or
    two instead of one per parameter (580 at d48, which left the GPU waiting on the host). The state of
    a group is allocated as one buffer per state tensor at its first step, in the group's order; any
    other layout falls back to one call per parameter, with the same result.

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
        self.grad_buffers: list[torch.Tensor] = []  # set by flatten_parameters_: zero_grad zeroes these instead
        self._plans: dict[int, tuple] = {}  # group index -> (grads, param pointers, runs), reused while valid

    def _update_fn(self, p: torch.Tensor) -> Callable:
        use = self.use_triton
        if use is None:
            use = p.is_cuda and triton_available()
        return type(self).kernel if use else type(self).reference

    def init_state(self, p: torch.Tensor) -> dict:
        """The fp32 state tensors for the values of ``p`` (a parameter, or several flattened into one)."""
        raise NotImplementedError

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict, step: int, group: dict, index: int) -> None:
        """Update ``p`` in place from ``grad`` and the state tensors (all contiguous, of p's shape);
        ``index`` is p's position over all groups (a run's first parameter's)."""
        raise NotImplementedError

    @torch.no_grad()
    def _init_group_state(self, params: list[torch.Tensor]) -> None:
        """State for ``params`` at their first step: one buffer per state tensor, each parameter a view."""
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        buffers = self.init_state(flat)
        offset = 0
        for p in params:
            n = p.numel()
            self.state[p].update(step=0, **{k: t[offset : offset + n].view_as(p) for k, t in buffers.items()})
            offset += n

    def _runs(self, gi: int, params: list[torch.Tensor]) -> list[tuple[int, int]]:
        """(start, end) index ranges of ``params`` that one call can update (see the class docstring)."""
        grads = [p.grad for p in params]
        ptrs = [p.data_ptr() for p in params]
        cached = self._plans.get(gi)
        if (
            cached is not None
            and len(cached[0]) == len(grads)
            and all(a is b for a, b in zip(cached[0], grads))
            and cached[1] == ptrs
        ):
            return cached[2]
        runs: list[tuple[int, int]] = []
        prev = None
        for i, p in enumerate(params):
            tensors = (p, p.grad, *(t for t in self.state[p].values() if torch.is_tensor(t)))
            if prev is not None and _follows(prev[1], tensors) and self.state[params[prev[0]]]["step"] == \
                    self.state[p]["step"]:  # fmt: skip
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
            prev = (runs[-1][0], tensors)
        self._plans[gi] = (grads, ptrs, runs)
        return runs

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = 0
        for gi, group in enumerate(self.param_groups):
            params, positions, first = [], [], []  # positions: each updated parameter's index in the group
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                params.append(p)
                positions.append(i)
                if not self.state[p]:
                    first.append(p)
            if first:
                self._init_group_state(first)
            for start, end in self._runs(gi, params):
                run = params[start:end]
                for p in run:
                    self.state[p]["step"] += 1
                state0 = self.state[run[0]]
                tensors = {k: t for k, t in state0.items() if torch.is_tensor(t)}
                if len(run) == 1:
                    p, grad = run[0], run[0].grad
                else:  # one 1-D view over the run's parameters, gradients and state tensors
                    n = sum(q.numel() for q in run)
                    p, grad = _span(run[0], n), _span(run[0].grad, n)
                    tensors = {k: _span(t, n) for k, t in tensors.items()}
                target = p if p.is_contiguous() else p.contiguous()  # the kernels take contiguous tensors
                self.update(target, grad.contiguous(), tensors, state0["step"], group, index + positions[start])
                if target is not p:
                    p.copy_(target)
            index += len(group["params"])
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's; with flattened gradients (:func:`~gpt2train.train.optim.flatten_parameters_`), zero their buffers and keep
        ``.grad`` as views into them, whatever ``set_to_none``."""
        if not self.grad_buffers:
            return super().zero_grad(set_to_none=set_to_none)
        for buf in self.grad_buffers:
            buf.zero_()

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, but keeps the state tensors in fp32 (torch casts them to the bf16 param dtype) and
        back to back in one buffer per state tensor and group, as :meth:`step` lays them out."""
        state = state_dict["state"]
        saved = {k: {n: t for n, t in s.items() if torch.is_tensor(t)} for k, s in state.items()}
        super().load_state_dict(state_dict)
        self._plans.clear()
        ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        loaded = dict(zip(params, ids))
        for group in self.param_groups:
            with_state = [p for p in group["params"] if saved.get(loaded[p])]
            if not with_state:
                continue
            names = list(saved[loaded[with_state[0]]])
            if any(list(saved[loaded[p]]) != names for p in with_state):  # unexpected: keep one tensor each
                for p in with_state:
                    for name, t in saved[loaded[p]].items():
                        self.state[p][name] = t.to(device=p.device, dtype=torch.float32, copy=True)
                continue
            for name in names:
                buf = torch.cat([saved[loaded[p]][name].reshape(-1).to(p.device, torch.float32) for p in with_state])
                offset = 0
                for p in with_state:
                    self.state[p][name] = buf[offset : offset + p.numel()].view_as(p)
                    offset += p.numel()


def _follows(prev: tuple[torch.Tensor, ...], cur: tuple[torch.Tensor, ...]) -> bool:
    """Whether every tensor of ``cur`` starts where its counterpart in ``prev`` ends, in one storage."""
    if len(prev) != len(cur):
        return False
    for a, b in zip(prev, cur):
        if a.dtype != b.dtype or not (a.is_contiguous() and b.is_contiguous()):
            return False
        if a.data_ptr() + a.numel() * a.element_size() != b.data_ptr():
            return False
    return all(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() for a, b in zip(prev, cur))


def _span(first: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` elements of ``first``'s storage from where ``first`` starts, as a 1-D view."""
    return torch.as_strided(first.detach(), (n,), (1,), first.storage_offset())


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


def launch_update(kernel, param: torch.Tensor, grad: torch.Tensor, state: tuple[torch.Tensor, ...], scalars: tuple,
                  block: int = 1024, **constexprs) -> None:  # fmt: skip
    """Launch one of the elementwise update kernels over ``param``'s elements. Their shared signature:
    the bf16 parameter as int16 bits, the gradient (bf16 as int16 bits, or fp32), the fp32 ``state``
    tensors, the element count, then ``scalars``; constexprs GRAD_BF16 and BLOCK, plus ``constexprs``."""
    check_update_args(param, grad, *state)
    n = param.numel()
    if n == 0:
        return
    grad_bf16 = grad.dtype == torch.bfloat16
    kernel[((n + block - 1) // block,)](
        param.view(torch.int16), grad.view(torch.int16) if grad_bf16 else grad, *state, n, *scalars,
        GRAD_BF16=grad_bf16, BLOCK=block, **constexprs,
    )  # fmt: skip
