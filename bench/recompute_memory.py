"""What each -r level keeps for backward on the GPU: saved activation bytes per layer and token of a d48-wide
model (4 layers, C=1600, bf16 parameters, bf16 autocast), eager and with the blocks compiled as the trainer
compiles them, with and without the blocks' weight gradients added in the matmuls. One line per variant.

    python bench/recompute_memory.py [--layers 4] [--batch 4] [--only COMPILED,ACCUMULATE,R] [--out results.json]
"""

from __future__ import annotations

import argparse
import json

import torch

from gpt2train.config import ModelConfig
from gpt2train.model import GPT
from gpt2train.train.accelerate import FastPaths, accelerate


def saved_bytes(recompute: int, compiled: bool, accumulate: bool, gelu_fusion: int, layers: int, B: int, T: int):
    """(saved activation bytes per layer and token, allocator growth over the forward per layer and token)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=layers, n_head=25, n_embd=1600, vocab_size=50304, max_seq_len=T)
    model = GPT(cfg).to("cuda", torch.bfloat16)
    if accumulate:
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
    # as the trainer applies them: each block compiled
    accelerate(model, FastPaths(recompute=recompute, gelu_fusion=gelu_fusion, accumulate_grads=accumulate,
                                compile=compiled))  # fmt: skip
    idx = torch.randint(0, 50257, (B, T), device="cuda")
    keep = {p.untyped_storage().data_ptr() for p in model.parameters()}
    keep |= {p.grad.untyped_storage().data_ptr() for p in model.parameters() if p.grad is not None}
    storages = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in keep:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    def step(count: bool):
        storages.clear()
        x = model.embed(idx)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        with torch.autocast("cuda", torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            for block in model.transformer.h:
                x = block(x)
        grown = torch.cuda.memory_allocated() - before
        x.float().sum().backward()
        return sum(storages.values()), grown

    step(False)  # compiles (and, with accumulate, sees .grad)
    saved, grown = step(True)
    per = layers * B * T
    return saved / per, grown / per


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--only", default=None, help="one variant, e.g. 1,1,2: compiled, accumulating, -r 2")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    rows = []
    for compiled in (False, True):
        for accumulate in (False, True):
            for r in (0, 1, 2, 3):
                if args.only and [int(v) for v in args.only.split(",")] != [int(compiled), int(accumulate), r]:
                    continue
                ge = 2 if r == 0 else 0
                try:
                    saved, grown = saved_bytes(r, compiled, accumulate, ge, args.layers, args.batch, args.seq)
                    row = dict(compiled=compiled, accumulate=accumulate, recompute=r, gelu_fusion=ge,
                               saved_per_layer_token=saved, grown_per_layer_token=grown)  # fmt: skip
                except Exception as e:  # a failing variant is a finding, not the end of the check
                    row = dict(compiled=compiled, accumulate=accumulate, recompute=r, error=f"{type(e).__name__}: {e}")
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
