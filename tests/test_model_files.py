"""llm.c model files and parameter counts."""

import numpy as np
import pytest
import torch

from gpt2train.config import ModelConfig, preset
from gpt2train.errors import UserError
from gpt2train.formats.llmc_model import read_llmc_header, read_llmc_model, write_llmc_model
from gpt2train.model import build_model


def test_parameter_counts_equal_llmc():
    assert preset("d12").num_parameters() == 124_475_904
    assert preset("gpt2:d48").num_parameters() == 1_557_686_400
    assert build_model(preset("d12")).num_parameters() == 124_475_904
    assert preset("gpt3:c768").max_seq_len == 2048 and preset("gpt3:c768").n_head == 12


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(UserError, match="d13"):
        preset("d13")
    with pytest.raises(UserError, match="gpt3:c999"):
        preset("gpt3:c999")


@pytest.mark.parametrize("dtype,version,itemsize", [("fp32", 3, 4), ("bf16", 5, 2)])
def test_write_then_read_is_identical(tmp_path, tiny_config, dtype, version, itemsize):
    model = build_model(tiny_config, seed=1)
    sd = model.state_dict()
    path = tmp_path / "model.bin"
    write_llmc_model(path, sd, tiny_config, dtype=dtype)
    header = np.fromfile(path, dtype="<i4", count=256)
    C, L, V, Vp, T = 64, 2, 50257, 50304, 64
    assert list(header[:8]) == [20240326, version, T, V, L, 4, C, Vp]
    assert path.stat().st_size == 1024 + tiny_config.num_parameters() * itemsize
    cfg, back = read_llmc_model(path)
    assert cfg == tiny_config
    for name, t in sd.items():
        expected = t if dtype == "fp32" else t.to(torch.bfloat16).float()
        assert torch.equal(back[name], expected), name


def test_llmc_layout_first_tensors(tmp_path, tiny_config):
    """wte then wpe then ln1w (stacked over layers), as llm.c orders them."""
    model = build_model(tiny_config, seed=2)
    path = tmp_path / "m.bin"
    write_llmc_model(path, model.state_dict(), tiny_config)
    data = np.fromfile(path, dtype="<f4", offset=1024)
    wte = model.transformer.wte.weight.detach().numpy().ravel()
    wpe = model.transformer.wpe.weight.detach().numpy().ravel()
    assert np.array_equal(data[: wte.size], wte)
    assert np.array_equal(data[wte.size : wte.size + wpe.size], wpe)
    ln1w = torch.stack([b.ln_1.weight for b in model.transformer.h]).detach().numpy().ravel()
    assert np.array_equal(data[wte.size + wpe.size : wte.size + wpe.size + ln1w.size], ln1w)


def test_truncated_and_foreign_model_files(tmp_path, tiny_config):
    path = tmp_path / "m.bin"
    write_llmc_model(path, build_model(tiny_config).state_dict(), tiny_config)
    data = path.read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-100])
    with pytest.raises(UserError, match="short.bin.*truncated"):
        read_llmc_header(tmp_path / "short.bin")
    (tmp_path / "foreign.bin").write_bytes(b"\x00" * 2048)
    with pytest.raises(UserError, match="foreign.bin.*magic"):
        read_llmc_header(tmp_path / "foreign.bin")


def test_init_follows_llmc(tiny_config):
    model = build_model(ModelConfig(n_layer=4, n_head=4, n_embd=128, max_seq_len=64))
    h = model.transformer.h
    assert torch.all(h[0].ln_1.weight == 1) and torch.all(h[0].attn.c_attn.bias == 0)
    std_fc = h[0].mlp.c_fc.weight.std().item()
    std_proj = h[0].mlp.c_proj.weight.std().item()
    assert abs(std_fc - 0.02) < 0.002
    assert abs(std_proj - 0.02 / (2 * 4) ** 0.5) < 0.001
