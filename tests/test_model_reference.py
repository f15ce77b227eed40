"""model.py is the reference: its losses are pinned (computed with the code before the redesign, model.py and
model_modern.py at df779a8), for the classic model and for the levers, to a few float32 roundings: the CPU's
matmul kernels differ by machine (AVX2 or AVX-512) in their last bits, while any change to what the model computes
moves these figures by orders of magnitude more."""

from __future__ import annotations

import pytest
import torch

from gpt2train.config import ModelConfig
from gpt2train.model import build_model

SHAPE = dict(n_layer=2, n_head=2, n_embd=64, vocab_size=200, max_seq_len=32)
MODERN = dict(pos="rotary", qk_norm=True, mlp="relu2", norm="rmsnorm", zero_init_proj=True, untied_head=True,
              logit_softcap=15.0)  # fmt: skip
# (levers, loss, sum of the logits) as float.hex() of the values df779a8's model computed on the CPU
PINNED = {
    "classic": ({}, "0x1.5769a60000000p+2", "0x1.23da460000000p+5"),
    "modern": (MODERN, "0x1.5317a20000000p+2", "0x0.0p+0"),
    "modern_nozero": ({**MODERN, "zero_init_proj": False}, "0x1.528a860000000p+2", "0x1.9013840000000p+1"),
    "learned_rms_gelu": (dict(qk_norm=True, norm="rmsnorm", logit_softcap=5.0), "0x1.5824da0000000p+2",
                         "0x1.22425c0000000p+5"),
}  # fmt: skip


@pytest.mark.parametrize("name", PINNED)
def test_loss_equals_the_pre_redesign_models(name):
    levers, loss, logit_sum = PINNED[name]
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 200, (2, 16), generator=g)
    tgt = torch.randint(0, 200, (2, 16), generator=g)
    model = build_model(ModelConfig(**SHAPE, **levers), 42)
    close = dict(rtol=1e-6, atol=1e-6)  # float32 keeps 24 bits: 1e-6 is 8-16 units in the last place
    torch.testing.assert_close(model(idx, tgt).item(), float.fromhex(loss), **close)
    torch.testing.assert_close(model(idx).sum().item(), float.fromhex(logit_sum), **close)


def test_config_dict_is_the_shape_for_classic_and_everything_otherwise():
    from gpt2train.config import model_config_from_dict

    classic = ModelConfig(**SHAPE)
    assert classic.classic and list(classic.to_dict()) == [
        "n_layer", "n_head", "n_embd", "vocab_size", "max_seq_len", "padded_vocab_size"]  # fmt: skip
    modern = ModelConfig(**SHAPE, **MODERN)
    assert not modern.classic and modern.to_dict()["pos"] == "rotary" and len(modern.to_dict()) == 14
    for cfg in (classic, modern):
        assert model_config_from_dict(ModelConfig, cfg.to_dict(), "x") == cfg
    for levers in ({}, MODERN, dict(untied_head=True), dict(pos="rotary")):
        cfg = ModelConfig(**SHAPE, **levers)
        assert cfg.num_parameters() == sum(p.numel() for p in build_model(cfg).parameters()), levers
    assert ModelConfig().num_parameters() == 124475904  # llm.c's d12 count
