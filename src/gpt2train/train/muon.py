"""Muon for the hidden matrices, AdamW for everything else, in one optimizer (``--optimizer muon``).

Muon (momentum, then orthogonalisation): for each hidden weight matrix W with gradient G,

    M <- momentum * M + (1 - momentum) * G           (an EMA of the gradient)
    U <- (1 - momentum) * G + momentum * M            (Nesterov; plain: U <- M)
    O <- NewtonSchulz5(U)                             (about U's polar factor: U = A S B^T -> A B^T)
    W <- W - lr * sqrt(max(1, rows / cols)) * O

The fused q|k|v matrix (``attn.c_attn.weight``, 3C x C) is orthogonalised as three C x C blocks.
Embeddings, the output head, position tables, norm gains and biases get AdamW (decoupled weight
decay on 2-D tensors only, as in optim.py), each group at its own peak lr; every group's lr follows
the schedule as ``schedule(step) * lr_scale`` (``lr_scale`` = group peak / ``-l``), see optim.set_lr.

Why our own class rather than torch.optim.Muon (2.9+): one optimizer with one state_dict, so the
checkpoint code, ``set_lr`` and the trainer work unchanged; the q|k|v split; and identical numerics
on every torch version we support. tests/test_modern.py checks the orthogonalisation against a
float64 SVD, our step against a float64 reference, and (where present) against torch.optim.Muon.

Distributed: under DDP the gradients are already all-reduced. With ``-z 0`` every rank runs the whole
update redundantly on identical inputs. With ``-z 1`` (``shard=(rank, world_size)``) every parameter has
one owner rank (``assign_owners``: greedy by cost, the Muon matrices and the AdamW tensors balanced
apart): a rank keeps optimizer state (momentum, Adam moments) only for the parameters it owns and
updates only those, then each rank broadcasts its updated parameters (one flat buffer per owner) to
the others. The per-parameter math is unchanged, so ``-z 1`` gives the same weights as ``-z 0`` bit for bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

# the quintic iteration's coefficients (Keller Jordan's Muon): they push small singular values up fast
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}


def newton_schulz(
    G: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.bfloat16, eps: float = 1e-7
) -> torch.Tensor:
    """Approximately orthogonalise each matrix of ``G`` (..., m, n): U S V^T -> U S' V^T with S' near 1.

    Five quintic steps do not converge exactly: singular values land in roughly [0.6, 1.2], which
    works as well as the exact polar factor for Muon. The iteration runs in ``dtype`` (bf16 by default).
    """
    a, b, c = NS_COEFFICIENTS
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:  # iterate on the wide orientation: the Gram matrix X X^T is the small one
        X = X.mT
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # Frobenius >= spectral norm: all S <= 1
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    if tall:
        X = X.mT
    return X.to(G.dtype)


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer, two kinds of parameter groups: ``kind="muon"`` (2-D matrices) and ``kind="adamw"``.

    Muon groups take ``momentum``, ``nesterov``, ``ns_steps``, ``ns_dtype`` (bf16 | fp32 | fp64) and
    ``split`` (orthogonalise the matrix as that many row blocks); AdamW groups take ``betas`` and ``eps``.
    Both take ``lr`` and ``weight_decay`` (decoupled: W <- W * (1 - lr * wd)).
    """

    def __init__(self, groups: list[dict], lr: float = 0.02, betas=(0.9, 0.95), eps: float = 1e-8,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5, ns_dtype: str = "bf16",
                 shard: tuple[int, int] | None = None):  # fmt: skip
        defaults = dict(lr=lr, weight_decay=0.0, betas=betas, eps=eps, momentum=momentum, nesterov=nesterov,
                        ns_steps=ns_steps, ns_dtype=ns_dtype, split=1, kind="adamw")  # fmt: skip
        super().__init__(groups, defaults)
        for group in self.param_groups:
            if group["kind"] not in ("muon", "adamw"):
                raise ValueError(f"unknown parameter group kind {group['kind']!r}")
            if group["kind"] == "muon":
                for p in group["params"]:
                    if p.ndim != 2 or p.size(0) % group["split"]:
                        raise ValueError(
                            f"Muon needs 2-D matrices whose rows split {group['split']} ways, not {p.shape}"
                        )
        # ZeRO-1 by ownership: rank r updates (and holds state for) the parameters whose owner is r
        self.rank, self.world_size = shard or (0, 1)
        self.owner: dict[torch.Tensor, int] = assign_owners(self.param_groups, self.world_size)
        self.by_owner = [[p for g in self.param_groups for p in g["params"] if self.owner[p] == r]
                         for r in range(self.world_size)]  # fmt: skip

    def owned(self, p: torch.Tensor) -> bool:
        return self.owner[p] == self.rank

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (self._muon_step if group["kind"] == "muon" else self._adamw_step)(group)
        if self.world_size > 1:
            self._broadcast_updates()
        return loss

    def _broadcast_updates(self) -> None:
        """Every owner sends its updated parameters to the other ranks: one flat broadcast per owner."""
        import torch.distributed as dist

        for r, params in enumerate(self.by_owner):
            if not params:
                continue
            flat = _flatten_dense_tensors([p.detach() for p in params])
            dist.broadcast(flat, src=r)
            if r != self.rank:
                for p, t in zip(params, _unflatten_dense_tensors(flat, params)):
                    p.copy_(t)

    def _muon_step(self, group: dict) -> None:
        lr, mom, k = group["lr"], group["momentum"], group["split"]
        for p in group["params"]:
            if p.grad is None or not self.owned(p):
                continue
            g = p.grad
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(g, 1 - mom)
            update = g.lerp(buf, mom) if group["nesterov"] else buf
            blocks = update.view(k, p.size(0) // k, p.size(1))
            ortho = newton_schulz(blocks, group["ns_steps"], NS_DTYPES[group["ns_dtype"]])
            rows, cols = blocks.shape[-2:]
            if group["weight_decay"]:
                p.mul_(1 - lr * group["weight_decay"])
            p.add_(ortho.view_as(p), alpha=-lr * math.sqrt(max(1.0, rows / cols)))

    def _adamw_step(self, group: dict) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None or not self.owned(p):
                continue
            g = p.grad
            state = self.state[p]
            if "exp_avg" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            if wd:
                p.mul_(1 - lr * wd)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
            p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))


