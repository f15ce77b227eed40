"""Validation loss and HellaSwag: llm.c's definitions, checked against independent computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpt2train.config import ModelConfig
from gpt2train.data.hellaswag import load_examples
from gpt2train.errors import UserError
from gpt2train.evaluate import hellaswag_eval, load_model, val_loss
from gpt2train.formats.llmc_model import write_llmc_model
from gpt2train.formats.shards import write_shard
from gpt2train.model import build_model

N_EXAMPLES = 24


@pytest.fixture(scope="module")
def sharp_model():
    """A tiny random model with the real vocabulary, its weights scaled up so that the four endings'
    losses are far apart (a 0.02-std model scores every ending nearly alike, so ties would decide)."""
    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=128)
    model = build_model(cfg, seed=7)
    with torch.no_grad():
        model.transformer.wte.weight.mul_(20)
        model.transformer.wpe.weight.mul_(5)
    return model.eval()


def _reference_hellaswag(hf_model, tokenizer, examples):
    """llm.c's per-example scoring, written out again over transformers' model and tokenizer."""
    preds, preds_norm = [], []
    for ex in examples:
        ctx = tokenizer.encode(ex.ctx)
        rows = [ctx + tokenizer.encode(" " + e) for e in ex.endings]
        L = max(len(r) for r in rows)
        tokens = torch.zeros(4, L, dtype=torch.long)
        mask = torch.zeros(4, L)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = torch.tensor(r)
            mask[i, len(ctx) : len(r)] = 1
        # only the positions that predict ending tokens go through the output layer (this CPU is slow)
        sel = mask[:, 1:].bool()
        with torch.no_grad():
            hidden = hf_model.transformer(tokens).last_hidden_state[:, :-1][sel]
            logits = hf_model.lm_head(hidden)
        losses = torch.zeros(4, L - 1)
        losses[sel] = F.cross_entropy(logits, tokens[:, 1:][sel], reduction="none")
        total = losses.sum(1)
        preds.append(int(total.argmin()))
        preds_norm.append(int((total / mask[:, 1:].sum(1)).argmin()))
    return preds, preds_norm


def test_hellaswag_matches_transformers_reference(sharp_model, hellaswag_jsonl, tmp_path):
    transformers = pytest.importorskip("transformers")
    from gpt2train.formats.hf import write_hf_dir

    examples = load_examples(hellaswag_jsonl)[:N_EXAMPLES]
    write_hf_dir(tmp_path, sharp_model.config, sharp_model.state_dict())
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    ref_pred, ref_norm = _reference_hellaswag(hf, tok, examples)
    labels = [ex.label for ex in examples]

    # examples of different lengths share padded batches of 16 rows
    got = hellaswag_eval(sharp_model, examples, "cpu", batch_rows=16, return_predictions=True)
    assert got["pred"] == ref_pred
    assert got["pred_norm"] == ref_norm
    assert got["examples"] == N_EXAMPLES
    assert got["correct"] == sum(p == y for p, y in zip(ref_pred, labels))
    assert got["correct_norm"] == sum(p == y for p, y in zip(ref_norm, labels))
    assert got["acc"] == got["correct"] / N_EXAMPLES
    assert got["acc_norm"] == got["correct_norm"] / N_EXAMPLES
    assert 0 <= got["acc_charnorm"] <= 1
    assert len(set(ref_pred)) > 1  # the model really discriminates between endings
    # one example per batch (no padding) predicts the same
    few = hellaswag_eval(sharp_model, examples[:6], "cpu", batch_rows=4, return_predictions=True)
    assert few["pred"] == ref_pred[:6] and few["pred_norm"] == ref_norm[:6]


def test_hellaswag_restores_training_mode(sharp_model, hellaswag_jsonl):
    examples = load_examples(hellaswag_jsonl)[:4]
    sharp_model.train()
    hellaswag_eval(sharp_model, examples, "cpu")
    assert sharp_model.training
    sharp_model.eval()


def _write_jsonl(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_hellaswag_bad_files_are_user_errors(tmp_path):
    good = {"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 1}
    missing = {k: v for k, v in good.items() if k != "label"}
    with pytest.raises(UserError, match=r"bad\.jsonl:2: HellaSwag example has no 'label' field"):
        load_examples(_write_jsonl(tmp_path / "bad.jsonl", [good, missing]))
    three = dict(good, endings=["a", "b", "c"])
    with pytest.raises(UserError, match="3 endings, expected 4"):
        load_examples(_write_jsonl(tmp_path / "three.jsonl", [three]))


def test_val_loss_follows_llmc_batches(tmp_path):
    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=32)
    model = build_model(cfg, seed=1).eval()
    rng = np.random.default_rng(0)
    B, T = 2, 16
    a = rng.integers(0, 50257, 3 * B * T + 5)  # 3 batches, the tail unused
    b = rng.integers(0, 50257, B * T + 1)  # exactly one batch
    write_shard(tmp_path / "val_000.bin", a)
    write_shard(tmp_path / "val_001.bin", b)

    def ref(tokens):
        x = torch.tensor(tokens[:-1], dtype=torch.long).view(B, T)
        y = torch.tensor(tokens[1:], dtype=torch.long).view(B, T)
        with torch.no_grad():
            return model(x, y).item()

    expected = [ref(a[k * B * T : k * B * T + B * T + 1]) for k in range(3)] + [ref(b)]
    got = val_loss(model, str(tmp_path / "val_*.bin"), B, T, -1, "cpu")
    assert got["batches"] == 4 and got["tokens"] == 4 * B * T
    assert math.isclose(got["val_loss"], sum(expected) / 4, rel_tol=1e-5)
    # bits per byte: the same nats over the UTF-8 bytes of the target tokens
    from gpt2train.data.tokenizer import gpt2_encoding

    enc = gpt2_encoding()
    nbytes = sum(len(enc.decode_single_token_bytes(int(t))) for t in list(a[1 : 3 * B * T + 1]) + list(b[1:]))
    assert math.isclose(got["bits_per_byte"], sum(expected) * B * T / math.log(2) / nbytes, rel_tol=1e-5)
    # -m clamps with one warning
    warnings = []
    got2 = val_loss(model, str(tmp_path / "val_*.bin"), B, T, 2, "cpu")
    assert got2["batches"] == 2 and math.isclose(got2["val_loss"], sum(expected[:2]) / 2, rel_tol=1e-5)
    got3 = val_loss(model, str(tmp_path / "val_*.bin"), B, T, 99, "cpu", warn=warnings.append)
    assert got3["batches"] == 4 and len(warnings) == 1 and "-m 99" in warnings[0]


def test_mean_val_loss_is_the_trainers_figure(tmp_path):
    """mean_val_loss (the trainer's val loss) is the mean of model(x, y) over the loader's batches, the same
    figure as eval's val_loss; the model's train/eval mode is left as it was."""
    from gpt2train.data.loader import ValLoader
    from gpt2train.evaluate import mean_val_loss

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=32)
    model = build_model(cfg, seed=3).train()
    write_shard(tmp_path / "val_000.bin", np.random.default_rng(2).integers(0, 50257, 5 * 2 * 16 + 1))
    loader = ValLoader(str(tmp_path / "val_*.bin"), 2, 16, 3)
    with torch.no_grad():
        expected = [model(x, y).double().item() for x, y in loader.batches()]
    got = mean_val_loss(model, loader, "cpu", None)
    assert len(expected) == 3 and got == sum(expected) / 3
    assert model.training
    assert math.isclose(val_loss(model, str(tmp_path / "val_*.bin"), 2, 16, 3, "cpu")["val_loss"], got, rel_tol=1e-12)
    assert model.training


def test_val_loss_no_files_is_user_error(tmp_path, tiny_config):
    model = build_model(tiny_config)
    with pytest.raises(UserError, match="-j"):
        val_loss(model, str(tmp_path / "nothing_*.bin"), 2, 16, -1, "cpu")


def test_model_file_of_another_shape_is_user_error(tmp_path, tiny_config):
    model = build_model(tiny_config)
    path = tmp_path / "model.bin"
    write_llmc_model(path, model.state_dict(), tiny_config)
    other = ModelConfig(n_layer=3, n_head=4, n_embd=64, max_seq_len=64)
    with pytest.raises(UserError, match="n_layer 2 \\(expected 3\\)"):
        load_model(str(path), "cpu", expect=other)
    assert load_model(str(path), "cpu", expect=tiny_config).config == tiny_config
    # a file cut short is caught by its header check
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(UserError, match="truncated"):
        load_model(str(path), "cpu")
