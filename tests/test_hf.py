"""HuggingFace GPT-2 export and import: parity with transformers' GPT2LMHeadModel, bad directories."""

from __future__ import annotations

import json

import pytest
import torch

from gpt2train.config import ModelConfig
from gpt2train.errors import UserError
from gpt2train.formats.hf import read_hf_dir, write_hf_dir
from gpt2train.formats.load import load_pretrained
from gpt2train.model import GPT, build_model

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny random model of ours (real GPT-2 vocab) exported to a HF directory."""
    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=64)
    model = build_model(cfg, seed=3).eval()
    out = tmp_path_factory.mktemp("hf") / "tiny"
    write_hf_dir(out, cfg, model.state_dict())
    return cfg, model, out


def test_export_loads_in_transformers_with_same_logits_and_loss(exported):
    cfg, model, out = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert type(hf).__name__ == "GPT2LMHeadModel"
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (2, 33), generator=g)
    with torch.no_grad():
        ours = model(idx)
        theirs = hf(idx).logits
        assert theirs.shape == ours.shape
        assert (ours - theirs).abs().max().item() < 1e-5
        loss_ours = model(idx[:, :-1], idx[:, 1:]).item()
        loss_theirs = hf(idx, labels=idx).loss.item()  # HF shifts the labels itself
    assert abs(loss_ours - loss_theirs) < 1e-5


def test_export_tokenizer_loads_offline(exported):
    from gpt2train.data.tokenizer import encode

    _, _, out = exported
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    text = "Hello world, it's a test.\n\n  Ünïcödé 1234 \u2603"
    assert tok.encode(text) == encode(text)
    assert tok.encode("<|endoftext|>") == [50256]  # HF treats it as the special token
    assert tok.eos_token_id == 50256


def test_export_then_import_round_trip(exported):
    cfg, model, out = exported
    cfg2, sd = read_hf_dir(out)
    assert cfg2 == cfg
    for k, v in model.state_dict().items():
        if k == "transformer.wte.weight":
            assert torch.equal(sd[k][: cfg.vocab_size], v[: cfg.vocab_size])
            assert not sd[k][cfg.vocab_size :].any()  # padded rows come back as zeros
        else:
            assert torch.equal(sd[k], v), k


def test_import_transformers_model_same_logits(tmp_path):
    conf = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=48, vocab_size=50257)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(conf).eval()
    hf.save_pretrained(str(tmp_path))
    cfg, sd = load_pretrained(str(tmp_path))  # a dir with config.json goes through read_hf_dir
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.max_seq_len, cfg.padded_vocab_size) == (
        2,
        4,
        64,
        48,
        50304,
    )
    model = GPT(cfg)
    model.load_state_dict(sd)
    model.eval()
    idx = torch.randint(0, 50257, (3, 48))
    with torch.no_grad():
        assert (model(idx) - hf(idx).logits).abs().max().item() < 1e-5


def test_import_pytorch_model_bin_and_bare_names(tmp_path, exported):
    """Old-style uploads: pytorch_model.bin with GPT2Model's bare names (wte.weight, h.0...)."""
    cfg, model, out = exported
    from safetensors.torch import load_file

    sd = {k.removeprefix("transformer."): v for k, v in load_file(str(out / "model.safetensors")).items()}
    sd["h.0.attn.bias"] = torch.ones(1, 1, 64, 64)  # old checkpoints carry the causal mask buffer
    d = tmp_path / "old"
    d.mkdir()
    torch.save(sd, d / "pytorch_model.bin")
    (d / "config.json").write_text((out / "config.json").read_text())
    cfg2, sd2 = read_hf_dir(d)
    assert cfg2 == cfg
    assert torch.equal(sd2["transformer.h.1.mlp.c_fc.weight"], model.state_dict()["transformer.h.1.mlp.c_fc.weight"])


def test_not_gpt2_dir_is_user_error(tmp_path, exported):
    _, _, out = exported
    d = tmp_path / "llama"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UserError, match="not a GPT-2 model"):
        load_pretrained(str(d))
    d2 = tmp_path / "noweights"
    d2.mkdir()
    (d2 / "config.json").write_text((out / "config.json").read_text())
    with pytest.raises(UserError, match="no model.safetensors"):
        read_hf_dir(d2)


def test_weights_of_another_shape_are_user_error(tmp_path, exported):
    _, _, out = exported
    d = tmp_path / "wrong"
    d.mkdir()
    (d / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    conf = json.loads((out / "config.json").read_text())
    conf["n_embd"], conf["n_head"] = 128, 4
    (d / "config.json").write_text(json.dumps(conf))
    with pytest.raises(UserError, match="do not belong to this config"):
        read_hf_dir(d)
    conf["n_embd"], conf["n_layer"] = 64, 1
    (d / "config.json").write_text(json.dumps(conf))
    with pytest.raises(UserError, match="more than the 1 layers"):
        read_hf_dir(d)


def test_import_sharded_safetensors(tmp_path, exported):
    """Large uploads split the weights over several files listed in model.safetensors.index.json."""
    from safetensors.torch import load_file, save_file

    cfg, model, out = exported
    sd = load_file(str(out / "model.safetensors"))
    keys = sorted(sd)
    parts = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    weight_map = {}
    for name, ks in parts.items():
        save_file({k: sd[k] for k in ks}, str(tmp_path / name))
        weight_map.update({k: name for k in ks})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    cfg2, sd2 = read_hf_dir(tmp_path)
    assert cfg2 == cfg
    assert torch.equal(
        sd2["transformer.h.0.attn.c_attn.weight"], model.state_dict()["transformer.h.0.attn.c_attn.weight"]
    )
