"""GPT-2 as llm.c trains it, and the modern recipe's architecture levers, in plain PyTorch, read top to bottom.

With every lever at its default (``ModelConfig.classic``) this is llm.c's GPT-2: a pre-LayerNorm transformer
with learned position embeddings, GELU (tanh), biases everywhere, the token embedding tied to the output
layer, and the vocabulary padded (50257 -> 50304) so that matrix shapes are friendly; padded rows are never
predicted (the loss and the logits see only ``vocab_size`` columns). Initialisation is llm.c's: N(0, 0.02),
residual projections scaled by 1/sqrt(2L), biases zero, LayerNorm weights one.

The levers (ModelConfig's fields, set by ``gpt2train.recipe``), each switchable on its own, so an ablation
"classic + one lever" changes exactly one thing (parameter names and init draws stay the same):

- ``pos="rotary"``: no position table; queries and keys are rotated by position (RoPE, base ``rope_base``,
  the first and second halves of each head form the rotated pairs).
- ``qk_norm=True``: queries and keys are RMS-normalised per head before attention (no gains).
- ``mlp="relu2"``: the MLP activation is relu(x)**2 instead of GELU.
- ``norm="rmsnorm"``: parameter-free RMSNorm everywhere, linears without biases, and the token embedding
  normalised right after the lookup.
- ``zero_init_proj=True``: the attention and MLP output projections (and an untied head) start at zero, so
  every block starts as the identity.
- ``untied_head=True``: the output layer ``lm_head`` is its own matrix; with ``norm="rmsnorm"`` the token
  embedding is drawn from N(0, 1) (it is normalised anyway, and the embedding lr assumes it).
- ``logit_softcap=c > 0``: logits are squashed to (-c, c) by c * tanh(logits / c).

Fast paths (the fused classifier, activation recomputation, GELU in the matmul epilogues, FP8 matmuls,
gradients summed by the matmuls, torch.compile) are applied from outside by ``train/accelerate.py``, which
swaps modules and keeps every parameter; this file is the reference they are tested against.

It imports only torch (the reference loss comes from gpt2train.kernels when that is installed), so the
HuggingFace export ships this file itself as the exported model's code (formats/hf_modern.py).
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

try:
    from gpt2train.kernels.fused_classifier import plain_classifier_loss
except ImportError:  # shipped alone in a HuggingFace export, whose wrapper computes the loss from the logits
    plain_classifier_loss = None


# -- building blocks --------------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),), eps=1e-6)


class RMSNorm(nn.Module):
    """Parameter-free RMSNorm over the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x)


def make_norm(cfg) -> nn.Module:
    return nn.LayerNorm(cfg.n_embd) if cfg.norm == "layernorm" else RMSNorm()


def gelu(h: torch.Tensor) -> torch.Tensor:
    return F.gelu(h, approximate="tanh")


def relu2(h: torch.Tensor) -> torch.Tensor:
    return F.relu(h).square()


ACTIVATIONS = {"gelu": gelu, "relu2": relu2}


