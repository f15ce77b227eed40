"""GPT-2 as llm.c trains it, in plain PyTorch, readable top to bottom.

Pre-LayerNorm transformer with learned position embeddings, GELU (tanh), biases everywhere,
the token embedding tied to the output layer, and the vocabulary padded (50257 -> 50304) so that
matrix shapes are friendly; padded rows are never predicted (the loss and the logits see only
``vocab_size`` columns). Initialisation is llm.c's: N(0, 0.02), residual projections scaled by
1/sqrt(2L), biases zero, LayerNorm weights one.

Fast paths (a fused output layer + cross-entropy, activation recomputation, GELU fused into the
MLP's matmuls) are switched on by the trainer through ``GPT.configure_fast_paths``; with them off,
this file is the whole model.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from gpt2train.config import ModelConfig
from gpt2train.kernels.grad_accum import accumulating, linear_accumulate


class Linear(nn.Linear):
    """``nn.Linear`` whose matmuls can run in FP8 (``fp8``: 1, or 2 with the gradient matmuls in FP8's fast
    accumulation too) and whose backward can add its gradients into ``.grad`` itself (``accumulate_grad``); both
    set by ``GPT.configure_fast_paths``."""

    fp8 = 0
    accumulate_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp8:
            from gpt2train.kernels.fp8_linear import fp8_linear

            return fp8_linear(x, self.weight, self.bias, backward_fast_accum=self.fp8 == 2)
        grads = accumulating(self)
        if grads is not None:
            return linear_accumulate(x, self.weight, self.bias, *grads)
        return super().forward(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = Linear(cfg.n_embd, 3 * cfg.n_embd)  # llm.c's qkvw / qkvb
        self.c_proj = Linear(cfg.n_embd, cfg.n_embd)  # attprojw / attprojb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = Linear(cfg.n_embd, 4 * cfg.n_embd)  # fcw / fcb
        self.c_proj = Linear(4 * cfg.n_embd, cfg.n_embd)  # fcprojw / fcprojb
        self.recompute_gelu = False
        self.gelu_fusion = 0  # llm.c's -ge: 0 off, 1 forward, 2 forward and backward

    def _gelu_proj(self, h: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(h, approximate="tanh"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gelu_fusion and not self.recompute_gelu:
            # llm.c's -ge: GELU in the cuBLASLt epilogue of c_fc (1), and of c_proj's input gradient too (2)
            from gpt2train.kernels.gelu_mlp import gelu_mlp

            backward = "dgelu" if self.gelu_fusion >= 2 else "plain"
            fc, proj = accumulating(self.c_fc), accumulating(self.c_proj)
            grads = (*fc, *proj) if fc and proj else None
            return gelu_mlp(x, self.c_fc.weight, self.c_fc.bias, self.c_proj.weight, self.c_proj.bias, backward, grads)
        h = self.c_fc(x)
        if self.recompute_gelu and torch.is_grad_enabled():
            # llm.c's -r 1: keep only the pre-GELU activation; backward recomputes GELU (not the matmul).
            # Compiled, the partitioner decides what to save and would keep GELU's output too: a checkpointed
            # GELU tells it to recompute; eager, gelu_linear saves only h (c_proj would save GELU's output),
            # unless c_proj runs in FP8, which saves its own one-byte copy of its input
            if torch.compiler.is_compiling() or self.c_proj.fp8:
                return self.c_proj(checkpoint(F.gelu, h, approximate="tanh", use_reentrant=False))
            from gpt2train.kernels.gelu_linear import gelu_linear

            return gelu_linear(h, self.c_proj.weight, self.c_proj.bias, accumulating(self.c_proj))
        return self._gelu_proj(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)
        self.recompute = 0  # -r, set by GPT.configure_fast_paths: 2 and 3 are handled here

    def _ln_attn(self, x):
        return self.attn(self.ln_1(x))

    def _ln_mlp(self, x):
        return self.mlp(self.ln_2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.recompute >= 2 and torch.is_grad_enabled():
            if self.recompute == 2 and torch.compiler.is_compiling():
                # llm.c's -r 2: the LayerNorm outputs are recomputed from the block's input, not stored. A
                # checkpointed LayerNorm (with autocast's cast) tells the compiler's partitioner so
                x = x + self.attn(checkpoint(_norm, self.ln_1, x, use_reentrant=False))
                return x + self.mlp(checkpoint(_norm, self.ln_2, x, use_reentrant=False))
            # -r 3, and -r 2 eager (where the matmuls would save the LayerNorm outputs anyway): each sublayer
            # is recomputed whole from its input, so a block keeps only that
            x = x + checkpoint(self._ln_attn, x, use_reentrant=False)
            return x + checkpoint(self._ln_mlp, x, use_reentrant=False)
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def _norm(ln: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``ln(x)`` in the dtype the next matmul takes (autocast's), so that the cast is recomputed with it."""
    y = ln(x)
    dev = x.device.type
    return y.to(torch.get_autocast_dtype(dev)) if torch.is_autocast_enabled(dev) else y


