"""Text generation: a KV-cached forward over the model's own weights, and sampling.

The cached forward walks the same modules as ``GPT.hidden_states`` (so weights are shared and a
freshly trained model can be sampled mid-run), but per block it computes q, k, v only for the new
tokens, appends k and v to a preallocated cache, and attends from the new positions to every
cached position up to and including their own.

When a sequence outgrows the model's context (``max_seq_len``), generation continues on the last
``max_seq_len`` tokens, recomputing that window every step (position embeddings are absolute, so a
cache cannot slide); cached and uncached generation then agree token for token.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gpt2train.evaluate import unwrap


class KVCache:
    """Per-layer key/value tensors (B, n_head, max_seq_len, head_size) and the filled length."""

    def __init__(self, model, batch: int, device, dtype):
        cfg = model.config
        hs = cfg.n_embd // cfg.n_head
        shape = (batch, cfg.n_head, cfg.max_seq_len, hs)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0


@torch.no_grad()
def cached_forward(model, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits (B, V) of the last position after feeding ``idx`` (B, Tnew) past the cached tokens."""
    m = unwrap(model)
    if hasattr(m, "forward_with_cache"):  # ModernGPT (rotary, QK-norm) brings its own cached forward
        return m.forward_with_cache(idx, cache)
    B, Tn = idx.shape
    P = cache.length
    tr = m.transformer
    x = m.embed(idx, P)
    pos = torch.arange(P, P + Tn, device=idx.device)
    # new query i (absolute position P+i) may see keys 0 .. P+i
    mask = torch.arange(P + Tn, device=idx.device)[None, :] <= pos[:, None]
    for layer, block in enumerate(tr.h):
        attn = block.attn
        C = x.size(-1)
        nh = attn.n_head
        q, k, v = attn.c_attn(block.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, Tn, nh, C // nh).transpose(1, 2) for t in (q, k, v))
        cache.k[layer][:, :, P : P + Tn] = k
        cache.v[layer][:, :, P : P + Tn] = v
        keys, values = cache.k[layer][:, :, : P + Tn], cache.v[layer][:, :, : P + Tn]
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + attn.c_proj(y.transpose(1, 2).contiguous().view(B, Tn, C))
        x = x + block.mlp(block.ln_2(x))
    cache.length = P + Tn
    return m.logits(tr.ln_f(x[:, -1]))


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token ids (B,) from logits (B, V): greedy at temperature 0, else top-k / top-p sampling."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass (keeps >= 1)
        drop = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    if generator is not None and generator.device != probs.device:
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(logits.device)


@torch.no_grad()
def generate(
    model,
    prompt_tokens: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_token: Callable[[int], None] | None = None,
    stop_token: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> list[int]:
    """The ``max_new_tokens`` new tokens (prompt excluded) that follow ``prompt_tokens``.

    ``temperature`` 0 is greedy. ``generator`` (a seeded torch.Generator) makes sampling
    reproducible; ``on_token`` is called with each token as it is chosen (for streaming); generation
    stops early after ``stop_token`` if given; ``autocast_dtype`` (e.g. torch.bfloat16) runs the
    forward under autocast, as the trainer's steps do. The model is put in eval mode and restored after.
    """
    m = unwrap(model)
    if not prompt_tokens:
        raise ValueError("generate needs at least one prompt token (use EOT 50256 for an empty prompt)")
    device = m.transformer.wte.weight.device
    T = m.config.max_seq_len
    was_training = m.training
    m.eval()
    seq = list(prompt_tokens)
    new: list[int] = []
    cache = None
    if use_cache:
        cache = KVCache(m, 1, device, autocast_dtype or m.transformer.wte.weight.dtype)
    pending = seq[-T:]  # tokens not yet fed to the cache
    autocast = (
        torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    )
    try:
        for _ in range(max_new_tokens):
            with autocast:
                if cache is not None and cache.length + len(pending) <= T:
                    logits = cached_forward(m, torch.tensor([pending], device=device), cache)
                else:
                    cache = None  # the context is full: recompute the last T tokens from here on
                    window = torch.tensor([seq[-T:]], device=device)
                    logits = m.logits(m.hidden_states(window)[:, -1])
            tok = int(sample_next(logits, temperature, top_k, top_p, generator)[0])
            seq.append(tok)
            new.append(tok)
            pending = [tok]
            if on_token is not None:
                on_token(tok)
            if stop_token is not None and tok == stop_token:
                break
    finally:
        m.train(was_training)
    return new


class StreamDecoder:
    """Turns tokens into text as they arrive; a character split across tokens is held back until whole."""

    def __init__(self):
        from gpt2train.data.tokenizer import gpt2_encoding

        self._enc = gpt2_encoding()
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        return self._utf8.decode(self._enc.decode_single_token_bytes(int(token)))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)