def rotary_tables(cfg, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (max_seq_len, head_size / 2): angle p * base**(-2i / head_size)."""
    hs = cfg.n_embd // cfg.n_head
    inv_freq = cfg.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float32, device=device) / hs)
    angles = torch.outer(torch.arange(cfg.max_seq_len, dtype=torch.float32, device=device), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, nh, T, hs) by position: pairs are (x[..., i], x[..., i + hs/2]); cos/sin are (T, hs/2)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class KVCache:
    """Keys and values of the tokens fed so far, per layer (B, n_head, max_seq_len, head_size), for generation:
    each forward appends its new tokens' keys and values, and its queries attend to every cached position up to
    their own. ``length`` is how many positions are filled (the model advances it)."""

    def __init__(self, cfg, batch: int, device, dtype):
        shape = (batch, cfg.n_head, cfg.max_seq_len, cfg.n_embd // cfg.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys and values (B, nh, T, hs) of ``layer``; return all of its keys and values so far."""
        P, T = self.length, k.size(2)
        self.k[layer][:, :, P : P + T] = k
        self.v[layer][:, :, P : P + T] = v
        return self.k[layer][:, :, : P + T], self.v[layer][:, :, : P + T]


# -- the transformer --------------------------------------------------------------------------------------------


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg, layer: int = 0):
        super().__init__()
        self.n_head = cfg.n_head
        self.qk_norm = cfg.qk_norm
        self.layer = layer  # its place in a KVCache
        # one fused q|k|v matrix (llm.c's qkvw / qkvb; Muon orthogonalises its three blocks separately)
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)  # attprojw / attprojb

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k and v, each (B, n_head, T, head_dim), from one matmul."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        return tuple(t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: torch.Tensor, rope: tuple | None = None, kv_cache: KVCache | None = None) -> torch.Tensor:
        """``rope``: (cos, sin) of x's positions with rotary embeddings, else None."""
        B, T, C = x.shape
        q, k, v = self.qkv(x)
        if self.qk_norm:
            q, k = rms_norm(q), rms_norm(k)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if kv_cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # new query i (absolute position P+i) sees keys 0 .. P+i
            P = kv_cache.length
            k, v = kv_cache.append(self.layer, k, v)
            mask = torch.arange(P + T, device=x.device)[None, :] <= torch.arange(P, P + T, device=x.device)[:, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)  # fcw / fcb
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)  # fcprojw / fcprojb
        self.activation = ACTIVATIONS[cfg.mlp]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.activation(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg, layer: int = 0):
        super().__init__()
        self.ln_1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, layer)
        self.ln_2 = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, rope: tuple | None = None, kv_cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rope, kv_cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        parts = dict(wte=nn.Embedding(cfg.padded_vocab_size, cfg.n_embd))
        if cfg.pos == "learned":
            parts["wpe"] = nn.Embedding(cfg.max_seq_len, cfg.n_embd)
        parts["h"] = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)])
        parts["ln_f"] = make_norm(cfg)
        self.transformer = nn.ModuleDict(parts)
        if cfg.untied_head:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab_size, bias=False)
        if cfg.pos == "rotary":  # not in the state dict: init_weights computes them
            cos, sin = rotary_tables(cfg)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        # the output layer + mean cross-entropy; train/accelerate.py may swap in the fused one (kernels/)
        self.classifier_loss: Callable | None = plain_classifier_loss

    @torch.no_grad()
    def init_weights(self, seed: int = 42) -> GPT:
        """llm.c's initialisation (each weight its own draw, seeded by ``seed`` and its name), then the levers'
        changes: zero output projections, and an N(0, 1) embedding when it is untied and normalised."""
        cfg = self.config

        def std_of(name: str, std: float) -> float:
            if cfg.zero_init_proj and (name.endswith("c_proj.weight") or name == "lm_head.weight"):
                return 0.0  # the block (or head) starts as a no-op; the optimizer moves it on step 0
            return cfg.embed_std if name == "transformer.wte.weight" else std

        init_llmc_(self, seed, std_of)
        self.init_rotary()
        return self

    @torch.no_grad()
    def init_rotary(self) -> None:
        """Fill the rotary tables (build_model leaves buffers empty; they are not in the state dict)."""
        if self.config.pos == "rotary":
            cos, sin = rotary_tables(self.config)
            self.rope_cos.copy_(cos)
            self.rope_sin.copy_(sin)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def head_weight(self) -> torch.Tensor:
        """The output layer: lm_head when untied, else the token embedding."""
        return self.lm_head.weight if self.config.untied_head else self.transformer.wte.weight

    # -- forward --------------------------------------------------------------------------------------------
    def embed(self, idx: torch.Tensor, pos_offset: int = 0) -> torch.Tensor:
        """The residual stream (B, T, C) of token ids (B, T) at positions ``pos_offset`` onwards."""
        T = idx.shape[1]
        if pos_offset + T > self.config.max_seq_len:
            raise ValueError(f"sequence of {pos_offset + T} tokens exceeds max_seq_len {self.config.max_seq_len}")
        pos = torch.arange(pos_offset, pos_offset + T, device=idx.device)
        x = self.transformer.wte(idx)
        if self.config.norm == "rmsnorm":
            x = rms_norm(x)
        if self.config.pos == "learned":
            x = x + self.transformer.wpe(pos)
        if torch.is_autocast_enabled(x.device.type):
            # the residual stream in the compute dtype, as llm.c keeps it: half the activation memory and
            # memory traffic of fp32 (the norms still compute in fp32 under autocast)
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return x

    def hidden_states(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Final norm output (B, T, C) for token ids (B, T). With a ``kv_cache``, ``idx`` continues the tokens
        cached so far: their keys and values are appended to it, and its length advances past them."""
        pos_offset = 0 if kv_cache is None else kv_cache.length
        x = self.embed(idx, pos_offset)
        rope = None
        if self.config.pos == "rotary":
            end = pos_offset + idx.shape[1]
            rope = self.rope_cos[pos_offset:end], self.rope_sin[pos_offset:end]
        for block in self.transformer.h:
            x = block(x, rope, kv_cache)
        if kv_cache is not None:
            kv_cache.length += idx.shape[1]
        return self.transformer.ln_f(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the real (unpadded) vocabulary, soft-capped when the config says so."""
        logits = F.linear(x, self.head_weight)[..., : self.config.vocab_size]
        c = self.config.logit_softcap
        return c * torch.tanh(logits / c) if c else logits

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache: KVCache | None = None):
        """Without targets: logits (B, T, V). With targets: the mean cross-entropy loss (a scalar). With a
        ``kv_cache``, ``idx`` continues the tokens cached so far (their keys and values are appended to it)."""
        x = self.hidden_states(idx, kv_cache)
        if targets is None:
            return self.logits(x)
        return self.classifier_loss(x, self.head_weight, targets, self.config.vocab_size,
                                    softcap=self.config.logit_softcap)  # fmt: skip