@torch.no_grad()
def init_llmc_(model: nn.Module, seed: int, std_of: Callable[[str, float], float] | None = None) -> nn.Module:
    """llm.c's initialisation of ``model`` in place: biases 0, LayerNorm weights 1, other weights N(0, 0.02)
    with residual projections N(0, 0.02/sqrt(2L)). Each weight is drawn from its own CPU generator, seeded from
    ``seed`` and the weight's name (``param_seed``), so the draws run in parallel threads (from one stream, d48's
    1.5B values took 15-20 s of start-up) and give the same values on any device, whatever the other weights
    are. ``std_of(name, std)`` may change a weight's std."""
    residual_std = 0.02 / math.sqrt(2 * model.config.n_layer)
    draws = []
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.zero_()
        elif "ln_" in name:
            p.fill_(1.0)
        else:
            std = residual_std if name.endswith("c_proj.weight") else 0.02
            draws.append((p, std_of(name, std) if std_of else std, param_seed(seed, name)))

    def draw(job: tuple[nn.Parameter, float, int]) -> None:
        p, std, p_seed = job
        gen = torch.Generator(device="cpu").manual_seed(p_seed)
        if p.device.type == "cpu":  # straight into the parameter: no second buffer of its size
            torch.randn(p.shape, generator=gen, out=p.detach()).mul_(std)
        else:
            p.detach().copy_(torch.randn(p.shape, generator=gen).mul_(std))  # (grad mode is per thread)

    with ThreadPoolExecutor(max_workers=max(1, min(len(draws), os.cpu_count() or 1))) as pool:
        list(pool.map(draw, draws))
    return model


