"""Load a model from whatever a user points at: an llm.c .bin, a run directory, a HuggingFace dir."""

from __future__ import annotations

import os
import sys

import torch

from gpt2train.config import ModelConfig
from gpt2train.errors import UserError
from gpt2train.rundir import newest_model


def load_pretrained(source: str) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, fp32 state dict) from an llm.c model .bin, a modern model .safetensors (formats/safetensors_model.py),
    a run dir, or a HuggingFace GPT-2 dir."""
    if os.path.isdir(source):
        # the newest usable checkpoint, as resume picks it; damaged newer ones warned about on stderr
        newest = newest_model(source, warn=lambda message: print(message, file=sys.stderr))
        # a run dir has a config.json too (the trainer's): its checkpoints decide
        if newest is None and os.path.exists(os.path.join(source, "config.json")):
            from gpt2train.formats.hf import read_hf_dir
            from gpt2train.formats.hf_modern import is_modern_hf_dir, read_modern_hf_dir

            return read_modern_hf_dir(source) if is_modern_hf_dir(source) else read_hf_dir(source)
        if newest is None:
            raise UserError(f"{source} holds neither a HuggingFace config.json nor a complete model_*.bin checkpoint")
        source = newest
    if not os.path.exists(source):
        raise UserError(f"model {source!r} not found: give a preset (d12, gpt3:c768), an llm.c .bin, or a directory")
    if source.endswith(".safetensors"):
        from gpt2train.formats.safetensors_model import read_safetensors_model

        return read_safetensors_model(source)
    from gpt2train.formats.llmc_model import read_llmc_model

    return read_llmc_model(source)


def read_model_header(path: str) -> ModelConfig:
    """The config in a model file's header, its tensors unread: a modern model's .safetensors or an llm.c .bin
    (by the extension, as load_pretrained picks the reader); a UserError naming a damaged file."""
    if path.endswith(".safetensors"):
        from gpt2train.formats.safetensors_model import read_safetensors_header

        return read_safetensors_header(path)
    from gpt2train.formats.llmc_model import read_llmc_header

    return read_llmc_header(path)[0]
