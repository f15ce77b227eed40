"""HuggingFace GPT-2 directories: export ours to ``GPT2LMHeadModel`` and import theirs.

Facts about the HF layout that this module relies on:

- weights live in ``model.safetensors`` (or ``model.safetensors.index.json`` + shards, or the older
  ``pytorch_model.bin``); names are ``transformer.*`` for GPT2LMHeadModel or bare (``wte.weight``,
  ``h.0...``) for checkpoints saved from GPT2Model, such as the original ``gpt2`` upload;
- the four projections are ``Conv1D`` modules whose weight is (in, out): the transpose of ours;
- the output layer is tied to ``wte`` and ``lm_head.weight`` is usually not stored;
- ``wte`` has exactly ``vocab_size`` (50257) rows: our padded rows are dropped on export and
  re-created as zeros on import (llm.c's convention; they are never predicted).

Nothing here imports ``transformers``: export writes plain JSON and safetensors, and import reads
them, so loading a stranger's directory never runs code from it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from gpt2train.config import ModelConfig
from gpt2train.errors import UserError
from gpt2train.formats.json_text import read_json_object

EOT_TEXT = "<|endoftext|>"
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_PER_LAYER = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
)  # fmt: skip
# activations equal to our GELU (tanh approximation)
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


# -- export -----------------------------------------------------------------------------------


def state_dict_to_hf(sd: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Our state dict -> GPT2LMHeadModel's (Conv1D weights transposed, padded vocab rows dropped).

    ``lm_head.weight`` is left out: it is tied to ``transformer.wte.weight``, as HF saves it.
    """
    out = {
        "transformer.wte.weight": sd["transformer.wte.weight"][: cfg.vocab_size],
        "transformer.wpe.weight": sd["transformer.wpe.weight"],
        "transformer.ln_f.weight": sd["transformer.ln_f.weight"],
        "transformer.ln_f.bias": sd["transformer.ln_f.bias"],
    }
    for i in range(cfg.n_layer):
        for name in _PER_LAYER:
            key = f"transformer.h.{i}.{name}"
            t = sd[key]
            out[key] = t.t() if name in _CONV1D else t
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def hf_config_dict(cfg: ModelConfig, dtype: str = "fp32") -> dict:
    """config.json contents for GPT2LMHeadModel of shape ``cfg``."""
    torch_dtype = "float32" if dtype == "fp32" else "bfloat16"
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.max_seq_len,
        "n_ctx": cfg.max_seq_len,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        # our model trains without dropout (as llm.c); say so rather than inherit GPT-2's 0.1
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "use_cache": True,
        "torch_dtype": torch_dtype,
        "dtype": torch_dtype,
    }


def _bpe_data_dir() -> Path:
    from gpt2train.data.tokenizer import checked_bpe_dir

    return checked_bpe_dir()


