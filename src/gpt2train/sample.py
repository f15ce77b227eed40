"""Text generation: sampling from the model's logits, with its KV cache (model.KVCache).

With a cache the model sees each token once: a forward over the new tokens appends their keys and values and
attends to every cached position up to theirs (model.py's attention, the one used for training).

When a sequence outgrows the model's context (``max_seq_len``), generation continues on the last
``max_seq_len`` tokens, recomputing that window every step (a cache cannot slide: learned positions are
absolute); cached and uncached generation then agree token for token.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

import torch

from gpt2train.evaluate import unwrap
from gpt2train.model import KVCache
from gpt2train.precision import autocast


@torch.no_grad()
def cached_forward(model, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits (B, V) of the last position after feeding ``idx`` (B, Tnew) past the cached tokens (the output
    layer runs on that position only: a prompt's prefill needs no logits for the others)."""
    m = unwrap(model)
    return m.logits(m.hidden_states(idx, cache)[:, -1])


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
        cache = KVCache(m.config, 1, device, autocast_dtype or m.transformer.wte.weight.dtype)
    pending = seq[-T:]  # tokens not yet fed to the cache
    # eager even where the trainer compiled the blocks: with a cache each block reads its own place in it (an int),
    # so their one shared graph would recompile per layer (and hit dynamo's limit past 8 layers, with a warning)
    try:
        with torch.compiler.set_stance("force_eager"):
            for _ in range(max_new_tokens):
                with autocast(device, autocast_dtype):
                    if cache is not None and cache.length + len(pending) <= T:
                        logits = cached_forward(m, torch.tensor([pending], device=device), cache)
                    else:
                        cache = None  # the context is full: recompute the last T tokens from here on
                        window = torch.tensor([seq[-T:]], device=device)
                        logits = m.logits(m.hidden_states(window)[:, -1])  # the last position only
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
