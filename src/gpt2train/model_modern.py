"""GPT-2 with the modern recipe's architecture levers, each switchable on its own.

``ModernConfig`` is a ``ModelConfig`` plus one field per lever; with every lever at its classic
value the model computes what ``model.GPT`` computes (same parameter names and shapes, same
init draws), so an ablation "classic + one lever" changes exactly one thing. The levers:

- ``pos="rotary"``: no position table; queries and keys are rotated by position (RoPE, base 10000,
  the first and second halves of each head form the rotated pairs).
- ``qk_norm=True``: queries and keys are RMS-normalised per head before attention (no gains).
- ``mlp="relu2"``: the MLP activation is relu(x)**2 instead of GELU.
- ``norm="rmsnorm"``: parameter-free RMSNorm everywhere, linears without biases, and the token
  embedding normalised right after the lookup.
- ``zero_init_proj=True``: the attention and MLP output projections (and an untied head) start at zero,
  so every block starts as the identity.
- ``untied_head=True``: the output layer ``lm_head`` is its own matrix; with ``norm="rmsnorm"`` the
  token embedding is drawn from N(0, 1) (it is normalised anyway, and the embedding lr assumes it).
- ``logit_softcap=c > 0``: logits are squashed to (-c, c) by c * tanh(logits / c).

The model file is safetensors with the config as JSON in its metadata (``save_modern_model``);
llm.c's .bin cannot hold these architectures.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2train.config import ModelConfig
from gpt2train.errors import UserError
from gpt2train.model import GPT, init_llmc_, init_on_cpu, plain_classifier_loss

MODERN_FORMAT = "gpt2train-modern"  # the safetensors metadata "format" of a modern model file


@dataclass
class ModernConfig(ModelConfig):
    """A GPT-2 shape plus the architecture levers; the defaults are the classic (llm.c) values."""

    pos: str = "learned"  # learned | rotary
    qk_norm: bool = False
    mlp: str = "gelu"  # gelu | relu2
    norm: str = "layernorm"  # layernorm | rmsnorm (parameter-free, and no biases)
    zero_init_proj: bool = False
    untied_head: bool = False
    logit_softcap: float = 0.0  # 0: off
    rope_base: float = 10000.0

    def __post_init__(self):
        super().__post_init__()
        for name, value, allowed in (("--pos", self.pos, ("learned", "rotary")), ("--mlp", self.mlp, ("gelu", "relu2")),
                                     ("--norm", self.norm, ("layernorm", "rmsnorm"))):  # fmt: skip
            if value not in allowed:
                raise UserError(f"{name} {value!r}: use one of {', '.join(allowed)}")
        if self.pos == "rotary" and (self.n_embd // self.n_head) % 2:
            raise UserError(f"--pos rotary needs an even head size, not {self.n_embd // self.n_head}")
        if self.logit_softcap < 0:
            raise UserError(f"--logit-softcap {self.logit_softcap} must be >= 0")
        if not self.rope_base > 0:
            raise UserError(f"rope_base {self.rope_base} must be > 0")

    @property
    def bias(self) -> bool:
        return self.norm == "layernorm"

    @property
    def embed_std(self) -> float:
        """Init std of wte: N(0, 1) only when it is untied and normalised after the lookup."""
        return 1.0 if self.untied_head and self.norm == "rmsnorm" else 0.02

    def num_parameters(self) -> int:
        C, L, Vp = self.n_embd, self.n_layer, self.padded_vocab_size
        b = 1 if self.bias else 0
        norms = 2 * C if self.norm == "layernorm" else 0
        per_layer = (
            2 * norms + (3 * C * C + 3 * C * b) + (C * C + C * b) + (4 * C * C + 4 * C * b) + (4 * C * C + C * b)
        )
        n = Vp * C + L * per_layer + norms
        n += self.max_seq_len * C if self.pos == "learned" else 0
        n += Vp * C if self.untied_head else 0
        return n


def is_modern(cfg: ModelConfig) -> bool:
    return isinstance(cfg, ModernConfig)


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),), eps=1e-6)


class RMSNorm(nn.Module):
    """Parameter-free RMSNorm over the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x)


def make_norm(cfg: ModernConfig) -> nn.Module:
    return nn.LayerNorm(cfg.n_embd) if cfg.norm == "layernorm" else RMSNorm()


def rotary_tables(cfg: ModernConfig, device=None) -> tuple[torch.Tensor, torch.Tensor]:
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


