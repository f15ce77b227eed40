"""Model files of the non-classic architectures: safetensors, the config as JSON in the metadata.

llm.c's .bin (formats/llmc_model.py) holds the classic GPT-2 only; a model with any architecture lever set
(``not cfg.classic``) is written here instead: tensors under their state-dict names, metadata
``{"format": "gpt2train-modern", "config": <every ModelConfig field as JSON>}``. Reading loads no code.
"""

from __future__ import annotations

import json
import os

import torch

from gpt2train.config import ModelConfig, model_config_from_dict
from gpt2train.errors import UserError

FORMAT = "gpt2train-modern"  # the safetensors metadata "format" of these files (the name they have had since v1)


def save_safetensors_model(path: str | os.PathLike, state_dict: dict, cfg: ModelConfig, dtype: str = "fp32",
                           on_written=None) -> None:  # fmt: skip
    """Write a model file atomically: tensors in ``dtype`` (fp32 | bf16), the config in the metadata.
    ``on_written(temp_path)``, if given, runs once the bytes are in the temp file, before the rename."""
    from safetensors.torch import save_file

    if dtype not in ("fp32", "bf16"):
        raise UserError(f"model file dtype must be fp32 or bf16, not {dtype!r}")
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    tensors = {k: v.detach().to("cpu", torch_dtype).contiguous() for k, v in state_dict.items()}
    tmp = str(path) + ".tmp"
    save_file(tensors, tmp, metadata={"format": FORMAT, "config": json.dumps(cfg.to_dict())})
    if on_written is not None:
        on_written(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def tensor_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """{name: shape} of a GPT's state dict, from a model made on the meta device (no memory)."""
    from gpt2train.model import GPT

    with torch.device("meta"):
        model = GPT(cfg)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_safetensors_weights(path: str | os.PathLike, cfg: ModelConfig, source: str) -> None:
    """The safetensors file ``path`` holds exactly ``cfg``'s tensors (checked from its header, before any
    tensor is read): a config claiming more layers than the file holds is a UserError naming ``source``."""
    from gpt2train.formats.tensor_header import check_shapes, check_size_for, safetensors_shapes

    check_size_for(cfg.num_parameters(), os.path.getsize(path), source)
    check_shapes(safetensors_shapes(path), tensor_shapes(cfg), source)


def read_safetensors_header(path: str | os.PathLike) -> ModelConfig:
    """The config of a model file, checked against the tensors its header lists (reads only the header); a
    UserError if it is not one, or if the config and the tensors disagree."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise UserError(f"model file {path} is unreadable or corrupt ({e})") from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise UserError(f"{path} is a safetensors file but not a gpt2train modern model (no {FORMAT} config)")
    try:
        fields = json.loads(meta["config"])
    except (ValueError, RecursionError) as e:
        raise UserError(f"{path}: the config in the file is not valid JSON ({e}); re-create the file") from None
    cfg = model_config_from_dict(ModelConfig, fields, str(path))
    check_safetensors_weights(path, cfg, str(path))
    return cfg


def read_safetensors_model(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, fp32 state dict) of a model file. Loads no code: safetensors and JSON only."""
    from safetensors.torch import load_file

    cfg = read_safetensors_header(path)
    return cfg, {k: v.float() for k, v in load_file(str(path)).items()}
