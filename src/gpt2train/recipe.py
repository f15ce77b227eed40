"""Recipes: ``--recipe classic`` (llm.c's GPT-2, the default) and ``--recipe modern`` (fewer tokens to a loss).

A recipe is a set of defaults for the levers below; each lever has its own flag, and a flag given
on the command line wins over the recipe. The classic values reproduce llm.c exactly (the classic
``model.GPT`` and AdamW are used whenever every architecture lever is classic).

| lever            | classic   | modern   | flag                 |
|------------------|-----------|----------|----------------------|
| optimizer        | adamw     | muon     | --optimizer          |
| pos              | learned   | rotary   | --pos                |
| qk_norm          | 0         | 1        | --qk-norm            |
| mlp              | gelu      | relu2    | --mlp                |
| norm             | layernorm | rmsnorm  | --norm               |
| zero_init_proj   | 0         | 1        | --zero-init-proj     |
| untied_head      | 0         | 1        | --untied-head        |
| logit_softcap    | 0         | 15       | --logit-softcap      |
| head_lr          | = -l      | 0.004    | --head-lr            |
| embed_lr         | = -l      | see below| --embed-lr           |

``--muon-lr`` (0.02) and ``--muon-momentum`` (0.95) apply whenever Muon is on, and so do ``--head-lr``
and ``--embed-lr`` (with ``--optimizer adamw`` every parameter gets -l). The embedding's lr defaults to
0.2 when the embedding is drawn from N(0, 1) (untied and RMS-normalised after the lookup), else to -l. The modern values
follow nanochat's GPT-2-size settings (Muon 0.02, momentum 0.95 Nesterov; Adam 0.2 for a N(0,1)
embedding and 0.004 for the head; soft-cap 15); nanochat trains with 4x our benchmark batch, so these
are on the careful side rather than tuned here.
"""

from __future__ import annotations

import dataclasses

from gpt2train.config import ModelConfig, TrainConfig
from gpt2train.errors import UserError

NORMALISED_EMBED_LR = 0.2  # AdamW lr of a N(0, 1) token embedding (nanochat's embedding_lr)
ARCH_LEVERS = ("pos", "qk_norm", "mlp", "norm", "zero_init_proj", "untied_head", "logit_softcap")
LEVERS = ("optimizer", *ARCH_LEVERS, "head_lr", "embed_lr")

RECIPES = {
    "classic": dict(optimizer="adamw", pos="learned", qk_norm=0, mlp="gelu", norm="layernorm", zero_init_proj=0,
                    untied_head=0, logit_softcap=0.0, head_lr=None, embed_lr=None),
    "modern": dict(optimizer="muon", pos="rotary", qk_norm=1, mlp="relu2", norm="rmsnorm", zero_init_proj=1,
                   untied_head=1, logit_softcap=15.0, head_lr=0.004, embed_lr=None),
}  # fmt: skip


def levers(cfg: TrainConfig) -> dict:
    """Every lever's value for this run: the flag if given, else the recipe's default."""
    if cfg.recipe not in RECIPES:
        raise UserError(f"--recipe {cfg.recipe!r}: use one of {', '.join(RECIPES)}")
    out = {}
    for key in LEVERS:
        value = getattr(cfg, key)
        out[key] = RECIPES[cfg.recipe][key] if value is None else value
    if out["optimizer"] not in ("adamw", "muon"):
        raise UserError(f"--optimizer {out['optimizer']!r}: use adamw or muon")
    return out


def recipe_of(mcfg: ModelConfig, optimizer: str) -> str | None:
    """The recipe whose every architecture lever ``mcfg`` has and whose optimizer is ``optimizer`` (None: a mix,
    which no speed rule was measured on)."""
    for name, recipe in RECIPES.items():
        if optimizer == recipe["optimizer"] and all(getattr(mcfg, k) == recipe[k] for k in ARCH_LEVERS):
            return name
    return None


def architecture(lv: dict) -> dict:
    """The architecture levers of ``lv`` (:func:`levers`) that differ from classic GPT-2 (empty: the classic model)."""
    classic = RECIPES["classic"]
    return {k: lv[k] for k in ARCH_LEVERS if lv[k] != classic[k]}


def apply_architecture(mcfg: ModelConfig, lv: dict) -> ModelConfig:
    """``mcfg`` itself when every architecture lever of ``lv`` is classic, else a model config of the same shape
    with those levers."""
    arch = architecture(lv)
    if not arch:
        return mcfg
    for key in _SWITCHES:
        if key in arch:
            arch[key] = bool(arch[key])
    return dataclasses.replace(mcfg, **arch)


def resolved_levers(lv: dict, mcfg: ModelConfig, lr: float) -> dict:
    """Every lever decided for a ResolvedConfig: the architecture levers the model really has (a resumed or
    pretrained model keeps its own), the optimizer, and the AdamW lrs of an untied head (the recipe's, else -l) and
    token embedding (the recipe's, else 0.2 for a N(0, 1) embedding: untied and RMS-normalised, else -l)."""
    out = {"optimizer": lv["optimizer"]}
    for key in ARCH_LEVERS:
        value = getattr(mcfg, key)
        out[key] = float(value) if key == "logit_softcap" else int(value) if key in _SWITCHES else value
    out["head_lr"] = lr if lv["head_lr"] is None else lv["head_lr"]
    normalised = mcfg.embed_std == 1.0
    out["embed_lr"] = lv["embed_lr"] if lv["embed_lr"] is not None else NORMALISED_EMBED_LR if normalised else lr
    return out


_SWITCHES = ("qk_norm", "zero_init_proj", "untied_head")