def assign_owners(param_groups: list[dict], world_size: int) -> dict[torch.Tensor, int]:
    """Owner rank of every parameter, the same on every rank (it depends only on the groups' order and shapes).

    Greedy: the costliest first (ties in parameter order), each to the least-loaded rank (ties: the lowest).
    Muon matrices and AdamW tensors are balanced apart, as their costs differ in kind: Newton-Schulz on k
    blocks of r x c costs about numel * min(r, c); AdamW about numel (and its state is 2 x numel).
    """
    owner: dict[torch.Tensor, int] = {}
    for kind in ("muon", "adamw"):
        costs = []
        for group in param_groups:
            if group["kind"] != kind:
                continue
            for p in group["params"]:
                if kind == "muon":
                    rows, cols = p.size(0) // group["split"], p.size(1)
                    costs.append((p.numel() * min(rows, cols), len(costs), p))
                else:
                    costs.append((p.numel(), len(costs), p))
        load = [0] * world_size
        for cost, _, p in sorted(costs, key=lambda c: (-c[0], c[1])):
            r = min(range(world_size), key=lambda i: (load[i], i))
            owner[p] = r
            load[r] += cost
    return owner


def muon_param_groups(model: nn.Module, lr: float, weight_decay: float, muon_lr: float, embed_lr: float,
                      head_lr: float) -> list[dict]:  # fmt: skip
    """The groups of ``--optimizer muon``; ``lr_scale`` = group peak lr / ``lr`` (see optim.set_lr).

    Muon: every 2-D weight inside the transformer blocks (q|k|v split in three). AdamW: the token
    embedding (``embed_lr`` when untied, else ``lr``: a tied wte is also the head), an untied ``lm_head``
    (``head_lr``), the position table and every 1-D tensor (``lr``); 2-D AdamW tensors decay, 1-D ones do not.
    """
    untied = hasattr(model, "lm_head")
    buckets: dict[str, list] = {"qkv": [], "matrices": [], "embed": [], "head": [], "decay": [], "no_decay": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if ".h." in name and p.ndim == 2:
            buckets["qkv" if name.endswith("attn.c_attn.weight") else "matrices"].append(p)
        elif name == "transformer.wte.weight" and untied:
            buckets["embed"].append(p)
        elif name == "lm_head.weight":
            buckets["head"].append(p)
        else:
            buckets["decay" if p.ndim >= 2 else "no_decay"].append(p)
    spec = {
        "qkv": dict(kind="muon", lr=muon_lr, split=3, weight_decay=0.0),
        "matrices": dict(kind="muon", lr=muon_lr, split=1, weight_decay=0.0),
        "embed": dict(kind="adamw", lr=embed_lr, weight_decay=weight_decay),
        "head": dict(kind="adamw", lr=head_lr, weight_decay=weight_decay),
        "decay": dict(kind="adamw", lr=lr, weight_decay=weight_decay),
        "no_decay": dict(kind="adamw", lr=lr, weight_decay=0.0),
    }
    return [{"params": ps, "name": key, **spec[key], "lr_scale": spec[key]["lr"] / lr}
            for key, ps in buckets.items() if ps]  # fmt: skip


def build_muon_optimizer(model: nn.Module, rc, zero_sharded: bool) -> MuonAdamW:
    """``--optimizer muon`` for the trainer: ``rc`` is the run's ResolvedConfig (the head's and the embedding's
    AdamW lrs decided there, recipe.resolved_levers).

    ``zero_sharded`` (-z 1 with several processes): each rank owns and updates a share of the parameters."""
    from gpt2train.errors import UserError

    shard = None
    if zero_sharded:
        import torch.distributed as dist

        shard = (dist.get_rank(), dist.get_world_size())
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise UserError("--optimizer muon needs fp32 parameters: drop -w 0 and --bf16-params 1")
    groups = muon_param_groups(model, rc.lr, rc.weight_decay, rc.muon_lr, rc.embed_lr, rc.head_lr)
    return MuonAdamW(groups, lr=rc.lr, betas=(rc.beta1, rc.beta2), eps=rc.eps, momentum=rc.muon_momentum,
                     shard=shard)  # fmt: skip