# -- initialisation ---------------------------------------------------------------------------------------------


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
        if p.device.type == "cpu" and p.dtype == torch.float32:  # straight in: no second buffer of its size
            torch.randn(p.shape, generator=gen, out=p.detach()).mul_(std)
        else:  # drawn in fp32 on the CPU, so every device and dtype gets the same values, rounded to p's dtype on
            # the CPU (round-to-nearest-even, as on a GPU) so that a bf16 model copies half the bytes over
            p.detach().copy_(torch.randn(p.shape, generator=gen).mul_(std).to(p.dtype))  # (grad mode is per thread)

    with ThreadPoolExecutor(max_workers=max(1, min(len(draws), os.cpu_count() or 1))) as pool:
        list(pool.map(draw, draws))
    return model


def param_seed(seed: int, name: str) -> int:
    """The seed of parameter ``name``'s initial draw: 64 bits of sha256 of ``seed`` and the name."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little")


def build_model(cfg, seed: int = 42, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> GPT:
    """A freshly initialised GPT of config ``cfg``, its parameters ``dtype`` on ``device``: the same values as the
    fp32 CPU model cast and moved there. On a GPU each weight goes there as it is drawn, with no whole fp32 copy of
    the model on the CPU."""
    return empty_model(cfg, device, dtype).init_weights(seed)


def empty_model(cfg, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> GPT:
    """A GPT of config ``cfg`` whose parameters (``dtype`` on ``device``) hold whatever their memory held, for
    ``init_weights`` to fill: made on the meta device and given memory without PyTorch's default initialisation,
    which ``init_weights`` overwrites anyway (it took most of d48's start-up: tens of seconds of CPU draws)."""
    with torch.device("meta"):
        model = GPT(cfg)
    return model.to(dtype).to_empty(device=device)
