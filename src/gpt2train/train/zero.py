"""ZeRO-1 over flat buffers, as llm.c does it: sharded AdamW state, reduce-scattered gradients,
all-gathered parameters.

The parameters are packed, in backward order, into buckets: one flat buffer per bucket (padded to a
multiple of the world size), with every parameter's ``.data`` and ``.grad`` a view into its bucket's
parameter and gradient buffers. Rank r owns slice r of every bucket.

* Backward: inner gradient-accumulation micro-steps (under :meth:`ZeroAdamW.no_sync`) only
  accumulate into the flat gradient buffers. On the last micro-step a post-accumulate-grad hook
  counts each bucket's finished gradients and launches that bucket's averaging reduce-scatter
  (async) as soon as it is complete, so communication overlaps the rest of the backward pass.
  Buckets are launched strictly in order, so every rank issues the same collectives in the same order.
* :meth:`ZeroAdamW.clip_grad_norm_`: the global norm from the shards (one all-reduce of a scalar).
* :meth:`ZeroAdamW.step`: AdamW on this rank's shard only (fused on CUDA; weight decay on 2-D
  weights only), then an all-gather of every bucket's updated shard back into the flat buffers.

The AdamW moments (and, under ``-w 0``, the bf16 parameters' stochastic-rounding updates) exist
for this rank's shard only: optimizer-state memory per rank is 1/world of the replicated one. The
fp32 parameters are the master weights; every rank needs them whole for its forward pass. With
``--bf16-params 1`` the parameters are bf16 and the fp32 master copy is optimizer state: sharded too.

gloo (CPU tests) takes the same path with all-reduce + slice in place of the reduce-scatter.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn as nn

from gpt2train.train.guards import clip_to_norm_, squared_norm_fp32
from gpt2train.train.optim import bf16_adamw, flatten_parameters_

# torch 2.13 renamed the flat collectives; 2.11 (the GPU box) has only the old names
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor

DEFAULT_BUCKET_MB = 100


@dataclass
class _Bucket:
    params: list[nn.Parameter]
    offsets: list[int]  # start of each parameter in the flat buffers
    param_flat: torch.Tensor  # padded to a multiple of the world size
    grad_flat: torch.Tensor
    shard_grad: torch.Tensor  # this rank's slice of the averaged gradient
    ready: int = 0  # gradients accumulated in this backward (last micro-step only)

    @property
    def shard_numel(self) -> int:
        return self.shard_grad.numel()


@dataclass
class _Pending:
    work: object | None  # an async collective's handle (None when it ran synchronously)
    after: list = field(default_factory=list)  # called once the collective has finished


def _buckets_of(params: list[nn.Parameter], cap_bytes: int) -> list[list[nn.Parameter]]:
    """Consecutive groups of one dtype of at most ``cap_bytes`` (a larger tensor gets its own)."""
    groups, cur, size = [], [], 0
    for p in params:
        nbytes = p.numel() * p.element_size()
        if cur and (size + nbytes > cap_bytes or p.dtype != cur[0].dtype):
            groups.append(cur)
            cur, size = [], 0
        cur.append(p)
        size += nbytes
    if cur:
        groups.append(cur)
    return groups


class ZeroAdamW:
    """AdamW with ZeRO-1 sharding over flat buffers; the -z 1 optimizer (see the module docstring).

    ``model``'s parameters are moved into flat buffers (their values are kept). Without an initialised
    process group (or with one rank) nothing is sharded and no collective runs, which is exact AdamW.
    ``reduce_dtype`` (fp32 or bf16) is the dtype fp32 gradients are averaged in; bf16 gradients
    (``-w 0``) are averaged in bf16. ``bucket_mb`` caps a bucket (a larger tensor gets its own).
    bf16 parameters get :class:`~gpt2train.kernels.stochastic_round.BF16AdamW` on their shards, or with
    ``bf16_master`` (``--bf16-params 1``) :class:`~gpt2train.kernels.master_adamw.MasterAdamW`, whose
    fp32 master copy is then sharded like the moments (1/world per rank).
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], eps: float,
                 reduce_dtype: torch.dtype = torch.float32, bucket_mb: float = DEFAULT_BUCKET_MB, seed: int = 42,
                 group: dist.ProcessGroup | None = None, bf16_master: bool = False):  # fmt: skip
        self.group = group
        self.bf16_master = bf16_master
        distributed = dist.is_initialized()
        self.world = dist.get_world_size(group) if distributed else 1
        self.rank = dist.get_rank(group) if distributed else 0
        self.gloo = distributed and dist.get_backend(group) == "gloo"
        self.reduce_dtype = reduce_dtype
        self._sync = True
        self._next_launch = 0
        self._pending: list[_Pending] = []
        params = [p for p in model.parameters() if p.requires_grad]
        # reverse registration order is roughly the order the backward pass finishes gradients in
        self.buckets = [self._make_bucket(ps) for ps in _buckets_of(params[::-1], int(bucket_mb * 2**20))]
        self._bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b.params}
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self.optim = self._shard_optimizer(lr, weight_decay, betas, eps, seed)

    # -- layout ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _make_bucket(self, params: list[nn.Parameter]) -> _Bucket:
        offsets, total = [], 0
        for p in params:
            offsets.append(total)
            total += p.numel()
        padded = -(-total // self.world) * self.world
        like = params[0]
        param_flat, grad_flat = flatten_parameters_(params, numel=padded)
        shard_grad = grad_flat if self.world == 1 else torch.zeros(padded // self.world, dtype=like.dtype,
                                                                   device=like.device)  # fmt: skip
        return _Bucket(params, offsets, param_flat, grad_flat, shard_grad)

    def _shard_optimizer(self, lr, weight_decay, betas, eps, seed) -> torch.optim.Optimizer:
        """The inner optimizer over this rank's pieces of each parameter (views of the flat buffers)."""
        decay, no_decay = [], []
        for b in self.buckets:
            lo, hi = self.rank * b.shard_numel, (self.rank + 1) * b.shard_numel
            for p, o in zip(b.params, b.offsets):
                start, end = max(o, lo), min(o + p.numel(), hi)
                if start >= end:
                    continue
                piece = b.param_flat[start:end]
                piece.grad = b.shard_grad[start - lo : end - lo]
                # weight decay on 2-D weights only, as param_groups() in optim.py
                (decay if p.dim() >= 2 else no_decay).append(piece)
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
        if self.buckets and self.buckets[0].param_flat.dtype == torch.bfloat16:
            # --bf16-params 1: the fp32 master copy is optimizer state, so it is sharded with the moments
            return bf16_adamw(groups, lr, betas, eps, seed, master=self.bf16_master)
        cuda = self.buckets[0].param_flat.is_cuda
        # CPU: the single-tensor path, bit-reproducible and elementwise equal to -z 0's AdamW
        return torch.optim.AdamW(
            groups, lr=lr, betas=betas, eps=eps, **({"fused": True} if cuda else {"foreach": False})
        )

    # -- the optimizer interface the trainer uses -----------------------------------------------
    @property
    def param_groups(self) -> list[dict]:
        return self.optim.param_groups

    def state_bytes(self) -> int:
        """Bytes of optimizer state (moments, and the master copy under --bf16-params 1) this rank holds."""
        return sum(t.numel() * t.element_size() for s in self.optim.state.values() for t in s.values()
                   if torch.is_tensor(t) and t.dim() > 0)  # fmt: skip

    @contextlib.contextmanager
    def no_sync(self):
        """Inner gradient-accumulation micro-steps: accumulate locally, communicate nothing."""
        self._sync = False
        try:
            yield
        finally:
            self._sync = True

    def shard_grads(self) -> list[torch.Tensor]:
        """This rank's averaged gradient shards (valid after :meth:`reduce_grads`)."""
        return [b.shard_grad for b in self.buckets]

    @torch.no_grad()
    def reduce_grads(self) -> None:
        """Finish the gradient reduce-scatter (launching buckets no hook launched) and wait for it."""
        self._launch_ready(force=True)
        self._wait()
        for b in self.buckets:
            b.ready = 0
        self._next_launch = 0

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Reduce the gradients, then clip them to ``max_norm`` by their global L2 norm (returned), as
        torch.nn.utils.clip_grad_norm_ does; the norm comes from the shards and one all-reduce."""
        self.reduce_grads()
        shards = self.shard_grads()
        sq = squared_norm_fp32(shards)  # fp32 even for bf16 shards
        if self.world > 1:
            dist.all_reduce(sq, group=self.group)
        norm = sq.sqrt()
        clip_to_norm_(shards, norm, max_norm)
        return norm

    @torch.no_grad()
    def step(self) -> None:
        """AdamW on this rank's shards, then all-gather the updated parameters on every rank."""
        self.optim.step()
        if self.world == 1:
            return
        for b in self.buckets:
            shard = b.param_flat.narrow(0, self.rank * b.shard_numel, b.shard_numel)
            if self.gloo:
                chunks = list(b.param_flat.chunk(self.world))
                self._pending.append(_Pending(dist.all_gather(chunks, shard.clone(), group=self.group, async_op=True)))
            else:  # in place: the input is this rank's slice of the output, as NCCL allows
                self._pending.append(_Pending(_all_gather(b.param_flat, shard, group=self.group, async_op=True)))
        self._wait()

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero the flat gradient buffers (``.grad`` stays a view into them, whatever ``set_to_none``)."""
        for b in self.buckets:
            b.grad_flat.zero_()

    # -- gradient reduction ---------------------------------------------------------------------
    def _grad_ready(self, p: torch.Tensor) -> None:
        if not self._sync:
            return
        self.buckets[self._bucket_of[id(p)]].ready += 1
        self._launch_ready(force=False)

    def _launch_ready(self, force: bool) -> None:
        while self._next_launch < len(self.buckets):
            b = self.buckets[self._next_launch]
            if not (force or b.ready == len(b.params)):
                return
            self._launch_reduce(b)
            self._next_launch += 1

    def _launch_reduce(self, b: _Bucket) -> None:
        """Start averaging ``b``'s gradients over the ranks into ``b.shard_grad`` (async)."""
        if self.world == 1:  # shard_grad is grad_flat itself
            return
        comm_dtype = self.reduce_dtype if b.grad_flat.dtype == torch.float32 else b.grad_flat.dtype
        lo, n = self.rank * b.shard_numel, b.shard_numel
        if self.gloo:  # gloo: all-reduce the sum of pre-divided gradients, as DDP does, then take the slice
            full = b.grad_flat.div_(self.world)
            full = full if comm_dtype == full.dtype else full.to(comm_dtype)
            work = dist.all_reduce(full, group=self.group, async_op=True)
            self._pending.append(_Pending(work, [lambda: b.shard_grad.copy_(full[lo : lo + n])]))
            return
        if comm_dtype == b.grad_flat.dtype:
            work = _reduce_scatter(b.shard_grad, b.grad_flat, op=dist.ReduceOp.AVG, group=self.group, async_op=True)
            self._pending.append(_Pending(work))
            return
        # bf16 on the wire: half the bytes; cast back into the fp32 shard once it has arrived
        full = b.grad_flat.to(comm_dtype)
        out = torch.empty(n, dtype=comm_dtype, device=full.device)
        work = _reduce_scatter(out, full, op=dist.ReduceOp.AVG, group=self.group, async_op=True)
        # `full` must live until the collective is done
        self._pending.append(_Pending(work, [lambda: b.shard_grad.copy_(out), lambda: full]))

    def _wait(self) -> None:
        for pending in self._pending:
            if pending.work is not None:
                pending.work.wait()
            for fn in pending.after:
                fn()
        self._pending.clear()


# no return annotation: DDP checks it, and this module's postponed annotations are strings
def bf16_average_hook(state, bucket):
    """A DDP comm hook averaging each gradient bucket in bf16, for gloo (-z 0 --grad-reduce-dtype bf16 on
    CPUs); on NCCL the trainer uses torch's own bf16_compress_hook, which DDP allows on GPUs only."""
    group = state or dist.group.WORLD
    grads = bucket.buffer()
    wire = (grads / dist.get_world_size(group)).to(torch.bfloat16)
    done = dist.all_reduce(wire, group=group, async_op=True).get_future()
    return done.then(lambda fut: grads.copy_(fut.value()[0]))
