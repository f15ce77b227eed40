"""HuggingFace export of a model with architecture levers: a self-contained ``trust_remote_code`` directory.

No transformers architecture matches every lever combination exactly (rotary + parameter-free
QK-norm + un-gated relu^2 + soft-capped logits), so the directory brings gpt2train's own model:

    config.json                 model_type "gpt2train_modern", the ModelConfig fields, auto_map
    modeling_gpt2train.py       a copy of formats/hf_modeling.py: the transformers wrapper
    gpt2train_model.py          a copy of gpt2train/model.py, the model itself (it imports only torch)
    model.safetensors           our state dict, names unchanged (the padded vocab rows kept)
    tokenizer files             GPT-2's, as the classic export writes them

Load it with ``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)``. ``gpt2train eval /
sample / export -e DIR`` read it back without running its code (they read config.json and the weights).
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

MODEL_TYPE = "gpt2train_modern"
MODULE = "modeling_gpt2train"


def write_modern_hf_dir(path: str | os.PathLike, cfg: ModelConfig, sd: dict[str, torch.Tensor],
                        dtype: str = "fp32") -> None:  # fmt: skip
    """Write the trust_remote_code directory for a GPT of config ``cfg`` (not classic) and weights ``sd``."""
    from safetensors.torch import save_file

    from gpt2train.formats.hf import write_tokenizer_files

    if dtype not in ("fp32", "bf16"):
        raise UserError(f"--dtype must be fp32 or bf16, not {dtype!r}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"-o {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    tensors = {k: v.detach().to("cpu", torch_dtype).contiguous() for k, v in sd.items()}
    tmp = path / "model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path / "model.safetensors")
    shutil.copyfile(Path(__file__).with_name("hf_modeling.py"), path / f"{MODULE}.py")
    shutil.copyfile(Path(__file__).parent.parent / "model.py", path / "gpt2train_model.py")
    conf = {
        **cfg.to_dict(),
        "model_type": MODEL_TYPE,
        "architectures": ["Gpt2TrainForCausalLM"],
        "auto_map": {
            "AutoConfig": f"{MODULE}.Gpt2TrainConfig",
            "AutoModelForCausalLM": f"{MODULE}.Gpt2TrainForCausalLM",
        },  # fmt: skip
        "tie_word_embeddings": False,
        "use_cache": False,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "torch_dtype": "float32" if dtype == "fp32" else "bfloat16",
    }
    (path / "config.json").write_text(json.dumps(conf, indent=2) + "\n")
    if cfg.vocab_size == 50257:
        write_tokenizer_files(path, cfg.max_seq_len)


def is_modern_hf_dir(path: str | os.PathLike) -> bool:
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError):
        return False


def read_modern_hf_dir(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, fp32 state dict) of an exported modern directory; its modeling file is not run. The config's
    fields are type-checked and its tensors checked against the weights' header before any is read."""
    from safetensors.torch import load_file

    from gpt2train.config import model_config_from_dict
    from gpt2train.formats.safetensors_model import check_safetensors_weights

    path = Path(path)
    source = path / "config.json"
    conf = read_json_object(source, "re-export the model")
    fields = {k: conf[k] for k in ModelConfig.__dataclass_fields__ if k in conf}
    cfg = model_config_from_dict(ModelConfig, fields, str(source))
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"{path} has a config.json but no model.safetensors: re-export the model")
    check_safetensors_weights(weights, cfg, f"{path} (config.json and model.safetensors)")
    try:
        sd = {k: v.float() for k, v in load_file(str(weights)).items()}
    except Exception as e:  # corrupt files: name the directory
        raise UserError(f"cannot read the modern model in {path}: {e}") from None
    return cfg, sd
