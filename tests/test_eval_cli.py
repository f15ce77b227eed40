"""`gpt2train eval / sample / export` through ``gpt2train.cli.main``."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest
import torch

from gpt2train.formats.llmc_model import read_llmc_model, write_llmc_model
from gpt2train.formats.shards import write_shard
from gpt2train.model import build_model


@pytest.fixture(scope="module")
def main():
    """cli.main; on a branch without the train command yet, a stand-in keeps the dispatcher whole."""
    if importlib.util.find_spec("gpt2train.cli.train_cmd") is None:
        stub = types.ModuleType("gpt2train.cli.train_cmd")
        stub.register = lambda sub: None
        sys.modules["gpt2train.cli.train_cmd"] = stub
    from gpt2train.cli import main

    return main


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from gpt2train.config import ModelConfig

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=128)
    path = tmp_path_factory.mktemp("cli") / "model_00000010.bin"
    write_llmc_model(path, build_model(cfg, seed=2).state_dict(), cfg)
    return path


def test_export_round_trip_hf_and_llmc(main, model_file, tmp_path, capsys):
    hf_dir, back = tmp_path / "hf", tmp_path / "back.bin"
    assert main(["export", "--model", str(model_file), "--to", "hf", "-o", str(hf_dir)]) == 0
    assert (hf_dir / "model.safetensors").exists() and (hf_dir / "vocab.json").exists()
    assert main(["export", "--model", str(hf_dir), "--to", "llmc", "-o", str(back)]) == 0
    cfg1, sd1 = read_llmc_model(model_file)
    cfg2, sd2 = read_llmc_model(back)
    assert cfg1 == cfg2
    for k in sd1:
        if k == "transformer.wte.weight":  # padded rows are not exported to HF; they return as zeros
            assert torch.equal(sd1[k][: cfg1.vocab_size], sd2[k][: cfg1.vocab_size])
        else:
            assert torch.equal(sd1[k], sd2[k]), k
    bf = tmp_path / "bf16.bin"
    assert main(["export", "--model", str(model_file), "--to", "llmc", "-o", str(bf), "--dtype", "bf16"]) == 0
    assert bf.stat().st_size < model_file.stat().st_size


def test_eval_json(main, model_file, tmp_path, pydoc_text, hellaswag_jsonl, capsys):
    from gpt2train.data.tokenizer import encode

    text = pydoc_text[:20000]
    write_shard(tmp_path / "val.bin", np.array([50256] + encode(text)))
    hs = tmp_path / "hs.jsonl"
    hs.write_text("".join(hellaswag_jsonl.read_text().splitlines(True)[:8]))
    capsys.readouterr()
    argv = [
        "eval",
        "--model",
        str(model_file),
        "-j",
        str(tmp_path / "val.bin"),
        "-b",
        "2",
        "-t",
        "32",
        "-m",
        "3",
    ]
    assert main(argv + ["--hellaswag", str(hs), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["examples"] == 8 and out["val_batches"] == 3
    assert 9 < out["val_loss"] < 12  # a random model: about ln(50257) = 10.8
    assert 0 <= out["hellaswag_acc"] <= 1 and 0 <= out["hellaswag_acc_norm"] <= 1
    assert out["bits_per_byte"] > 0
    assert main(argv) == 0
    assert "val loss" in capsys.readouterr().out


def test_eval_errors(main, model_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPT2TRAIN_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "--model", str(model_file), "--hellaswag"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "gpt2train prepare hellaswag" in err and err.count("\n") == 1
    assert main(["eval", "--model", str(model_file)]) == 1
    assert "nothing to do" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "missing.bin"), "--hellaswag"]) == 1
    assert "missing.bin" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"ctx": "x", "endings": ["a", "b", "c"], "label": 0}) + "\n")
    assert main(["eval", "--model", str(model_file), "--hellaswag", str(bad)]) == 1
    assert "3 endings" in capsys.readouterr().err


def test_sample_cli(main, model_file, capsys):
    argv = [
        "sample",
        "--model",
        str(model_file),
        "--prompt",
        "Once upon a time",
        "-n",
        "2",
        "--max-tokens",
        "8",
    ]
    assert main(argv + ["--seed", "7", "--top-k", "40", "--device", "cpu"]) == 0
    first = capsys.readouterr().out
    assert first.count("Once upon a time") == 2 and "--- sample 2/2" in first
    assert main(argv + ["--seed", "7", "--top-k", "40", "--no-cache", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == first  # same seed, same text, cache or not
    assert main(argv + ["--top-p", "1.5"]) == 1
    assert "--top-p" in capsys.readouterr().err


@pytest.mark.parametrize("command,room", [("sample", "lower --max-tokens"), ("eval", "lower -b (val loss)")])
def test_out_of_gpu_memory_is_one_line(main, model_file, tmp_path, monkeypatch, capsys, command, room):
    """torch.OutOfMemoryError in the command's work (as CUDA raises it): one line naming the command and its flags."""
    import gpt2train.evaluate as evaluate
    import gpt2train.sample as sample

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")

    monkeypatch.setattr(sample, "generate", oom)
    monkeypatch.setattr(evaluate, "val_loss", oom)
    write_shard(tmp_path / "val.bin", np.arange(1000) % 50257)
    extra = ["--max-tokens", "4"] if command == "sample" else ["-j", str(tmp_path / "val.bin")]
    code = main([command, "--model", str(model_file), "--device", "cpu", *extra])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: out of GPU memory in `gpt2train {command}`: {room}"), lines
