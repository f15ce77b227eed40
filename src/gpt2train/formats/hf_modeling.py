"""HuggingFace wrapper around gpt2train's model (``trust_remote_code=True``), for the models llm.c's GPT-2 layout
cannot hold (any architecture lever set).

``gpt2train export --to hf`` copies this file into the exported directory as ``modeling_gpt2train.py``, beside
a copy of ``gpt2train/model.py`` itself as ``gpt2train_model.py``: the architecture is written once, and the
directory works without gpt2train installed (it imports torch and transformers only). This file is not
imported from the gpt2train package (its relative import exists in the exported directory only).
Generation recomputes the whole context every token (no HF cache: ``use_cache`` is ignored).
"""

from __future__ import annotations

import torch.nn.functional as F
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .gpt2train_model import GPT


class Gpt2TrainConfig(PretrainedConfig):
    """gpt2train's ModelConfig fields (model.py's docstring says what each lever does)."""

    model_type = "gpt2train_modern"

    def __init__(self, n_layer=12, n_head=12, n_embd=768, vocab_size=50257, max_seq_len=1024, padded_vocab_size=50304,
                 pos="rotary", qk_norm=True, mlp="relu2", norm="rmsnorm", zero_init_proj=True, untied_head=True,
                 logit_softcap=15.0, rope_base=10000.0, **kwargs):  # fmt: skip
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.vocab_size, self.max_seq_len, self.padded_vocab_size = vocab_size, max_seq_len, padded_vocab_size
        self.pos, self.qk_norm, self.mlp, self.norm = pos, qk_norm, mlp, norm
        self.zero_init_proj, self.untied_head, self.logit_softcap, self.rope_base = (
            zero_init_proj, untied_head, logit_softcap, rope_base)  # fmt: skip
        kwargs.setdefault("tie_word_embeddings", False)  # a tied head reads wte directly; nothing to tie
        super().__init__(**kwargs)

    @property
    def bias(self) -> bool:  # as gpt2train's ModelConfig.bias
        return self.norm == "layernorm"


class Gpt2TrainForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = Gpt2TrainConfig
    base_model_prefix = "model"  # the weights are saved under GPT's own names, without this prefix
    _supports_cache_class = False

    def __init__(self, config):
        super().__init__(config)
        self.model = GPT(config)
        self.post_init()

    def _init_weights(self, module):  # the weights always come from the file; the rotary tables from the config
        if isinstance(module, GPT):
            module.init_rotary()

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids}

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        logits = self.model(input_ids).float()
        loss = None
        if labels is not None:  # labels are the inputs: shift by one, as HF's causal LMs do
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)  # fmt: skip
        return CausalLMOutputWithPast(loss=loss, logits=logits)


__all__ = ["Gpt2TrainConfig", "Gpt2TrainForCausalLM"]