def write_tokenizer_files(path: str | os.PathLike, max_len: int) -> None:
    """GPT-2's tokenizer files (vocab.json, merges.txt and two small JSON files) into ``path``."""
    path = Path(path)
    data = _bpe_data_dir()
    # encoder.json and vocab.bpe are byte-for-byte GPT-2's vocab.json and merges.txt
    shutil.copyfile(data / "encoder.json", path / "vocab.json")
    shutil.copyfile(data / "vocab.bpe", path / "merges.txt")
    specials = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
    tok_cfg = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": max_len,
        "add_prefix_space": False,
        "add_bos_token": False,
        **specials,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    (path / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")


def write_hf_dir(path: str | os.PathLike, cfg: ModelConfig, sd: dict[str, torch.Tensor], dtype: str = "fp32") -> None:
    """Write a directory that ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained`` load offline."""
    from safetensors.torch import save_file

    if dtype not in ("fp32", "bf16"):
        raise UserError(f"--dtype must be fp32 or bf16, not {dtype!r}")
    if cfg.vocab_size != 50257:
        raise UserError(f"HuggingFace GPT-2 export needs the GPT-2 vocabulary (50257 tokens), not {cfg.vocab_size}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"-o {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    tensors = state_dict_to_hf(sd, cfg)
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    tensors = {k: v.to(torch_dtype).contiguous() for k, v in tensors.items()}
    tmp = path / "model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps(hf_config_dict(cfg, dtype), indent=2) + "\n")
    (path / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 50256, "eos_token_id": 50256}, indent=2) + "\n"
    )
    write_tokenizer_files(path, cfg.max_seq_len)


# -- import -----------------------------------------------------------------------------------


def _weight_files(path: Path) -> list[Path]:
    """The safetensors files of a HuggingFace dir: model.safetensors, or the shards its index.json names (each
    confined to the directory); [] when there are none."""
    from gpt2train.paths import confined_name

    index = path / "model.safetensors.index.json"
    if (path / "model.safetensors").exists():
        return [path / "model.safetensors"]
    if not index.exists():
        return []
    weight_map = read_json_object(index, "re-download the model").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UserError(f"{index}: weight_map is not a non-empty object: re-download the model")
    shards = sorted({confined_name(name, index, "weight shard") for name in weight_map.values()})
    return [path / name for name in shards]


def _read_weights(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Every weight of a HuggingFace dir, checked against ``expected`` (names without ``transformer.``) from the
    safetensors headers before any tensor is read."""
    from safetensors.torch import load_file

    from gpt2train.formats.tensor_header import safetensors_shapes

    files = _weight_files(path)
    legacy = path / "pytorch_model.bin"
    if not files and not legacy.exists():
        raise UserError(f"{path} has a config.json but no model.safetensors or pytorch_model.bin")
    if files:
        shapes = {}
        for f in files:
            if not f.is_file():
                raise UserError(f"{path}: the weight file {f.name} is missing: re-download the model")
            shapes.update(safetensors_shapes(f))
        _check_hf_shapes(shapes, expected, path)
    try:
        if files:
            out: dict[str, torch.Tensor] = {}
            for f in files:
                out.update(load_file(str(f)))
        else:
            # weights_only: a pickle from a stranger must not run code
            out = torch.load(str(legacy), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or truncated files: name the directory
        raise UserError(f"cannot read the weights in {path}: {e}") from None
    if not isinstance(out, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in out.items()):
        raise UserError(f"{legacy} does not hold a dict of named tensors: re-download the model")
    _check_hf_shapes({k: tuple(v.shape) for k, v in out.items()}, expected, path)
    return out


def _strip(name: str) -> str:
    # GPT2LMHeadModel saves "transformer.*"; GPT2Model (the original uploads) saves bare names
    return name[len("transformer.") :] if name.startswith("transformer.") else name


def _check_hf_shapes(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], path: Path) -> None:
    from gpt2train.formats.tensor_header import check_shapes

    found = {_strip(k): v for k, v in found.items()}
    found.pop("lm_head.weight", None)  # tied to wte; checked against it where it is stored
    found = {k: v for k, v in found.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}  # old buffers
    layers = sum(k.endswith(".ln_1.weight") and k.startswith("h.") for k in expected)
    if f"h.{layers}.ln_1.weight" in found:
        raise UserError(f"{path}: the weights hold more than the {layers} layers that config.json declares")
    check_shapes(found, expected, f"{path} (config.json and its weights)")


def _config_from_json(path: Path) -> ModelConfig:
    from gpt2train.config import model_config_from_dict

    source = path / "config.json"
    conf = read_json_object(source, "re-download the model")
    if conf.get("model_type") != "gpt2":
        raise UserError(
            f"{path} is not a GPT-2 model: config.json has model_type {conf.get('model_type')!r}, expected 'gpt2'"
        )
    act = conf.get("activation_function", "gelu_new")
    if act not in _TANH_GELUS:
        raise UserError(f"{path}: activation_function {act!r} is not GPT-2's tanh GELU")
    if conf.get("scale_attn_by_inverse_layer_idx") or conf.get("reorder_and_upcast_attn"):
        raise UserError(f"{path}: attention variants (scale_attn_by_inverse_layer_idx, ...) are not supported")
    if conf.get("scale_attn_weights") is False:
        raise UserError(f"{path}: scale_attn_weights=false is not supported")
    fields = {
        "n_layer": conf.get("n_layer", 12),
        "n_head": conf.get("n_head", 12),
        "n_embd": conf.get("n_embd", 768),
        "vocab_size": conf.get("vocab_size", 50257),
        "max_seq_len": conf.get("n_positions", conf.get("n_ctx", 1024)),
    }
    cfg = model_config_from_dict(ModelConfig, fields, str(source))  # types and ranges
    if conf.get("n_inner") not in (None, 4 * cfg.n_embd):
        raise UserError(f"{path}: n_inner {conf['n_inner']!r} is not 4 * n_embd")
    eps = conf.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or abs(eps - 1e-5) > 1e-12:
        raise UserError(f"{path}: layer_norm_epsilon {eps!r} differs from GPT-2's 1e-5")
    if conf.get("tie_word_embeddings", True) is False:
        raise UserError(f"{path}: untied input and output embeddings are not supported")
    return cfg


def _hf_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """HF GPT-2's tensors (bare names, Conv1D weights as (in, out)) for ``cfg``."""
    C, L, V, T = cfg.n_embd, cfg.n_layer, cfg.vocab_size, cfg.max_seq_len
    expected = {"wte.weight": (V, C), "wpe.weight": (T, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    per_layer = {
        "ln_1.weight": (C,), "ln_1.bias": (C,), "attn.c_attn.weight": (C, 3 * C),
        "attn.c_attn.bias": (3 * C,),
        "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,), "ln_2.weight": (C,), "ln_2.bias": (C,),
        "mlp.c_fc.weight": (C, 4 * C), "mlp.c_fc.bias": (4 * C,), "mlp.c_proj.weight": (4 * C, C),
        "mlp.c_proj.bias": (C,),
    }  # fmt: skip
    for i in range(L):
        for name, shape in per_layer.items():
            expected[f"h.{i}.{name}"] = shape
    return expected


def read_hf_dir(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, our fp32 state dict) from a HuggingFace GPT-2 directory (gpt2 .. gpt2-xl shapes).

    ``wte`` is padded with zero rows to a multiple of 128, as llm.c pads it. The config and the weights'
    shapes are checked against each other from the headers before any tensor is read.
    """
    from gpt2train.formats.tensor_header import check_size_for

    path = Path(path)
    cfg = _config_from_json(path)
    expected = _hf_shapes(cfg)
    files = _weight_files(path) or [path / "pytorch_model.bin"]
    if not any(f.is_file() for f in files):
        raise UserError(f"{path} has a config.json but no model.safetensors or pytorch_model.bin")
    held = sum(f.stat().st_size for f in files if f.is_file())
    check_size_for(cfg.num_parameters() - (cfg.padded_vocab_size - cfg.vocab_size) * cfg.n_embd, held,
                   f"{path / 'config.json'}")  # fmt: skip
    weights = {_strip(k): v for k, v in _read_weights(path, expected).items()}
    sd: dict[str, torch.Tensor] = {}
    for key in expected:
        t = weights[key].float()
        name = key.split(".", 2)[2] if key.startswith("h.") else key
        if name in _CONV1D:
            t = t.t()
        sd[f"transformer.{key}"] = t.contiguous()
    wte = torch.zeros(cfg.padded_vocab_size, cfg.n_embd)
    wte[: cfg.vocab_size] = sd["transformer.wte.weight"]
    sd["transformer.wte.weight"] = wte
    return cfg, sd