class ModernAttention(nn.Module):
    def __init__(self, cfg: ModernConfig):
        super().__init__()
        self.cfg = cfg
        self.n_head = cfg.n_head
        # one fused q|k|v matrix as in GPT (Muon orthogonalises its three blocks separately)
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def qkv(self, x: torch.Tensor, rope: tuple | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as (B, nh, T, hs), with QK-norm and rotary applied; ``rope`` is (cos, sin) for x's positions."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.cfg.qk_norm:
            q, k = rms_norm(q), rms_norm(k)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        return q, k, v

    def forward(self, x: torch.Tensor, rope: tuple | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x, rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class ModernMLP(nn.Module):
    def __init__(self, cfg: ModernConfig):
        super().__init__()
        self.relu2 = cfg.mlp == "relu2"
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        h = F.relu(h).square() if self.relu2 else F.gelu(h, approximate="tanh")
        return self.c_proj(h)


class ModernBlock(nn.Module):
    def __init__(self, cfg: ModernConfig):
        super().__init__()
        self.ln_1 = make_norm(cfg)
        self.attn = ModernAttention(cfg)
        self.ln_2 = make_norm(cfg)
        self.mlp = ModernMLP(cfg)

    def forward(self, x: torch.Tensor, rope: tuple | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rope)
        return x + self.mlp(self.ln_2(x))


class ModernGPT(nn.Module):
    """Same interface as ``model.GPT``: forward(idx, targets), hidden_states, logits, configure_fast_paths."""

    def __init__(self, cfg: ModernConfig):
        super().__init__()
        self.config = cfg
        parts = dict(wte=nn.Embedding(cfg.padded_vocab_size, cfg.n_embd))
        if cfg.pos == "learned":
            parts["wpe"] = nn.Embedding(cfg.max_seq_len, cfg.n_embd)
        parts["h"] = nn.ModuleList([ModernBlock(cfg) for _ in range(cfg.n_layer)])
        parts["ln_f"] = make_norm(cfg)
        self.transformer = nn.ModuleDict(parts)
        if cfg.untied_head:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab_size, bias=False)
        if cfg.pos == "rotary":
            cos, sin = rotary_tables(cfg)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.configure_fast_paths()

    @torch.no_grad()
    def init_weights(self, seed: int = 42) -> ModernGPT:
        """GPT's initialisation (the same draw for each weight of the same name), then the levers' changes."""
        cfg = self.config

        def std_of(name: str, std: float) -> float:
            if cfg.zero_init_proj and (name.endswith("c_proj.weight") or name == "lm_head.weight"):
                return 0.0  # the block (or head) starts as a no-op; Muon/Adam move it on step 0
            return cfg.embed_std if name == "transformer.wte.weight" else std

        init_llmc_(self, seed, std_of)
        if cfg.pos == "rotary":  # init_on_cpu leaves the buffers empty
            cos, sin = rotary_tables(cfg)
            self.rope_cos.copy_(cos)
            self.rope_sin.copy_(sin)
        return self

    def configure_fast_paths(self, recompute: int = 0, classifier_loss=None, gelu_fusion: int = 0,
                             fp8: bool = False, accumulate_grads: bool = False, recompute_whole: int = 0) -> None:  # fmt: skip
        """The classifier implementation (it applies the soft-cap itself); recompute, recompute_whole, gelu_fusion
        and accumulate_grads are not implemented (the MLP may be relu2) and are ignored; FP8 is not
        implemented either."""
        if fp8:
            raise ValueError("FP8 matmuls are implemented for the GPT-2 architecture (model.GPT) only")
        loss = classifier_loss or plain_classifier_loss
        c = self.config.logit_softcap
        self.classifier_loss = functools.partial(loss, softcap=c) if c else loss

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def head_weight(self) -> torch.Tensor:
        return self.lm_head.weight if self.config.untied_head else self.transformer.wte.weight

    def rope(self, start: int, end: int) -> tuple | None:
        if self.config.pos != "rotary":
            return None
        return self.rope_cos[start:end], self.rope_sin[start:end]

    def embed(self, idx: torch.Tensor, pos_offset: int = 0) -> torch.Tensor:
        x = self.transformer.wte(idx)
        if self.config.norm == "rmsnorm":
            x = rms_norm(x)
        if self.config.pos == "learned":
            x = x + self.transformer.wpe(torch.arange(pos_offset, pos_offset + idx.shape[1], device=idx.device))
        if torch.is_autocast_enabled(x.device.type):  # the residual stream in the compute dtype, as GPT.embed
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return x

    def hidden_states(self, idx: torch.Tensor, pos_offset: int = 0) -> torch.Tensor:
        """Final norm output (B, T, C) for token ids (B, T)."""
        T = idx.shape[1]
        if pos_offset + T > self.config.max_seq_len:
            raise ValueError(f"sequence of {pos_offset + T} tokens exceeds max_seq_len {self.config.max_seq_len}")
        x = self.embed(idx, pos_offset)
        rope = self.rope(pos_offset, pos_offset + T)
        for block in self.transformer.h:
            x = block(x, rope)
        return self.transformer.ln_f(x)

    def softcap(self, logits: torch.Tensor) -> torch.Tensor:
        c = self.config.logit_softcap
        return c * torch.tanh(logits / c) if c else logits

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the real (unpadded) vocabulary."""
        return self.softcap(F.linear(x, self.head_weight)[..., : self.config.vocab_size])

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Without targets: logits (B, T, V). With targets: the mean cross-entropy loss (a scalar)."""
        x = self.hidden_states(idx)
        if targets is None:
            return self.logits(x)
        return self.classifier_loss(x, self.head_weight, targets, self.config.vocab_size)

    @torch.no_grad()
    def forward_with_cache(self, idx: torch.Tensor, cache) -> torch.Tensor:
        """Logits (B, V) of the last position after feeding ``idx`` (B, Tnew) past ``cache`` (sample.KVCache)."""
        B, Tn = idx.shape
        P = cache.length
        if P + Tn > self.config.max_seq_len:
            raise ValueError(f"cache of {P} + {Tn} tokens exceeds max_seq_len {self.config.max_seq_len}")
        x = self.embed(idx, P)
        rope = self.rope(P, P + Tn)
        mask = torch.arange(P + Tn, device=idx.device)[None, :] <= torch.arange(P, P + Tn, device=idx.device)[:, None]
        for layer, block in enumerate(self.transformer.h):
            C = x.size(-1)
            q, k, v = block.attn.qkv(block.ln_1(x), rope)
            cache.k[layer][:, :, P : P + Tn] = k
            cache.v[layer][:, :, P : P + Tn] = v
            keys, values = cache.k[layer][:, :, : P + Tn], cache.v[layer][:, :, : P + Tn]
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            x = x + block.attn.c_proj(y.transpose(1, 2).contiguous().view(B, Tn, C))
            x = x + block.mlp(block.ln_2(x))
        cache.length = P + Tn
        return self.logits(self.transformer.ln_f(x[:, -1]))


# -- one entry point for both architectures ---------------------------------------------------------


def model_for(cfg: ModelConfig) -> nn.Module:
    """An uninitialised GPT or ModernGPT for ``cfg``."""
    return ModernGPT(cfg) if is_modern(cfg) else GPT(cfg)


def build_any_model(cfg: ModelConfig, seed: int = 42) -> nn.Module:
    """A freshly initialised model of either architecture (fp32, on the CPU)."""
    return init_on_cpu(model_for, cfg, seed)


# -- model file: safetensors, the config as JSON in the metadata ------------------------------------


def save_modern_model(path: str | os.PathLike, state_dict: dict, cfg: ModernConfig, dtype: str = "fp32",
                      on_written=None) -> None:  # fmt: skip
    """Write a modern model file atomically: tensors in ``dtype`` (fp32 | bf16), metadata
    ``{"format": "gpt2train-modern", "config": <ModernConfig as JSON>}``."""
    from safetensors.torch import save_file

    if dtype not in ("fp32", "bf16"):
        raise UserError(f"model file dtype must be fp32 or bf16, not {dtype!r}")
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    tensors = {k: v.detach().to("cpu", torch_dtype).contiguous() for k, v in state_dict.items()}
    tmp = str(path) + ".tmp"
    save_file(tensors, tmp, metadata={"format": MODERN_FORMAT, "config": json.dumps(cfg.to_dict())})
    if on_written is not None:
        on_written(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def modern_tensor_shapes(cfg: ModernConfig) -> dict[str, tuple[int, ...]]:
    """{name: shape} of a ModernGPT's state dict, from a model made on the meta device (no memory)."""
    with torch.device("meta"):
        model = ModernGPT(cfg)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_modern_weights(path: str | os.PathLike, cfg: ModernConfig, source: str) -> None:
    """The safetensors file ``path`` holds exactly ``cfg``'s tensors (checked from its header, before any
    tensor is read): a config claiming more layers than the file holds is a UserError naming ``source``."""
    from gpt2train.formats.tensor_header import check_shapes, check_size_for, safetensors_shapes

    check_size_for(cfg.num_parameters(), os.path.getsize(path), source)
    check_shapes(safetensors_shapes(path), modern_tensor_shapes(cfg), source)


def read_modern_header(path: str | os.PathLike) -> ModernConfig:
    """The config of a modern model file, checked against the tensors its header lists (reads only the
    header); a UserError if it is not one, or if the config and the tensors disagree."""
    from safetensors import SafetensorError, safe_open

    from gpt2train.config import model_config_from_dict

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise UserError(f"model file {path} is unreadable or corrupt ({e})") from None
    if meta.get("format") != MODERN_FORMAT or "config" not in meta:
        raise UserError(f"{path} is a safetensors file but not a gpt2train modern model (no {MODERN_FORMAT} config)")
    try:
        fields = json.loads(meta["config"])
    except (ValueError, RecursionError) as e:
        raise UserError(f"{path}: the config in the file is not valid JSON ({e}); re-create the file") from None
    cfg = model_config_from_dict(ModernConfig, fields, str(path))
    check_modern_weights(path, cfg, str(path))
    return cfg


def read_modern_model(path: str | os.PathLike) -> tuple[ModernConfig, dict[str, torch.Tensor]]:
    """(config, fp32 state dict) of a modern model file. Loads no code: safetensors and JSON only."""
    from safetensors.torch import load_file

    cfg = read_modern_header(path)
    return cfg, {k: v.float() for k, v in load_file(str(path)).items()}
