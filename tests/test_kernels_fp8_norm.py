"""The LayerNorms inside the FP8 casts of the linears after them (--fp8-norm-cast; kernels/fp8_layernorm.py, wired
by fp8_linear.input_operand and train/accelerate.py's NormInCast): a tiny GPT trains on it as on the unfused path,
evaluation normalizes as the plain model, and where the norms stay plain (kernels/fp8_layernorm.py's own tests
check the kernel and the LayerNorm backward; test_resolve.py the flag's rules)."""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.config import ModelConfig  # noqa: E402
from tests.helpers import tiny_fp8_runs  # noqa: E402


@pytest.mark.parametrize("autocast", [True, False])
def test_norms_in_casts_train_as_unfused(autocast):
    """A tiny GPT with --fp8-norm-cast 1 against 0 (GELU inside the casts, two micro-steps of delayed scaling): the
    same loss and gradients bit for bit (on the CPU the op runs its reference, the unfused arithmetic), but the
    LayerNorms' own weight gradients, the same amax records of the normalized inputs; ln_1 and ln_2 become
    NormInCast, the layers after them carry them, and the block sums the residual stream inside ln_2's pass."""
    on = {"fp8_gelu_cast": True}
    run0, run1 = tiny_fp8_runs([(on, False), ({**on, "fp8_norm_cast": True}, False)], autocast)
    (loss0, grads0, bufs0, model0), (loss1, grads1, bufs1, model1) = run0, run1
    assert torch.equal(loss0, loss1)
    for n, g in grads0.items():
        if ".ln_" in n:  # CPU autocast runs the plain LayerNorm in bf16, its weight gradients too; ours are fp32's
            assert ((grads1[n] - g).norm() / g.norm()).item() < 2e-2, n
        else:  # the residual stream's gradient through the norms' backward is the same bits
            assert torch.equal(grads1[n], g), n
    for n in bufs0:
        if n.endswith("x_history") and ("c_attn" in n or "c_fc" in n):
            torch.testing.assert_close(bufs1[n], bufs0[n], rtol=1e-6, atol=0)
            assert bufs1[n][:2].gt(0).all(), n
    names = {type(b.ln_1).__name__ + "," + type(b.ln_2).__name__ for b in model1.transformer.h}
    assert names == {"NormInCast,NormInCast"} and {type(model0.transformer.h[0].ln_1).__name__} == {"LayerNorm"}
    block = model1.transformer.h[0]
    assert block.attn.c_attn.norm[0] is block.ln_1 and block.mlp.norm[0] is block.ln_2
    assert type(block).__name__ == "NormsInCastsBlock" and type(model0.transformer.h[0]).__name__ == "Block"
    assert not block.attn.c_proj.norm and not model0.transformer.h[0].mlp.norm


def test_norms_in_casts_compiled_as_eager_evaluated_plain_and_undone():
    """Compiled (aot_eager), the fused norms train as eager; without gradients NormInCast normalizes itself, so
    the model's logits equal the plain model's; FastPaths() gives the plain LayerNorms back, the state dict's keys
    unchanged."""
    on = {"fp8_gelu_cast": True, "fp8_norm_cast": True}
    (loss0, grads0, _, _), (loss1, grads1, _, _) = tiny_fp8_runs([(on, False), (on, True)])
    torch.testing.assert_close(loss1, loss0, rtol=1e-3, atol=0)
    for n, g in grads0.items():
        assert ((grads1[n] - g).norm() / g.norm()).item() < 0.2, n  # FP8 rounding amplifies aot_eager's differences
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
    plain, model = build_model(cfg, seed=5), build_model(cfg, seed=5)
    keys = list(model.state_dict())
    accelerate(model, FastPaths(fp8=1, fp8_cast_kernel=1, fp8_delayed=True, fp8_gelu_cast=True, fp8_norm_cast=True))
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(idx)[0], plain(idx)[0])
    accelerate(model, FastPaths())
    assert {type(b.ln_1).__name__ for b in model.transformer.h} == {"LayerNorm"} and list(model.state_dict()) == keys


def test_norms_stay_out_of_recompute_and_the_qkv_gather():
    """-r 2 (which recomputes the norms) keeps the plain LayerNorms; --fp8-qkv-cast keeps ln_1 plain (its gather has
    no norm) and ln_2 still fused."""
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)
    base = dict(fp8=1, fp8_cast_kernel=1, fp8_delayed=True, fp8_gelu_cast=True, fp8_norm_cast=True)
    for fields, want in [({"recompute": 2}, {"LayerNorm"}), ({"fp8_qkv_cast": True}, {"LayerNorm", "NormInCast"})]:
        model = build_model(cfg, seed=5)
        accelerate(model, FastPaths(**{**base, **fields}))
        got = {type(m).__name__ for b in model.transformer.h for m in (b.ln_1, b.ln_2)}
        assert got == want, fields
