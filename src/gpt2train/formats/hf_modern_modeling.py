"""HuggingFace modeling file for gpt2train's modern-recipe GPT (``trust_remote_code=True``).

``gpt2train export --to hf`` copies this file, unchanged, into the exported directory as
``modeling_gpt2train_modern.py``; it imports only torch and transformers, so the directory works
without gpt2train installed. It computes what ``gpt2train.model_modern.ModernGPT`` computes, lever for
lever (see that module for what each config field means); tests/test_modern.py checks the logits.
Generation recomputes the whole context every token (no KV cache: ``use_cache`` is ignored).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast


class Gpt2TrainModernConfig(PretrainedConfig):
    model_type = "gpt2train_modern"

    def __init__(self, n_layer=12, n_head=12, n_embd=768, vocab_size=50257, max_seq_len=1024, padded_vocab_size=50304,
                 pos="rotary", qk_norm=True, mlp="relu2", norm="rmsnorm", zero_init_proj=True, untied_head=True,
                 logit_softcap=15.0, rope_base=10000.0, **kwargs):  # fmt: skip
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.vocab_size, self.max_seq_len, self.padded_vocab_size = vocab_size, max_seq_len, padded_vocab_size
        self.pos, self.qk_norm, self.mlp, self.norm = pos, qk_norm, mlp, norm
        self.zero_init_proj, self.untied_head, self.logit_softcap, self.rope_base = (
            zero_init_proj, untied_head, logit_softcap, rope_base)  # fmt: skip
        kwargs.setdefault("tie_word_embeddings", False)  # a tied head reads wte directly; nothing to tie
        super().__init__(**kwargs)


def _rms(x):
    return F.rms_norm(x, (x.size(-1),), eps=1e-6)


class _RMSNorm(nn.Module):
    def forward(self, x):
        return _rms(x)


def _norm(cfg):
    return nn.LayerNorm(cfg.n_embd) if cfg.norm == "layernorm" else _RMSNorm()


def _rotate(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class _Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        bias = cfg.norm == "layernorm"
        self.cfg = cfg
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=bias)

    def forward(self, x, rope):
        B, T, C = x.shape
        nh = self.cfg.n_head
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        if self.cfg.qk_norm:
            q, k = _rms(q), _rms(k)
        if rope is not None:
            q, k = _rotate(q, *rope), _rotate(k, *rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class _MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        bias = cfg.norm == "layernorm"
        self.relu2 = cfg.mlp == "relu2"
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=bias)

    def forward(self, x):
        h = self.c_fc(x)
        return self.c_proj(F.relu(h).square() if self.relu2 else F.gelu(h, approximate="tanh"))


class _Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn, self.ln_2, self.mlp = _norm(cfg), _Attention(cfg), _norm(cfg), _MLP(cfg)

    def forward(self, x, rope):
        x = x + self.attn(self.ln_1(x), rope)
        return x + self.mlp(self.ln_2(x))


class Gpt2TrainModernForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = Gpt2TrainModernConfig
    base_model_prefix = "transformer"
    _supports_cache_class = False

    def __init__(self, config):
        super().__init__(config)
        parts = dict(wte=nn.Embedding(config.padded_vocab_size, config.n_embd))
        if config.pos == "learned":
            parts["wpe"] = nn.Embedding(config.max_seq_len, config.n_embd)
        parts["h"] = nn.ModuleList([_Block(config) for _ in range(config.n_layer)])
        parts["ln_f"] = _norm(config)
        self.transformer = nn.ModuleDict(parts)
        if config.untied_head:
            self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module):  # weights always come from the file
        pass

    def get_input_embeddings(self):
        return self.transformer.wte

    def _rope(self, T, device):
        if self.config.pos != "rotary":
            return None
        hs = self.config.n_embd // self.config.n_head
        inv_freq = self.config.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float32, device=device) / hs)
        angles = torch.outer(torch.arange(T, dtype=torch.float32, device=device), inv_freq)
        return angles.cos(), angles.sin()

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids}

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        cfg = self.config
        T = input_ids.shape[1]
        x = self.transformer.wte(input_ids)
        if cfg.norm == "rmsnorm":
            x = _rms(x)
        if cfg.pos == "learned":
            x = x + self.transformer.wpe(torch.arange(T, device=input_ids.device))
        rope = self._rope(T, input_ids.device)
        if rope is not None:
            rope = tuple(t.to(x.dtype) for t in rope)
        for block in self.transformer.h:
            x = block(x, rope)
        x = self.transformer.ln_f(x)
        head = self.lm_head.weight if cfg.untied_head else self.transformer.wte.weight
        logits = F.linear(x, head)[..., : cfg.vocab_size].float()
        if cfg.logit_softcap:
            logits = cfg.logit_softcap * torch.tanh(logits / cfg.logit_softcap)
        loss = None
        if labels is not None:  # labels are the inputs: shift by one, as HF's causal LMs do
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)  # fmt: skip
        return CausalLMOutputWithPast(loss=loss, logits=logits)


__all__ = ["Gpt2TrainModernConfig", "Gpt2TrainModernForCausalLM"]
