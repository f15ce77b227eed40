"""Text generation from a GPT (placeholder until the KV-cache sampler lands)."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate(model, prompt_tokens, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             generator=None, use_cache=True) -> list[int]:  # fmt: skip
    """Sample ``max_new_tokens`` tokens after ``prompt_tokens``; returns only the new tokens."""
    device = next(model.parameters()).device
    tokens = list(prompt_tokens)
    for _ in range(max_new_tokens):
        ctx = torch.tensor([tokens[-model.config.max_seq_len :]], device=device)
        logits = model(ctx)[0, -1].float() / max(temperature, 1e-6)
        if top_k:
            kth = torch.topk(logits, top_k).values[-1]
            logits[logits < kth] = -float("inf")
        probs = torch.softmax(logits, dim=-1).cpu()
        tokens.append(int(torch.multinomial(probs, 1, generator=generator)))
    return tokens[len(prompt_tokens) :]
