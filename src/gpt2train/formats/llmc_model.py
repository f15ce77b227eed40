"""llm.c model files (model_%08d.bin, gpt2_124M.bin, ...).

Header: 256 int32: [0] = 20240326, [1] = version (3: fp32 parameters, 5: bf16), [2] = max seq len,
[3] = vocab size, [4] = layers, [5] = heads, [6] = channels, [7] = padded vocab. Then every
parameter, in llm.c's order, each stacked over layers: wte (Vp, C), wpe (maxT, C), ln1w, ln1b,
qkvw (L, 3C, C), qkvb, attprojw (L, C, C), attprojb, ln2w, ln2b, fcw (L, 4C, C), fcb,
fcprojw (L, C, 4C), fcprojb, lnfw, lnfb. Linear weights are (out, in), as PyTorch stores them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gpt2train.config import ModelConfig, model_config_from_dict
from gpt2train.errors import UserError

MODEL_MAGIC = 20240326
VERSION_FP32 = 3
VERSION_BF16 = 5
HEADER_INTS = 256

# (llm.c name, our per-layer parameter name or None for a whole-model tensor)
_LAYER_TENSORS = [
    ("ln1w", "ln_1.weight"),
    ("ln1b", "ln_1.bias"),
    ("qkvw", "attn.c_attn.weight"),
    ("qkvb", "attn.c_attn.bias"),
    ("attprojw", "attn.c_proj.weight"),
    ("attprojb", "attn.c_proj.bias"),
    ("ln2w", "ln_2.weight"),
    ("ln2b", "ln_2.bias"),
    ("fcw", "mlp.c_fc.weight"),
    ("fcb", "mlp.c_fc.bias"),
    ("fcprojw", "mlp.c_proj.weight"),
    ("fcprojb", "mlp.c_proj.bias"),
]


def llmc_tensor_shapes(cfg: ModelConfig) -> list[tuple[str, tuple[int, ...]]]:
    """llm.c's 16 parameter tensors and their shapes, in file order."""
    C, L, Vp, T = cfg.n_embd, cfg.n_layer, cfg.padded_vocab_size, cfg.max_seq_len
    per_layer = {
        "ln1w": (C,), "ln1b": (C,), "qkvw": (3 * C, C), "qkvb": (3 * C,), "attprojw": (C, C),
        "attprojb": (C,), "ln2w": (C,), "ln2b": (C,), "fcw": (4 * C, C), "fcb": (4 * C,),
        "fcprojw": (C, 4 * C), "fcprojb": (C,),
    }  # fmt: skip
    shapes = [("wte", (Vp, C)), ("wpe", (T, C))]
    shapes += [(name, (L, *per_layer[name])) for name, _ in _LAYER_TENSORS]
    shapes += [("lnfw", (C,)), ("lnfb", (C,))]
    return shapes


def state_dict_to_llmc(sd: dict[str, torch.Tensor], cfg: ModelConfig) -> list[torch.Tensor]:
    """Our GPT state dict -> llm.c's 16 tensors in file order."""
    out = [sd["transformer.wte.weight"], sd["transformer.wpe.weight"]]
    for _, ours in _LAYER_TENSORS:
        out.append(torch.stack([sd[f"transformer.h.{i}.{ours}"] for i in range(cfg.n_layer)]))
    out += [sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"]]
    return out


def llmc_to_state_dict(tensors: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """llm.c's named tensors -> our GPT state dict."""
    sd = {"transformer.wte.weight": tensors["wte"], "transformer.wpe.weight": tensors["wpe"]}
    for name, ours in _LAYER_TENSORS:
        for i in range(cfg.n_layer):
            sd[f"transformer.h.{i}.{ours}"] = tensors[name][i]
    sd["transformer.ln_f.weight"] = tensors["lnfw"]
    sd["transformer.ln_f.bias"] = tensors["lnfb"]
    return sd


def write_llmc_model(
    path: str | os.PathLike, state_dict: dict, cfg: ModelConfig, dtype: str = "fp32", on_written=None
) -> None:
    """Write an llm.c model file (fp32 = version 3, bf16 = version 5) atomically: temp, fsync, rename.

    ``on_written(temp_path)``, if given, runs once the bytes are in the temp file, before the rename
    (fault injection uses it to die at that moment)."""
    if dtype not in ("fp32", "bf16"):
        raise UserError(f"model file dtype must be fp32 or bf16, not {dtype!r}")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:8] = [
        MODEL_MAGIC,
        VERSION_FP32 if dtype == "fp32" else VERSION_BF16,
        cfg.max_seq_len,
        cfg.vocab_size,
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        cfg.padded_vocab_size,
    ]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        for t in state_dict_to_llmc(state_dict, cfg):
            t = t.detach().to("cpu")
            if dtype == "fp32":
                f.write(t.float().contiguous().numpy().tobytes())
            else:
                f.write(t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes())
        f.flush()
        if on_written is not None:
            on_written(str(tmp))
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_llmc_header(path: str | os.PathLike) -> tuple[ModelConfig, int]:
    """Parse and check an llm.c model header: (config, version)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_INTS * 4)
        size = os.path.getsize(path)
    except OSError as e:
        raise UserError(f"cannot read model file {path}: {e.strerror or e}") from None
    if len(raw) < HEADER_INTS * 4:
        raise UserError(f"model file {path} is truncated ({size} bytes, shorter than its header)")
    h = np.frombuffer(raw, dtype="<i4")
    if h[0] != MODEL_MAGIC:
        raise UserError(f"{path} is not an llm.c model file: magic {int(h[0])}, expected {MODEL_MAGIC}")
    version = int(h[1])
    if version not in (VERSION_FP32, VERSION_BF16):
        raise UserError(f"model file {path} has version {version}; expected 3 (fp32) or 5 (bf16)")
    maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
    if Vp == 0:  # files older than padded vocab
        Vp = V
    fields = dict(n_layer=L, n_head=NH, n_embd=C, vocab_size=V, max_seq_len=maxT, padded_vocab_size=Vp)
    cfg = model_config_from_dict(ModelConfig, fields, f"model file {path}")
    expected = HEADER_INTS * 4 + cfg.num_parameters() * (4 if version == VERSION_FP32 else 2)
    if size != expected:
        raise UserError(
            f"model file {path} is {size} bytes but its header implies {expected}: "
            + ("it is truncated" if size < expected else "it has trailing data")
        )
    return cfg, version


def read_llmc_model(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read an llm.c model file into (config, our fp32 state dict)."""
    cfg, version = read_llmc_header(path)
    dtype = np.dtype("<f4") if version == VERSION_FP32 else np.dtype("<i2")
    data = np.memmap(path, dtype=dtype, mode="r", offset=HEADER_INTS * 4)
    tensors, offset = {}, 0
    for name, shape in llmc_tensor_shapes(cfg):
        n = int(np.prod(shape))
        chunk = torch.from_numpy(np.array(data[offset : offset + n]))
        if version == VERSION_BF16:
            chunk = chunk.view(torch.bfloat16).float()
        tensors[name] = chunk.view(shape)
        offset += n
    return cfg, llmc_to_state_dict(tensors, cfg)
