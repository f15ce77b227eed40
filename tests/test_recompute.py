"""Activation recomputation (-r 1: GELU, -r 2: also LayerNorm): the same gradients as -r 0, fewer saved bytes,
in eager mode and compiled (the compiler's partitioner picks what to save; it must honour -r)."""

from __future__ import annotations

import pytest
import torch

from gpt2train.config import ModelConfig
from gpt2train.model import GPT

CFG = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)


def _grads_and_saved_bytes(recompute: int, backend: str | None):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = GPT(CFG)
    model.configure_fast_paths(recompute=recompute)
    if backend:
        for block in model.transformer.h:
            block.compile(backend=backend)
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}  # activations only, each storage once (views of one tensor cost its memory once)

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(idx, idx)
    loss.backward()
    return {n: p.grad for n, p in model.named_parameters()}, sum(storages.values())


@pytest.mark.parametrize("backend", [None, "aot_eager_decomp_partition"])
def test_recompute_keeps_gradients_and_saves_less(backend):
    ref, saved0 = _grads_and_saved_bytes(0, backend)
    saved = {0: saved0}
    for r in (1, 2):
        grads, saved[r] = _grads_and_saved_bytes(r, backend)
        for name, g in grads.items():
            torch.testing.assert_close(g, ref[name], rtol=1e-5, atol=1e-6, msg=f"-r {r}: {name}")
    # -r 1 drops GELU's output (4C per token and layer); -r 2 the LayerNorm outputs too
    per_block_gelu = 2 * 32 * 4 * 64 * 4 * CFG.n_layer
    assert saved[1] <= saved[0] - per_block_gelu, saved
    assert saved[2] < saved[1], saved