def param_seed(seed: int, name: str) -> int:
    """The seed of parameter ``name``'s initial draw: 64 bits of sha256 of ``seed`` and the name."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little")


def plain_classifier_loss(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int, softcap: float = 0.0
) -> torch.Tensor:
    """Reference output layer + mean cross-entropy over the unpadded vocabulary, in fp32.

    ``softcap`` > 0 squashes the logits to (-softcap, softcap) by softcap * tanh(logits / softcap) first
    (the modern recipe's ``--logit-softcap``)."""
    logits = F.linear(x, weight)[..., :vocab_size].float()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1), ignore_index=-1)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.padded_vocab_size, cfg.n_embd),
                wpe=nn.Embedding(cfg.max_seq_len, cfg.n_embd),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                ln_f=nn.LayerNorm(cfg.n_embd),
            )
        )
        self.classifier_loss: Callable = plain_classifier_loss

    # -- construction -------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, seed: int = 42) -> GPT:
        """llm.c's initialisation, drawn from a generator seeded with ``seed``."""
        return init_llmc_(self, seed)

    def configure_fast_paths(
        self,
        recompute: int = 0,
        classifier_loss: Callable | None = None,
        gelu_fusion: int = 0,
        fp8: int = 0,
        accumulate_grads: bool = False,
        recompute_whole: int = 0,
    ) -> None:
        """Switch activation recomputation (0/1/2 as llm.c's -r; 3: each block's sublayers whole; the first
        ``recompute_whole`` blocks as 3 whatever ``recompute`` says), the classifier implementation, GELU fused
        into the MLP's matmuls (llm.c's -ge; -r 1 and up keep their own GELU path), FP8 matmuls in the blocks'
        linear layers (``kernels/fp8_linear.py``; 2: the gradient matmuls in fast accumulation too; the -ge
        epilogues are bf16, so FP8 turns them off) and the blocks' weight gradients added into ``.grad``
        by their matmuls (``kernels/grad_accum.py``: only where ``.grad`` is a persistent buffer nothing
        else hooks)."""
        for i, block in enumerate(self.transformer.h):
            block.recompute = 3 if i < recompute_whole else int(recompute)
            block.mlp.recompute_gelu = block.recompute >= 1
            block.mlp.gelu_fusion = 0 if fp8 else int(gelu_fusion)
            for layer in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                layer.fp8 = int(fp8)
                # not in a block recomputed whole: compiled on CUDA, that recompute would then keep every
                # matmul's input (35,200 against 3,200 bytes per layer and token at d48, BENCHMARKS.md round 15)
                layer.accumulate_grad = bool(accumulate_grads) and block.recompute < 3
        self.classifier_loss = classifier_loss or plain_classifier_loss
        device = self.transformer.wte.weight.device
        if gelu_fusion and not fp8 and device.type == "cuda":
            from gpt2train.kernels import cublaslt

            cublaslt.prepare(device)  # its workspace outside any CUDA-graph pool (--compile-mode reduce-overhead)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- forward ------------------------------------------------------------------------------
    def embed(self, idx: torch.Tensor, pos_offset: int = 0) -> torch.Tensor:
        """Token plus position embeddings (B, T, C) of token ids (B, T) starting at ``pos_offset``."""
        T = idx.shape[1]
        if pos_offset + T > self.config.max_seq_len:
            raise ValueError(f"sequence of {pos_offset + T} tokens exceeds max_seq_len {self.config.max_seq_len}")
        pos = torch.arange(pos_offset, pos_offset + T, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        if torch.is_autocast_enabled(x.device.type):
            # the residual stream in the compute dtype, as llm.c keeps it: half the activation memory and
            # memory traffic of fp32 (LayerNorm still computes in fp32 under autocast)
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return x

    def hidden_states(self, idx: torch.Tensor, pos_offset: int = 0) -> torch.Tensor:
        """Final LayerNorm output (B, T, C) for token ids (B, T)."""
        x = self.embed(idx, pos_offset)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the real (unpadded) vocabulary; the output layer is tied to wte."""
        return F.linear(x, self.transformer.wte.weight)[..., : self.config.vocab_size]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Without targets: logits (B, T, V). With targets: the mean cross-entropy loss (a scalar)."""
        x = self.hidden_states(idx)
        if targets is None:
            return self.logits(x)
        return self.classifier_loss(x, self.transformer.wte.weight, targets, self.config.vocab_size)


def build_model(cfg: ModelConfig, seed: int = 42) -> GPT:
    """A freshly initialised GPT-2 of shape ``cfg`` (fp32, on the CPU)."""
    return init_on_cpu(GPT, cfg, seed)


def init_on_cpu(model_cls: Callable[[ModelConfig], nn.Module], cfg: ModelConfig, seed: int) -> nn.Module:
    """``model_cls(cfg)`` made on the meta device, given CPU memory and initialised by its ``init_weights(seed)``
    alone: PyTorch's default initialisation, which that overwrites, took most of d48's start-up (tens of seconds
    of CPU draws). ``init_weights`` must set every parameter and buffer."""
    with torch.device("meta"):
        model = model_cls(cfg)
    return model.to_empty(device="cpu").init_weights(seed)
