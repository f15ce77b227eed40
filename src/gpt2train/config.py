"""Model shapes (presets as llm.c names them) and the training configuration with its defaults.

The defaults of ``TrainConfig`` are llm.c's (train_gpt2.cu) unless a comment says otherwise;
they are documented here once and ``--help`` prints them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from gpt2train.errors import UserError

GPT2_VOCAB_SIZE = 50257

# llm.c's gpt2_build_from_random: depth -> (channels, heads)
GPT2_DEPTHS = {
    6: (384, 6),
    12: (768, 12),
    24: (1024, 16),
    36: (1280, 20),
    48: (1600, 25),
    60: (1920, 30),
    72: (2880, 30),
    84: (3072, 32),
}
# llm.c's gpt3_set_hyperparameters: channels -> (depth, head size); GPT-3 uses T=2048
GPT3_CHANNELS = {
    384: (6, 64),
    768: (12, 64),
    1024: (24, 64),
    1536: (24, 96),
    2048: (24, 128),
    2560: (32, 80),
    4096: (32, 128),
    5140: (40, 128),
    12288: (96, 128),
}


def pad_vocab(vocab_size: int, multiple: int = 128) -> int:
    """Vocabulary rounded up to a multiple of 128, as llm.c pads 50257 to 50304."""
    return ((vocab_size + multiple - 1) // multiple) * multiple


# Bounds of a model's shape: far beyond any model this trainer builds (gpt3:c12288 has 96 layers), tight enough
# that a shape read from a file cannot make a reader loop or allocate without end before it is checked.
SHAPE_LIMITS = {
    "n_layer": 1024,
    "n_head": 1024,
    "n_embd": 1 << 17,
    "vocab_size": 1 << 22,
    "padded_vocab_size": 1 << 22,
    "max_seq_len": 1 << 22,
}


def is_int(value) -> bool:
    """A JSON integer: an int that is not a bool (True is an int to Python, never to a file's schema)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite JSON number (int or float, not a bool)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _fits_type(value, type_name: str) -> bool:
    """Whether a JSON value has a dataclass field's type: ints are ints (not bools or 1.0), floats finite."""
    if type_name == "int":
        return is_int(value)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "float":
        return is_number(value)
    if type_name == "str":
        return isinstance(value, str)
    return True


def model_config_from_dict(cls: type[ModelConfig], fields: object, source: str) -> ModelConfig:
    """``cls(**fields)`` for fields read from the file ``source`` (a config.json, a model file's metadata), after
    checking each one's type; the ranges are ``cls``'s own checks. Unknown or mistyped fields, and impossible
    shapes, are a UserError naming the file."""
    if not isinstance(fields, dict):
        raise UserError(f"{source}: the model config is {type(fields).__name__}, not an object; re-create the file")
    known = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for name, value in fields.items():
        if name not in known:
            raise UserError(f"{source}: unknown model config field {name!r}; is the file from another program?")
        if not _fits_type(value, known[name]):
            raise UserError(f"{source}: model config field {name} is {value!r}, expected {known[name]}")
    try:
        return cls(**fields)
    except UserError as e:
        raise UserError(f"{source}: impossible model config: {e}") from None


@dataclass
class ModelConfig:
    """Shape of a GPT-2 model and its architecture levers (gpt2train.recipe). ``padded_vocab_size`` rows of wte
    exist; only ``vocab_size`` are predicted. The levers' defaults are classic GPT-2 (llm.c); model.py says what
    each one changes."""

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    vocab_size: int = GPT2_VOCAB_SIZE
    max_seq_len: int = 1024
    padded_vocab_size: int = 0  # 0: derived from vocab_size
    # the architecture levers
    pos: str = "learned"  # learned | rotary
    qk_norm: bool = False
    mlp: str = "gelu"  # gelu | relu2
    norm: str = "layernorm"  # layernorm | rmsnorm (parameter-free, and no biases)
    zero_init_proj: bool = False
    untied_head: bool = False
    logit_softcap: float = 0.0  # 0: off
    rope_base: float = 10000.0

    def __post_init__(self):
        if self.padded_vocab_size == 0 and isinstance(self.vocab_size, int):
            self.padded_vocab_size = pad_vocab(self.vocab_size)
        for name, limit in SHAPE_LIMITS.items():
            value = getattr(self, name)
            if not is_int(value) or not 1 <= value <= limit:
                raise UserError(f"{name} {value!r} must be an integer in 1..{limit}")
        if self.n_embd % self.n_head != 0:
            raise UserError(f"--n-embd {self.n_embd} is not divisible by --n-head {self.n_head}")
        if self.padded_vocab_size < self.vocab_size:
            raise UserError(f"padded vocab {self.padded_vocab_size} is smaller than vocab {self.vocab_size}")
        for name, value, allowed in (("--pos", self.pos, ("learned", "rotary")), ("--mlp", self.mlp, ("gelu", "relu2")),
                                     ("--norm", self.norm, ("layernorm", "rmsnorm"))):  # fmt: skip
            if value not in allowed:
                raise UserError(f"{name} {value!r}: use one of {', '.join(allowed)}")
        if self.pos == "rotary" and (self.n_embd // self.n_head) % 2:
            raise UserError(f"--pos rotary needs an even head size, not {self.n_embd // self.n_head}")
        if self.logit_softcap < 0:
            raise UserError(f"--logit-softcap {self.logit_softcap} must be >= 0")
        if not self.rope_base > 0:
            raise UserError(f"rope_base {self.rope_base} must be > 0")

    @property
    def classic(self) -> bool:
        """Every lever at its classic (llm.c) value: the model llm.c's .bin format holds."""
        return all(getattr(self, f.name) == f.default for f in dataclasses.fields(self) if f.name not in SHAPE_FIELDS)

    @property
    def bias(self) -> bool:
        """Whether the linear layers have biases (not with the parameter-free RMSNorm)."""
        return self.norm == "layernorm"

    @property
    def embed_std(self) -> float:
        """Init std of wte: N(0, 1) only when it is untied and normalised after the lookup."""
        return 1.0 if self.untied_head and self.norm == "rmsnorm" else 0.02

    def num_parameters(self) -> int:
        """All parameters, padded vocabulary rows included (llm.c's count for the classic model)."""
        C, L, Vp = self.n_embd, self.n_layer, self.padded_vocab_size
        b = 1 if self.bias else 0
        norms = 2 * C if self.norm == "layernorm" else 0  # a LayerNorm's weight and bias
        per_layer = (
            2 * norms + (3 * C * C + 3 * C * b) + (C * C + C * b) + (4 * C * C + 4 * C * b) + (4 * C * C + C * b)
        )
        n = Vp * C + L * per_layer + norms
        n += self.max_seq_len * C if self.pos == "learned" else 0
        n += Vp * C if self.untied_head else 0
        return n

    def flops_per_token(self, seq_len: int) -> int:
        """llm.c's MFU numerator: 6N + 6*L*C*T flops per token (forward and backward)."""
        return 6 * self.num_parameters() + 6 * self.n_layer * self.n_embd * seq_len

    def to_dict(self) -> dict:
        """The shape alone for a classic model (config.json and checkpoints as llm.c-compatible runs write them),
        every field otherwise."""
        fields = dataclasses.asdict(self)
        return {k: fields[k] for k in SHAPE_FIELDS} if self.classic else fields


SHAPE_FIELDS = ("n_layer", "n_head", "n_embd", "vocab_size", "max_seq_len", "padded_vocab_size")


_DEPTH_RE = re.compile(r"^(?:gpt2:)?d(\d+)$")
_GPT3_RE = re.compile(r"^gpt3:c(\d+)$")


def preset(descriptor: str) -> ModelConfig | None:
    """``dN`` / ``gpt2:dN`` / ``gpt3:cN`` -> ModelConfig; None if ``descriptor`` is not a preset name."""
    m = _DEPTH_RE.match(descriptor)
    if m:
        depth = int(m.group(1))
        if depth not in GPT2_DEPTHS:
            raise UserError(
                f"-e {descriptor}: unknown GPT-2 depth {depth}; use one of " + ", ".join(f"d{d}" for d in GPT2_DEPTHS)
            )
        channels, heads = GPT2_DEPTHS[depth]
        return ModelConfig(n_layer=depth, n_head=heads, n_embd=channels, max_seq_len=1024)
    m = _GPT3_RE.match(descriptor)
    if m:
        channels = int(m.group(1))
        if channels not in GPT3_CHANNELS:
            raise UserError(
                f"-e {descriptor}: unknown GPT-3 width {channels}; use one of "
                + ", ".join(f"gpt3:c{c}" for c in GPT3_CHANNELS)
            )
        depth, head_size = GPT3_CHANNELS[channels]
        return ModelConfig(n_layer=depth, n_head=channels // head_size, n_embd=channels, max_seq_len=2048)
    return None


def looks_like_preset(descriptor: str) -> bool:
    return bool(_DEPTH_RE.match(descriptor) or _GPT3_RE.match(descriptor) or descriptor.startswith("gpt3:"))


@dataclass
class TrainConfig:
    """Every setting of ``gpt2train train``. Short flags are llm.c's; defaults are llm.c's unless noted."""

    # data and files
    train_data: str = "dev/data/tinyshakespeare/tiny_shakespeare_train.bin"  # -i
    val_data: str = "dev/data/tinyshakespeare/tiny_shakespeare_val.bin"  # -j
    model: str = "d12"  # -e; llm.c's default is gpt2_124M_bf16.bin, ours builds a fresh d12
    output_dir: str | None = None  # -o; None: no main.log, no checkpoints
    # model shape overrides (for tests and experiments)
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    vocab_size: int | None = None
    max_seq_len: int | None = None
    # batch layout
    batch_size: int = 4  # -b, per process micro-batch B; 0 (-b auto): the largest that fits
    seq_len: int = 1024  # -t
    total_batch_size: int = -1  # -d, tokens per step; -1: B*T*world (no accumulation)
    # workload
    max_steps: int = -1  # -x; -1: one epoch of the train split
    # optimisation
    lr_schedule: str = "cosine"  # -k: cosine | linear | constant | wsd
    lr: float = 3e-4  # -l
    warmup_steps: int = 0  # -u
    final_lr_frac: float = 1.0  # -q
    weight_decay: float = 0.0  # -c
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    wsd_decay_frac: float = 0.2  # fraction of steps spent decaying in the wsd schedule
    skip_loss_z: float = 0.0  # -sl
    skip_grad_z: float = 0.0  # -sg
    outlier_window: int = 64  # steps in the -sl/-sg z-score window (llm.c: 64)
    max_skips: int = 10  # stop (non-zero exit) after this many skipped updates in a row (0: never)
    on_max_skips: str = "stop"  # at --max-skips: stop | rollback (reload the newest checkpoint, drop the bad batches)
    max_rollbacks: int = 3  # with --on-max-skips rollback: stop after this many rollbacks in one process
    seed: int = 42
    shuffle: bool = True  # the train loader permutes shards and samples per epoch
    # evaluation and sampling
    val_every: int = 20  # -v
    val_max_steps: int = 20  # -m; -1: the whole val split
    sample_every: int = 20  # -s
    gen_tokens: int = 64  # -g
    hellaswag: int = 0  # -h
    hellaswag_file: str | None = None
    # checkpoints
    checkpoint_every: int = 0  # -n
    checkpoints_keep: int = 0  # -nk
    major_checkpoint_every: int = 0  # -nm
    resume: int = 0  # -y
    model_file_dtype: str = "fp32"  # dtype of model_%08d.bin: fp32 (version 3) or bf16 (version 5)
    # debugging and numerics
    overfit_single_batch: int = 0  # -a
    tf32: int = 1  # -f
    master_weights: int = 1  # -w
    # 1: bf16 parameters, the fp32 master copy in the optimizer (llm.c's -w 1); -1 (auto): 1 for one process on
    # the CUDA fast path with -w 1, bf16 and AdamW, a resumed run's checkpoint setting, else 0
    bf16_params: int = -1
    gelu_fusion: int = -1  # -ge: 0 off, 1 GELU in the c_fc matmul epilogue, 2 also backward; -1: 2 on the fast path
    fp8: int = 0  # 1: the blocks' linear layers in FP8 (kernels/fp8_linear.py): CUDA capability >= 8.9, or the CPU
    # 1: the blocks' matmuls add each micro-step's weight gradient into .grad themselves (kernels/grad_accum.py, as
    # llm.c); one process only; -1 (auto): 1 on the fast path in one process with bf16 parameters and AdamW
    accumulate_in_matmul: int = -1
    zero_stage: int = 0  # -z
    grad_reduce_dtype: str = "fp32"  # dtype gradients are averaged over processes in: fp32 | bf16 (half the bytes)
    recompute: int = 1  # -r: 0 none, 1 GELU, 2 GELU and LayerNorm (llm.c's levels), 3 each block's sublayers whole
    # N: the first N blocks recomputed whole (as -r 3), the others at -r: fits a B that -r alone does not, at a
    # fraction of -r 3's cost (gpt2train plan -b B names the N); -1: the N that plan names for -b on this card
    recompute_whole: int = 0
    log_gpu_every: int = -1  # -lg
    # our own switches
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    compile: int = -1  # torch.compile; -1: on for CUDA
    compile_scope: str = "blocks"  # blocks: compile each transformer block (fast start); model: the whole model
    # torch.compile mode: default | max-autotune-no-cudagraphs (slower first start) | reduce-overhead (CUDA graphs:
    # measured no faster, BENCHMARKS.md round 18) | max-autotune
    compile_mode: str = "default"
    attention: str = "auto"  # SDPA backend on CUDA: auto | flash | cudnn | efficient | math
    fused_classifier: int = -1  # chunked output layer + cross-entropy; -1: on for CUDA
    classifier_chunk: int = 16384  # rows of logits the fused classifier holds at once (0: all rows)
    plain: bool = False  # switch every fast path off
    tensorboard: bool = True  # event files in the run dir when tensorboard is installed
    deterministic: int = 0  # 1: bit-reproducible GPU runs (deterministic kernels, a little slower)
    wandb: str | None = None  # Weights & Biases project (when wandb is installed)
    # the modern recipe (gpt2train.recipe documents each lever); None: the --recipe's value
    recipe: str = "classic"  # classic (llm.c) | modern
    optimizer: str | None = None  # adamw | muon
    pos: str | None = None  # learned | rotary
    qk_norm: int | None = None
    mlp: str | None = None  # gelu | relu2
    norm: str | None = None  # layernorm | rmsnorm
    zero_init_proj: int | None = None
    untied_head: int | None = None
    logit_softcap: float | None = None
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    head_lr: float | None = None  # AdamW lr of an untied head; None: the recipe's (classic: -l)
    embed_lr: float | None = None  # AdamW lr of an untied token embedding; None: the recipe's (classic: -l)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
