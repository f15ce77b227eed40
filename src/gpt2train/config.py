"""Model shapes (presets as llm.c names them) and the training configuration with its defaults.

The defaults of ``TrainConfig`` are llm.c's (train_gpt2.cu) unless a comment says otherwise;
they are documented here once and ``--help`` prints them.
"""

from __future__ import annotations

import copy
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


def setting(default, *flags: str, help: str, metavar: str | None = None):
    """A TrainConfig field with its command-line flags (llm.c's short one first, if any, then the long option)
    and its help, written once: ``gpt2train train``'s parser and docs/training.md's flag table are built from
    them. A bool field's one flag is a switch that flips its default (``--no-shuffle``, ``--plain``)."""
    return field(default=default, metadata={"flags": flags, "help": help, "metavar": metavar})


# --fp8 -1 turns FP8 on from this width (n_embd): on an H200 it ran d48 (1,600) 1.20x and d36 (1,280) 1.12x as fast
# as our bf16 step, and d12 (768, with delayed scaling and the FP8 logits) 3.1-3.7% faster than bf16 blocks in two
# pairs of one sitting (22.8 ms in another), holding the loss check (BENCHMARKS.md, issue 21); narrower is not measured
FP8_AUTO_MIN_WIDTH = 768


@dataclass
class TrainConfig:
    """Every setting of ``gpt2train train``. Short flags are llm.c's; defaults are llm.c's unless the help says
    otherwise. "CUDA unless --plain" is the fast path that the -1 (auto) settings resolve on."""

    # data and files
    train_data: str = setting(
        "dev/data/tinyshakespeare/tiny_shakespeare_train.bin",
        "-i",
        "--train-data",
        help="train token shards, a glob pattern",
    )
    val_data: str = setting(
        "dev/data/tinyshakespeare/tiny_shakespeare_val.bin", "-j", "--val-data", help="val token shards, a glob pattern"
    )
    model: str = setting(
        "d12",
        "-e",
        "--model",
        help="a preset (dN or gpt2:dN for N = 6, 12, 24, 36, 48, 60, 72, 84; gpt3:cN), an llm.c .bin, a run dir or a "
        "HuggingFace GPT-2 dir; llm.c's default is gpt2_124M_bf16.bin, ours builds a fresh d12",
    )
    output_dir: str | None = setting(
        None,
        "-o",
        "--output-dir",
        help="run dir: main.log, progress.jsonl, config.json, checkpoints (none: no logging, no checkpoints)",
    )
    # model shape overrides (for tests and experiments)
    n_layer: int | None = setting(None, "--n-layer", help="override the preset's layers")
    n_head: int | None = setting(None, "--n-head", help="override the preset's heads")
    n_embd: int | None = setting(None, "--n-embd", help="override the preset's channels")
    vocab_size: int | None = setting(
        None, "--vocab-size", help="override the vocabulary size (padded to a multiple of 128)"
    )
    max_seq_len: int | None = setting(None, "--max-seq-len", help="override the maximum sequence length")
    # batch layout
    batch_size: int = setting(
        4,
        "-b",
        "--batch-size",
        help="micro-batch size B per process; auto (stored as 0): the largest B that fits and divides -d, probed with "
        "real forward and backward passes, the optimizer state the first update allocates held aside",
    )
    seq_len: int = setting(1024, "-t", "--seq-len", help="sequence length T")
    total_batch_size: int = setting(
        -1,
        "-d",
        "--total-batch-size",
        help="tokens per step; gradient accumulation = d / (B*T*processes); -1: B*T*processes (no accumulation)",
    )
    # workload
    max_steps: int = setting(
        -1,
        "-x",
        "--max-steps",
        help="optimisation steps, counted from 0 (-x 60 runs steps 0..59); -1: one epoch of the train split",
    )
    # optimisation
    lr_schedule: str = setting(
        "cosine",
        "-k",
        "--lr-schedule",
        help="learning-rate schedule from -l to -q times -l: cosine | linear | constant | wsd",
    )
    lr: float = setting(3e-4, "-l", "--lr", help="peak learning rate")
    warmup_steps: int = setting(0, "-u", "--warmup-steps", help="linear warmup steps")
    final_lr_frac: float = setting(1.0, "-q", "--final-lr-frac", help="final learning rate as a fraction of -l")
    weight_decay: float = setting(0.0, "-c", "--weight-decay", help="AdamW weight decay (2-D weights only)")
    beta1: float = setting(0.9, "--beta1", help="AdamW beta1 (hard-coded in llm.c)")
    beta2: float = setting(0.95, "--beta2", help="AdamW beta2 (hard-coded in llm.c)")
    eps: float = setting(1e-8, "--eps", help="AdamW epsilon (hard-coded in llm.c)")
    grad_clip: float = setting(1.0, "--grad-clip", help="clip the global gradient norm to this (hard-coded in llm.c)")
    wsd_decay_frac: float = setting(
        0.2, "--wsd-decay-frac", help="fraction of steps spent decaying in the wsd schedule"
    )
    skip_loss_z: float = setting(
        0.0,
        "-sl",
        "--skip-loss-z",
        help="skip the update when the loss z-score over the --outlier-window exceeds this (0: off)",
    )
    skip_grad_z: float = setting(
        0.0,
        "-sg",
        "--skip-grad-z",
        help="skip the update when the grad-norm z-score over the --outlier-window exceeds this (0: off)",
    )
    outlier_window: int = setting(64, "--outlier-window", help="steps in the -sl/-sg z-score window (llm.c: 64)")
    max_skips: int = setting(
        10,
        "--max-skips",
        help="stop with an error after this many skipped updates in a row (0: never); a run that applied no update "
        "exits 1 whatever this is (docs/faults.md)",
    )
    on_max_skips: str = setting(
        "stop",
        "--on-max-skips",
        help="at --max-skips: stop | rollback (reload the newest checkpoint, drop the bad batches; needs -o and -n)",
    )
    max_rollbacks: int = setting(
        3, "--max-rollbacks", help="with --on-max-skips rollback: stop after this many rollbacks in one process"
    )
    seed: int = setting(42, "--seed", help="seed of the initialisation and the data order")
    shuffle: bool = setting(
        True,
        "--no-shuffle",
        help="read the train data in order (by default the loader permutes shards and sequences per epoch)",
    )
    # evaluation and sampling
    val_every: int = setting(20, "-v", "--val-every", help="val loss every N steps (and at 0 and the end)")
    val_max_steps: int = setting(
        20,
        "-m",
        "--val-max-steps",
        help="val batches of B*T tokens, from the start of the val split (-1: the whole split)",
    )
    sample_every: int = setting(20, "-s", "--sample-every", help="print a sample every N steps (0: never)")
    gen_tokens: int = setting(64, "-g", "--gen-tokens", help="tokens per sample")
    hellaswag: int = setting(0, "-h", "--hellaswag", help="1: HellaSwag accuracy with every val loss (--help is help)")
    hellaswag_file: str | None = setting(
        None, "--hellaswag-file", help="HellaSwag jsonl (none: where `gpt2train prepare hellaswag` puts it)"
    )
    # checkpoints
    checkpoint_every: int = setting(0, "-n", "--checkpoint-every", help="write a checkpoint every N steps (0: never)")
    checkpoints_keep: int = setting(0, "-nk", "--checkpoints-keep", help="keep the newest N checkpoints (0: keep all)")
    major_checkpoint_every: int = setting(
        0, "-nm", "--major-checkpoint-every", help="checkpoints at multiples of N are never deleted"
    )
    resume: int = setting(
        0, "-y", "--resume", help="1: resume from the newest complete checkpoint in -o (fresh if none)"
    )
    model_file_dtype: str = setting(
        "fp32", "--model-file-dtype", help="precision of model_%08d.bin: fp32 (version 3) or bf16 (version 5)"
    )
    # debugging and numerics
    overfit_single_batch: int = setting(
        0, "-a", "--overfit-single-batch", help="1: train on the first val batch only (debugging)"
    )
    tf32: int = setting(1, "-f", "--tf32", help="1: TF32 matmuls for fp32 work on CUDA")
    master_weights: int = setting(
        1, "-w", "--master-weights", help="1: fp32 master weights; 0: bf16 weights, stochastic rounding"
    )
    bf16_params: int = setting(
        -1,
        "-bp",
        "--bf16-params",
        help="1: bf16 parameters, the fp32 master copy in the optimizer (llm.c's -w 1 layout: 16 bytes per parameter, "
        "no saved bf16 casts of the weights); needs -w 1, bf16 and AdamW; -1: a resumed run's checkpoint setting, "
        "else 1 in one process on CUDA unless --plain with -w 1, bf16 and AdamW, else 0",
    )
    gelu_fusion: int = setting(
        -1,
        "-ge",
        "--gelu-fusion",
        help="GELU in c_fc's cuBLASLt matmul epilogue: 1 forward, 2 also backward, 0 off; only in blocks at -r 0 (-r 1"
        " and up keep their own GELU) and not with --fp8; -1: 2 on CUDA unless --plain, else 0",
    )
    fp8: int = setting(
        -1,
        "--fp8",
        help="1: the blocks' linear layers in FP8 with per-tensor scaling (CUDA capability 8.9+, or the CPU, emulated;"
        " docs/fast-paths.md); 2: the gradient matmuls in FP8's fast accumulation too (faster, fails the loss check);"
        " 0: bf16; -1: 1 where it was measured faster at the same loss (one process on the fast path of a Hopper "
        f"GPU, a model of {FP8_AUTO_MIN_WIDTH}+ channels such as d12 and d48 trained by one recipe whole, classic "
        "(AdamW) or modern (Muon), -r 0 or 1), a resumed run its checkpoint's, else 0",
    )
    fp8_impl: str = setting(
        "ours",
        "--fp8-impl",
        help="whose FP8 linears --fp8 swaps in: ours (kernels/fp8_linear.py, per-tensor scales), torchao-tensorwise "
        "or torchao-rowwise (torchao's float8 training, the maintained reference; rowwise: a scale per row; extra "
        "fp8: pip install 'gpt2train[fp8]'; --fp8 1 and 2 are the same there)",
    )
    fp8_bf16: str = setting(
        "",
        "--fp8-bf16",
        help="with --fp8: what stays in bf16, a comma list of linears (attn, mlp, or one of attn.c_attn, attn.c_proj,"
        " mlp.c_fc, mlp.c_proj, in every block), blocks (first, last: all four linears of the first or last "
        "block) and weight-grads (the FP8 linears' weight-gradient matmuls, dW = dy.T @ x, from bf16 dy; ours "
        "only); e.g. mlp.c_proj,first,last",
    )
    fp8_cast_kernel: int = setting(
        -1,
        "--fp8-cast-kernel",
        help="with --fp8 (ours): 1 casts each FP8 operand in one Triton pass that writes it and its transpose "
        "(kernels/fp8_cast.py; fp32 ones, the LayerNorm outputs and weights, rounded to bf16 first), 2: the same "
        "bytes, each cast compiled by Inductor into its operand's producer and only the transposed copy by the "
        "kernel (8-12% slower than 1 on an H200), 0: Inductor compiles every cast from the operand as it is; -1: 1 "
        "with --fp8 (ours) on CUDA, else 0",
    )
    fp8_scaling: str = setting(
        "auto",
        "--fp8-scaling",
        help="with --fp8 (ours): how the inputs' and output gradients' scales are found; dynamic: from each tensor's"
        " own largest value (a pass over it first), delayed: from the largest of the previous 16 micro-steps' "
        "(TransformerEngine's recipe; with the cast kernel the cast records it, no extra pass; checkpoints keep "
        "them; d48's step 2% faster on an H200, the loss check held in two sittings); auto: delayed in one process,"
        " dynamic in several (each keeps its own amaxes, which only rank 0's checkpoint would keep), a resumed run "
        "its checkpoint's; weights: always their own",
    )
    fp8_grad: str = setting(
        "e4m3",
        "--fp8-grad",
        help="with --fp8 (ours): the float8 format of the output gradients; e4m3 (3 mantissa bits) held the 200-step "
        "loss check in three sittings, e5m2 (2 bits, more range, the usual choice) cost 0.007 on average "
        "(BENCHMARKS.md, issue 21); the same speed",
    )
    fp8_cache_weights: int = setting(
        0,
        "--fp8-cache-weights",
        help="with --fp8 (ours), in one process: 1 casts the weights to FP8 once a step, before its micro-steps, and "
        "keeps the copies (the same bytes; an e4m3 copy of the blocks' linear weights more in memory, 1.5 GB at d48)"
        ", where 0 casts them in every micro-step's forward (as fast on an H200, d12 and d48)",
    )
    fp8_gelu_cast: int = setting(
        -1,
        "--fp8-gelu-cast",
        help="with --fp8 (ours), delayed scaling and the cast kernel: 1 computes the MLP's activation (GELU, or ReLU² "
        "under --mlp relu2) inside the FP8 casts around it (c_fc's output straight to c_proj's e4m3 input; in "
        "backward, its derivative and c_fc's bias gradient inside the cast of c_fc's output gradient; "
        "kernels/fp8_fused.py; GELU's: d12's step 3.5-3.7% faster on an H200, the loss check held in two sittings; "
        "ReLU²'s: not yet run on a GPU), 0: the activation and its backward compiled by Inductor between the casts; "
        "-1: 1 for a GELU MLP where it can run (a resumed run: its checkpoint's), else 0",
    )
    fp8_qkv_cast: int = setting(
        0,
        "--fp8-qkv-cast",
        help="with --fp8 (ours), delayed scaling and the cast kernel: 1 gathers attention's q, k and v gradients "
        "inside the FP8 cast of c_attn's output gradient, with its bias gradient (kernels/fp8_fused.py), where 0 lets "
        "autograd concatenate them first (no faster on an H200: d12 825.0 against 823.0-824.1 ms/step, BENCHMARKS.md)",
    )
    fp8_norm_cast: int = setting(
        0,
        "--fp8-norm-cast",
        help="with --fp8 (ours), delayed scaling and the cast kernel: 1 computes ln_1 and ln_2 inside the FP8 casts of "
        "c_attn's and c_fc's inputs, ln_2 with the residual add before it (kernels/fp8_layernorm.py: the LayerNorm's "
        "output is never written in bf16), where 0 lets Inductor compute them and the cast kernel read them again (no "
        "faster on an H200: d12 842.7-843.9 against 833.7-834.9 ms/step, d48 level; BENCHMARKS.md)",
    )
    fp8_classifier: int = setting(
        -1,
        "--fp8-classifier",
        help="the fused classifier's matmuls in FP8 (needs a GPU with FP8 matmuls, or the CPU, emulated); 2: the "
        "logits' from e4m3 copies of x and W, the gradient's two in bf16 (d12's step 1.02x as fast on an H200, d48's "
        "up to 1.01x; the 200-step loss check held in two sittings beside bf16 blocks and two beside FP8 ones); 1: "
        "all three, the gradient in e5m2 at a fixed scale (beside bf16 blocks 1.05x, beside FP8 blocks 22.5-30.4 ms "
        "off d12's step; the loss check held in two sittings of four, failed twice, +0.0125 and +0.0106; "
        "docs/fast-paths.md); 3: as 1 with that gradient rounded to e5m2 stochastically (unbiased; 7 ms off d12's "
        "step, failed its first loss check, +0.0153); 4: as 1 with each row's target term (the gradient's largest "
        "entry) kept out of the float8 gradient and added exactly, and dx's copy of it in e4m3 scaled row by row (26 "
        "ms off d12's step, 30 off d48's; its first two versions failed the loss check, +0.0180 and +0.0194, the "
        "third held it twice, -0.0002 and +0.0086); 0: bf16; -1: in one process on a Hopper GPU with the fused "
        "classifier, 4 beside FP8 blocks without a logit soft-cap (d12's and d48's default) and 2 elsewhere (bf16 "
        "blocks, the modern recipe); a resumed run its checkpoint's; else 0. The evaluation loss always comes from "
        "bf16 logits",
    )
    accumulate_in_matmul: int = setting(
        -1,
        "--accumulate-in-matmul",
        help="1: the blocks' matmuls add each micro-step's weight gradients into .grad themselves (as llm.c; one "
        "process only; never in blocks recomputed whole); 0: autograd sums them; -1: 1 in one process on CUDA "
        "unless --plain with bf16 parameters (--bf16-params or -w 0), AdamW and -r below 3, else 0",
    )
    zero_stage: int = setting(
        0, "-z", "--zero-stage", help="0: replicated optimizer; 1: ZeRO-1, optimizer state sharded over processes"
    )
    grad_reduce_dtype: str = setting(
        "fp32",
        "--grad-reduce-dtype",
        help="dtype gradients are averaged over processes in: fp32 | bf16 (half the bytes; docs/multi-gpu.md)",
    )
    recompute: int = setting(
        1,
        "-r",
        "--recompute",
        help="activation recomputation: 0 none, 1 GELU, 2 GELU and LayerNorm (llm.c's levels), 3 each block's "
        "sublayers whole (the least memory)",
    )
    recompute_whole: int = setting(
        0,
        "--recompute-whole",
        help="the first N blocks recomputed whole (as -r 3), the others at -r: fits a -b that -r alone does not, at a "
        "fraction of -r 3's cost (gpt2train plan -b B names the N); -1: the N that plan names for -b on this card"
        " (0 off CUDA, at -r 3 or when no N fits; needs -b B, not auto); with --fp8 those blocks keep bf16 linears",
    )
    log_gpu_every: int = setting(
        -1,
        "-lg",
        "--log-gpu-every",
        help="a line of GPU utilisation, memory, power and temperature every N steps (0 or -1: off)",
    )
    # our own switches
    device: str = setting("auto", "--device", help="auto (CUDA when available, else the CPU) | cpu | cuda")
    dtype: str = setting("auto", "--dtype", help="auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32")
    compile: int = setting(-1, "--compile", help="torch.compile: 1 on, 0 off; -1: 1 on CUDA unless --plain, else 0")
    compile_scope: str = setting(
        "blocks", "--compile-scope", help="blocks: compile each transformer block (fast start) | model: the whole model"
    )
    compile_mode: str = setting(
        "default",
        "--compile-mode",
        help="torch.compile mode: default | max-autotune-no-cudagraphs (slower first start) | reduce-overhead (CUDA "
        "graphs, more memory: 4-20 ms off d12's step on an H200 and 1.4-1.9 s onto its warm start, none at d48, "
        "BENCHMARKS.md) | max-autotune",
    )
    attention: str = setting(
        "auto", "--attention", help="SDPA backend on CUDA: auto | flash | cudnn | efficient | math"
    )
    fused_classifier: int = setting(
        -1,
        "--fused-classifier",
        help="chunked output layer + cross-entropy: 1 on, 0 off; -1: 1 on CUDA unless --plain, else 0",
    )
    classifier_chunk: int = setting(
        16384, "--classifier-chunk", help="rows of logits the fused classifier holds at once (0: all rows)"
    )
    plain: bool = setting(
        False, "--plain", help="switch every fast path off (plain PyTorch): the -1 settings resolve as they do off CUDA"
    )
    tensorboard: bool = setting(
        True,
        "--no-tensorboard",
        help="no TensorBoard event files (by default in the run dir when tensorboard is installed)",
    )
    deterministic: int = setting(
        0,
        "--deterministic",
        help="1: deterministic kernels, bit-identical GPU runs (a little slower; docs/determinism.md)",
    )
    wandb: str | None = setting(
        None,
        "--wandb",
        metavar="PROJECT",
        help="also log to this Weights & Biases project (extra wandb: pip install 'gpt2train[wandb]'); -y 1 resumes "
        "its run",
    )
    # the modern recipe (gpt2train.recipe documents each lever); none: the --recipe's value
    recipe: str = setting(
        "classic",
        "--recipe",
        help="classic (llm.c's GPT-2) | modern (Muon, rotary, QK-norm, ...): the defaults of the levers below",
    )
    optimizer: str | None = setting(
        None,
        "--optimizer",
        help="adamw | muon (Muon for the hidden matrices, AdamW for the rest); none: the --recipe's",
    )
    pos: str | None = setting(None, "--pos", help="position encoding: learned | rotary; none: the --recipe's")
    qk_norm: int | None = setting(None, "--qk-norm", help="1: RMS-normalise queries and keys; none: the --recipe's")
    mlp: str | None = setting(None, "--mlp", help="MLP activation: gelu | relu2; none: the --recipe's")
    norm: str | None = setting(
        None, "--norm", help="layernorm | rmsnorm (parameter-free, no biases); none: the --recipe's"
    )
    zero_init_proj: int | None = setting(
        None, "--zero-init-proj", help="1: output projections and an untied head start at zero; none: the --recipe's"
    )
    untied_head: int | None = setting(
        None, "--untied-head", help="1: an output layer of its own instead of wte; none: the --recipe's"
    )
    logit_softcap: float | None = setting(
        None, "--logit-softcap", help="squash logits to (-c, c) with c*tanh(x/c), 0: off; none: the --recipe's"
    )
    muon_lr: float = setting(0.02, "--muon-lr", help="Muon peak lr of the hidden matrices (whenever Muon is on)")
    muon_momentum: float = setting(0.95, "--muon-momentum", help="Muon momentum (Nesterov)")
    head_lr: float | None = setting(
        None, "--head-lr", help="AdamW peak lr of an untied head; none: the --recipe's (classic: -l)"
    )
    embed_lr: float | None = setting(
        None, "--embed-lr", help="AdamW peak lr of an untied token embedding; none: the --recipe's (classic: -l)"
    )
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- the resolved configuration ----------------------------------------------------------------------------
# resolve() turns a TrainConfig (what was asked) and an Environment (what the process and the run dir say) into a
# ResolvedConfig (what runs): every flag checked, every auto setting decided, once. config.json and the
# checkpoints record it, so a run's files say what it did rather than what it was asked.


@dataclass(frozen=True)
class Environment:
    """What resolve() needs to know of the process and the run dir (train/build.py's ``environment`` makes it)."""

    device: object  # the torch.device this process trains on
    rank: int = 0
    world_size: int = 1
    gpu_memory: int | None = None  # total bytes of the GPU; None off CUDA
    fp8_supported: bool = False
    gpu_capability: tuple[int, int] | None = None  # CUDA compute capability ((9, 0) for Hopper); None off CUDA
    resume_step: int | None = None  # the checkpoint -y 1 resumes from (None: a fresh run)
    resume_config: dict | None = None  # that checkpoint's recorded train config
    resume_model: ModelConfig | None = None  # its model
    pretrained_model: ModelConfig | None = None  # the model of -e FILE (None for a preset or a resume)


# the settings resolve() decides (-1, "auto" or None in a TrainConfig); a ResolvedConfig holds none of those
AUTO_FIELDS = ("device", "dtype", "bf16_params", "gelu_fusion", "accumulate_in_matmul", "compile", "fused_classifier",
               "recompute_whole", "optimizer", "pos", "qk_norm", "mlp", "norm", "zero_init_proj", "untied_head",
               "logit_softcap", "head_lr", "embed_lr", "fp8", "fp8_cast_kernel", "fp8_scaling", "fp8_classifier",
               "fp8_gelu_cast")  # fmt: skip
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _train_dict(self) -> dict:
    """The TrainConfig fields only: config.json's "train" object and the checkpoints' "config"."""
    return {name: copy.deepcopy(getattr(self, name)) for name in TRAIN_FIELDS}


# TrainConfig's fields (each decided) plus what resolve() derives; generated so the names are written once
ResolvedConfig = dataclasses.make_dataclass(
    "ResolvedConfig",
    [(f.name, f.type) for f in dataclasses.fields(TrainConfig)]
    + [("model_config", "ModelConfig"), ("init_source", "str"), ("fast", "bool"), ("notes", "tuple")],
    frozen=True,
    namespace={
        "__doc__": "A TrainConfig with every auto setting decided (AUTO_FIELDS), plus ``model_config`` (the model "
        "to train), ``init_source`` (where its weights come from), ``fast`` (the CUDA fast path) and ``notes`` (lines "
        "saying what was decided that the run prints at its start).",
        "to_dict": _train_dict,
    },
)


def resolve(cfg: TrainConfig, env: Environment) -> ResolvedConfig:
    """Check every setting (a UserError with one line for the first one wrong) and decide every auto one."""
    from gpt2train import recipe

    lv = recipe.levers(cfg)
    _check_flags(cfg, env, lv)
    mcfg, init_source = _model_config(cfg, env, lv)
    if cfg.seq_len > mcfg.max_seq_len:
        raise UserError(f"-t {cfg.seq_len} exceeds the model's max sequence length {mcfg.max_seq_len}")
    on_cuda = env.device.type == "cuda"
    fast = on_cuda and not cfg.plain  # the fast paths: fused kernels, torch.compile, bf16 parameters
    several = env.world_size > 1
    notes = []

    dtype = cfg.dtype if cfg.dtype != "auto" else ("bf16" if on_cuda else "fp32")
    if dtype not in ("bf16", "fp32"):
        raise UserError(f"--dtype {dtype!r}: use auto, bf16 or fp32")
    bf16_params = cfg.bf16_params
    if bf16_params == -1:
        bf16_params = auto_bf16_params(cfg, env, dtype, lv["optimizer"])
    if not cfg.master_weights or bf16_params:
        if dtype != "bf16":
            what = ("--bf16-params 1 (bf16 parameters, the fp32 master copy in the optimizer)" if bf16_params
                    else "-w 0 (bf16 weights without an fp32 master copy)")  # fmt: skip
            fix = "add --dtype bf16" if cfg.dtype == "auto" else "drop --dtype fp32"
            raise UserError(f"{what} needs bf16: {fix}")

    fp8 = cfg.fp8
    if fp8 == -1:
        fp8 = auto_fp8(cfg, env, mcfg, fast, dtype, lv["optimizer"])
        if fp8:
            notes.append("--fp8 -1: FP8 matmuls in the blocks' linears (1.2x the bf16 step at d48 on an H200, at the "
                         "same loss; BENCHMARKS.md); --fp8 0 for bf16")  # fmt: skip
    _check_fp8(cfg, env, fp8)

    fused_classifier = int(cfg.fused_classifier == 1 or (cfg.fused_classifier == -1 and fast))
    fp8_classifier = cfg.fp8_classifier
    if fp8_classifier == -1:
        fp8_classifier = auto_fp8_classifier(env, bool(fused_classifier), bool(fp8), mcfg.logit_softcap)
        if fp8_classifier and env.resume_config is None:
            what = ("matmuls, its gradient's too" if fp8_classifier in FP8_CLASSIFIER_GRAD_MODES
                    else "logits' matmul")  # fmt: skip
            notes.append(f"--fp8-classifier -1: the output layer's {what} in FP8 (--fp8-classifier {fp8_classifier}; "
                         "faster at the same loss on an H200, BENCHMARKS.md); --fp8-classifier 0 for bf16")  # fmt: skip
    elif fp8_classifier and not (fused_classifier and env.fp8_supported):
        why = (f"{env.device} has no FP8 matmuls (needs CUDA capability 8.9+, e.g. an H100)" if not env.fp8_supported
               else "its matmuls are the fused classifier's, which is off here: add --fused-classifier 1")  # fmt: skip
        raise UserError(f"--fp8-classifier {fp8_classifier}: {why}, or drop --fp8-classifier")

    recompute_whole = cfg.recompute_whole
    if recompute_whole == -1:  # the planner's fewest blocks for -b on this card
        from gpt2train.train import memory

        settings = memory.settings(cfg, env.world_size, bf16_params=bf16_params, fp8=fp8,
                                   fp8_classifier=fp8_classifier)  # fmt: skip
        recompute_whole = memory.whole_blocks_needed(mcfg, cfg.seq_len, settings, env.gpu_memory, cfg.batch_size) or 0
        if recompute_whole:
            notes.append(f"--recompute-whole -1: the first {recompute_whole} of {mcfg.n_layer} blocks recomputed "
                         f"whole, so that -b {cfg.batch_size} fits (gpt2train plan's estimate)")  # fmt: skip
    if recompute_whole > mcfg.n_layer:
        raise UserError(f"--recompute-whole {recompute_whole}: the model has {mcfg.n_layer} blocks; use at most that "
                        "many (or -r 3 for all)")  # fmt: skip

    # -ge as llm.c's: 1 GELU in c_fc's cuBLASLt epilogue, 2 also in the backward one (the fastest on an H100,
    # BENCHMARKS.md); its epilogues are bf16 GELU with a bias, so neither FP8 nor a relu2 or bias-free MLP has them
    gelu_fusion = cfg.gelu_fusion if cfg.gelu_fusion >= 0 else 2 * int(fast)
    if fp8 or mcfg.mlp != "gelu" or not mcfg.bias:
        gelu_fusion = 0
    accumulate = cfg.accumulate_in_matmul
    if accumulate == -1:
        accumulate = auto_accumulate_in_matmul(bf16_params, cfg.master_weights, cfg.recompute, lv["optimizer"], fast,
                                               several)  # fmt: skip
    elif accumulate == 1 and cfg.recompute == 3:
        notes.append("warning: --accumulate-in-matmul 1 with -r 3: blocks recomputed whole leave the gradient sums "
                     "to autograd (compiled on CUDA, the recompute would keep every matmul's input)")  # fmt: skip

    fp8_scaling = cfg.fp8_scaling
    if fp8_scaling == "auto":
        fp8_scaling = auto_fp8_scaling(env, bool(fp8) and cfg.fp8_impl == "ours")
    fp8_cast_kernel = cfg.fp8_cast_kernel
    if fp8_cast_kernel == -1:  # the one-pass casts: faster than Inductor's and as accurate (BENCHMARKS.md, issue 21)
        fp8_cast_kernel = int(bool(fp8) and cfg.fp8_impl == "ours" and on_cuda)
    # the casts that compute (GELU's, the gather of q, k and v's gradients) need our FP8 with the scales known before
    # the cast (delayed), the cast kernel, and FP8 weight gradients (--fp8-bf16 weight-grads wants dy in bf16)
    fused_casts_run = (bool(fp8) and cfg.fp8_impl == "ours" and fp8_scaling == "delayed" and fp8_cast_kernel == 1
                       and "weight-grads" not in fp8_bf16_parts(cfg.fp8_bf16))  # fmt: skip
    needs = "add --fp8 1 --fp8-scaling delayed --fp8-cast-kernel 1 (without --fp8-bf16 weight-grads), or drop it"
    fp8_gelu_cast = cfg.fp8_gelu_cast
    if fp8_gelu_cast == -1:
        fp8_gelu_cast = auto_fp8_gelu_cast(env, fused_casts_run and mcfg.mlp == "gelu")
    elif fp8_gelu_cast and not fused_casts_run:
        raise UserError(f"--fp8-gelu-cast 1 computes the MLP's activation inside our FP8 linears' casts: {needs}")
    if cfg.fp8_qkv_cast and not fused_casts_run:
        raise UserError(f"--fp8-qkv-cast 1 gathers q, k and v's gradients inside our FP8 linears' cast: {needs}")
    if cfg.fp8_norm_cast and not (fused_casts_run and mcfg.norm == "layernorm"):
        raise UserError(f"--fp8-norm-cast 1 computes the LayerNorms inside our FP8 linears' casts: {needs}")
    decided = dict(
        device=env.device.type,
        dtype=dtype,
        bf16_params=int(bf16_params),
        gelu_fusion=gelu_fusion,
        accumulate_in_matmul=int(accumulate),
        fp8=fp8,
        fp8_cast_kernel=fp8_cast_kernel,
        fp8_scaling=fp8_scaling,
        fp8_gelu_cast=int(fp8_gelu_cast),
        compile=cfg.compile if cfg.compile != -1 else int(fast),  # -1: on with the fast path
        fused_classifier=fused_classifier,
        fp8_classifier=fp8_classifier,
        recompute_whole=recompute_whole,
        fp8_bf16=",".join(fp8_bf16_parts(cfg.fp8_bf16)),
        **recipe.resolved_levers(lv, mcfg, cfg.lr),
    )
    return ResolvedConfig(**{**cfg.to_dict(), **decided}, model_config=mcfg, init_source=init_source, fast=fast,
                          notes=tuple(notes))  # fmt: skip


def _resumed_setting(env: Environment, key: str, choices: tuple, before):
    """What a resumed run's checkpoint recorded for the auto setting ``key`` (``before``, the setting's old default,
    where it recorded none or a value outside ``choices``); None for a new run, which applies the setting's rule."""
    if env.resume_config is None:
        return None
    saved = env.resume_config.get(key, before)
    return saved if saved in choices else before


def _hopper(env: Environment) -> bool:
    return env.gpu_capability is not None and env.gpu_capability[0] == 9


def auto_bf16_params(cfg: TrainConfig, env: Environment, dtype: str, optimizer: str) -> int:
    """``--bf16-params -1``: a resumed run keeps its checkpoint's layout; a new one takes :func:`bf16_params_rule`."""
    if (saved := _resumed_setting(env, "bf16_params", (0, 1), 0)) is not None:
        return saved
    fast = env.device.type == "cuda" and not cfg.plain
    return bf16_params_rule(fast, env.world_size, cfg.master_weights, dtype, optimizer)


def bf16_params_rule(fast: bool, world_size: int, master_weights: int, dtype: str, optimizer: str) -> int:
    """llm.c's layout (bf16 parameters, fp32 master in the optimizer: faster and smaller, BENCHMARKS.md) in one
    process on the fast path with -w 1, bf16 and AdamW. Several processes keep fp32 parameters: DDP and ZeRO-1 hold
    the gradients in buckets that the flat one-launch update does not cover yet. (``gpt2train plan`` applies it too.)"""
    return int(fast and world_size == 1 and master_weights == 1 and dtype == "bf16" and optimizer == "adamw")


def auto_fp8(cfg: TrainConfig, env: Environment, mcfg: ModelConfig, fast: bool, dtype: str, optimizer: str) -> int:
    """``--fp8 -1``: a resumed run keeps its checkpoint's; a new one takes our FP8 linears (1) where they were
    measured faster at the same loss: one process on the fast path of a Hopper GPU (capability 9.x; others are not
    measured), a model of FP8_AUTO_MIN_WIDTH+ channels in bf16 trained by one recipe whole (classic: AdamW; modern:
    Muon and its architecture), at -r 0 or 1 without blocks recomputed whole (there FP8 keeps its own saved copies,
    so deeper recompute would need more whole blocks than bf16's). Else 0."""
    if not (fast and env.fp8_supported) or cfg.fp8_impl != "ours":
        return 0
    if (saved := _resumed_setting(env, "fp8", (0, 1, 2), 0)) is not None:
        return saved
    return fp8_rule(_hopper(env), env.world_size, mcfg, optimizer, dtype, cfg.recompute, cfg.recompute_whole)


def auto_fp8_scaling(env: Environment, ours: bool) -> str:
    """``--fp8-scaling auto``: a resumed run keeps its checkpoint's; a new one scales our FP8 linears' inputs and
    output gradients by the previous micro-steps' amaxes (delayed: no pass over each tensor before its cast) in one
    process. Several keep dynamic: each process records its own amaxes, and a checkpoint keeps rank 0's only."""
    if (saved := _resumed_setting(env, "fp8_scaling", ("dynamic", "delayed"), "dynamic")) is not None:
        return saved
    return "delayed" if ours and env.world_size == 1 else "dynamic"


def auto_fp8_classifier(env: Environment, fused_classifier: bool, fp8_blocks: bool, softcap: float) -> int:
    """``--fp8-classifier -1``: where the fused classifier runs on FP8 matmuls, a resumed run keeps its checkpoint's
    and a new one takes :func:`fp8_classifier_rule`'s. Else 0."""
    if not (fused_classifier and env.fp8_supported):
        return 0
    if (saved := _resumed_setting(env, "fp8_classifier", FP8_CLASSIFIER_MODES, 0)) is not None:
        return saved
    return fp8_classifier_rule(_hopper(env), env.world_size, fp8_blocks, softcap)


def auto_fp8_gelu_cast(env: Environment, runs: bool) -> int:
    """``--fp8-gelu-cast -1``: where GELU can run inside the FP8 casts (``runs``: our FP8 linears with delayed
    scaling and the cast kernel, a GELU MLP), a resumed run keeps its checkpoint's and a new one takes 1. Else 0."""
    if not runs:
        return 0
    if (saved := _resumed_setting(env, "fp8_gelu_cast", (0, 1), 0)) is not None:
        return saved
    return 1


def fp8_classifier_rule(hopper: bool, world_size: int, fp8_blocks: bool, softcap: float) -> int:
    """auto_fp8_classifier's rule for a new run whose fused classifier runs on FP8 matmuls (``gpt2train plan``
    applies it too), in one process on a Hopper GPU, where each was measured: beside FP8 blocks, logits without a
    soft-cap (the classic recipe), 4, all three matmuls with the target's term apart (on an H200 d12's step 26 ms
    faster than with 2, d48's 30 ms; the loss check held in two sittings, -0.0002 and +0.0086: BENCHMARKS.md, issue
    21's eighteenth session); else 2, the logits' matmul alone (held in two sittings beside bf16 blocks, and in the
    modern recipe's own checks). Else 0."""
    if not (hopper and world_size == 1):
        return 0
    return 4 if fp8_blocks and not softcap else 2


def fp8_rule(hopper: bool, world_size: int, mcfg: ModelConfig, optimizer: str, dtype: str, recompute: int,
             recompute_whole: int) -> int:  # fmt: skip
    """auto_fp8's rule for a new run on the fast path with FP8 matmuls (``gpt2train plan`` applies it too). The
    modern recipe's FP8 blocks held its loss check in two sittings (-0.0029, -0.0012 against its bf16 path) and took
    its d12 step from 1008.1 to 927.6 ms on an H200 (BENCHMARKS.md, issue 21's sixteenth session); a mix of the two
    recipes' levers is not measured."""
    from gpt2train.recipe import recipe_of

    return int(hopper and world_size == 1 and recipe_of(mcfg, optimizer) is not None
               and mcfg.n_embd >= FP8_AUTO_MIN_WIDTH and dtype == "bf16" and recompute <= 1
               and recompute_whole == 0)  # fmt: skip


def auto_accumulate_in_matmul(bf16_params: int, master_weights: int, recompute: int, optimizer: str, fast: bool,
                              several_processes: bool) -> int:  # fmt: skip
    """``--accumulate-in-matmul -1``: on (1) where ``.grad`` is one flat bf16 buffer that persists over the
    micro-steps (build_optimizer's flat layout in one process, AdamW, the fast path); elsewhere a layer would
    see no usable ``.grad`` and let autograd sum anyway (grad_accum.py). Off with -r 3, where no block would use
    it (accelerate() leaves it off in blocks recomputed whole)."""
    bf16_model = bool(bf16_params) or not master_weights
    return int(fast and not several_processes and bf16_model and recompute < 3 and optimizer == "adamw")


FP8_IMPLS = ("ours", "torchao-tensorwise", "torchao-rowwise")
FP8_GRAD_FORMATS = ("e4m3", "e5m2")  # --fp8-grad's choices (kernels/fp8_linear.py's GRAD_FORMATS)
FP8_SCALINGS = ("auto", "dynamic", "delayed")
# --fp8-classifier's modes: 0 bf16, 2 the logits' matmul in FP8; 1, 3 and 4 the gradient's two as well
# (kernels/fused_classifier.py: its gradient rounded to nearest; stochastically; without the target's term, which is
# added apart, and dx's copy in e4m3 row by row)
FP8_CLASSIFIER_MODES = (0, 1, 2, 3, 4)
FP8_CLASSIFIER_GRAD_MODES = (1, 3, 4)
FP8_LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # a block's linears, by their names in it
_FP8_BF16_WORDS = {"attn": FP8_LINEARS[:2], "mlp": FP8_LINEARS[2:], **{n: (n,) for n in FP8_LINEARS},
                   "first": ("first",), "last": ("last",), "weight-grads": ("weight-grads",)}  # fmt: skip


def fp8_bf16_parts(spec: str) -> tuple[str, ...]:
    """``--fp8-bf16``'s list as the linears' names and "first"/"last", in a fixed order; a UserError names a word
    it does not know."""
    parts = set()
    for word in filter(None, (w.strip() for w in spec.split(","))):
        if word not in _FP8_BF16_WORDS:
            raise UserError(f"--fp8-bf16 {spec}: {word!r} is not a linear, a block or weight-grads; use a "
                            f"comma list of {', '.join(_FP8_BF16_WORDS)}")  # fmt: skip
        parts.update(_FP8_BF16_WORDS[word])
    return tuple(p for p in (*FP8_LINEARS, "first", "last", "weight-grads") if p in parts)


_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_ATTENTION = ("auto", "flash", "cudnn", "efficient", "math")


def _check_fp8(cfg: TrainConfig, env: Environment, fp8: int) -> None:
    """The checks of the FP8 settings against --fp8 as decided (``fp8``: -1 already resolved)."""
    if fp8 and cfg.plain:
        raise UserError("--fp8 1 --plain: FP8 matmuls are a fast path; drop one")
    if fp8 and not env.fp8_supported:
        raise UserError(f"--fp8 {fp8}: {env.device} has no FP8 matmuls (needs CUDA capability 8.9+, e.g. an H100); "
                        "drop --fp8")  # fmt: skip
    if cfg.fp8_impl != "ours" and not fp8:
        raise UserError(f"--fp8-impl {cfg.fp8_impl} picks whose FP8 linears --fp8 swaps in: add --fp8 1")
    if cfg.fp8_bf16 and not fp8:
        raise UserError(f"--fp8-bf16 {cfg.fp8_bf16} says what stays bf16 under --fp8: add --fp8 1 or 2")
    if fp8 and cfg.recompute == 3:
        raise UserError(f"--fp8 {fp8} -r 3: every block is recomputed whole, and those keep bf16 linears (their "
                        "recompute would keep FP8's copies); use -r 2 with --recompute-whole N, or drop --fp8")  # fmt: skip
    ours = bool(fp8) and cfg.fp8_impl == "ours"
    if cfg.fp8_cast_kernel in (1, 2) and not ours:
        raise UserError(f"--fp8-cast-kernel {cfg.fp8_cast_kernel} casts the operands of our FP8 linears: add --fp8 1 "
                        "(with --fp8-impl ours)")  # fmt: skip
    if cfg.fp8_scaling == "delayed" and not ours:
        raise UserError("--fp8-scaling delayed scales our FP8 linears' operands: add --fp8 1 (with --fp8-impl ours)")
    if cfg.fp8_grad != "e4m3" and not ours:
        raise UserError(f"--fp8-grad {cfg.fp8_grad} is the gradients' format in our FP8 linears: add --fp8 1 (with "
                        "--fp8-impl ours)")  # fmt: skip
    if cfg.fp8_cache_weights and not ours:
        raise UserError("--fp8-cache-weights 1 keeps the weights' copies of our FP8 linears: add --fp8 1 (with "
                        "--fp8-impl ours)")  # fmt: skip
    if cfg.fp8_cache_weights and env.world_size > 1:
        raise UserError(f"--fp8-cache-weights 1 runs in one process only (DDP would broadcast the copies at every "
                        f"forward), not {env.world_size}: drop it")  # fmt: skip


def _check_flags(cfg: TrainConfig, env: Environment, lv: dict) -> None:
    """The settings' own ranges and combinations (those that need the model are checked in resolve)."""
    from gpt2train.train.schedule import SCHEDULES

    several = env.world_size > 1
    if cfg.batch_size < 0 or cfg.seq_len <= 0:
        raise UserError(f"-b {cfg.batch_size} -t {cfg.seq_len}: batch size and sequence length must be positive")
    if cfg.zero_stage not in (0, 1):
        raise UserError(f"-z {cfg.zero_stage}: supported ZeRO stages are 0 and 1")
    if cfg.compile_mode not in _COMPILE_MODES:
        raise UserError(f"--compile-mode {cfg.compile_mode!r}: use default, max-autotune-no-cudagraphs, "
                        "max-autotune or reduce-overhead")  # fmt: skip
    if cfg.grad_reduce_dtype not in ("fp32", "bf16"):
        raise UserError(f"--grad-reduce-dtype {cfg.grad_reduce_dtype!r}: use fp32 or bf16")
    if cfg.bf16_params not in (-1, 0, 1):
        raise UserError(f"--bf16-params {cfg.bf16_params}: use 0, 1 or -1 (auto)")
    if cfg.bf16_params == 1 and not cfg.master_weights:
        raise UserError("-w 0 --bf16-params 1: contradictory (-w 0 keeps no fp32 master copy; --bf16-params 1 "
                        "keeps it in the optimizer): drop one")  # fmt: skip
    if cfg.bf16_params == 1 and lv["optimizer"] == "muon":
        raise UserError("--optimizer muon --bf16-params 1: Muon updates fp32 parameters; drop --bf16-params")
    if cfg.gelu_fusion not in (-1, 0, 1, 2):
        raise UserError(f"-ge {cfg.gelu_fusion}: use 0 (off), 1 (forward), 2 (forward and backward) or -1 (auto)")
    if cfg.fp8 not in (-1, 0, 1, 2):
        raise UserError(f"--fp8 {cfg.fp8}: use 0 (bf16 matmuls), 1 (FP8), 2 (FP8, the gradients' matmuls in fast "
                        "accumulation too) or -1 (auto)")  # fmt: skip
    if cfg.fp8_impl not in FP8_IMPLS:
        raise UserError(f"--fp8-impl {cfg.fp8_impl!r}: use one of {', '.join(FP8_IMPLS)}")
    if "weight-grads" in fp8_bf16_parts(cfg.fp8_bf16) and cfg.fp8_impl != "ours":
        raise UserError(f"--fp8-bf16 {cfg.fp8_bf16}: weight-grads is ours (torchao's recipes decide their own "
                        f"gradients); drop it or --fp8-impl {cfg.fp8_impl}")  # fmt: skip
    if cfg.fp8_cast_kernel not in (-1, 0, 1, 2):
        raise UserError(f"--fp8-cast-kernel {cfg.fp8_cast_kernel}: use 0 (Inductor's casts), 1 (the Triton kernel), "
                        "2 (Inductor's casts, the kernel's transposes) or -1 (1 with --fp8 on CUDA)")  # fmt: skip
    if cfg.fp8_classifier not in (-1, *FP8_CLASSIFIER_MODES):
        raise UserError(f"--fp8-classifier {cfg.fp8_classifier}: use 0 (bf16), 1 (FP8), 2 (FP8 logits only), 3 (FP8, "
                        "the gradient rounded stochastically), 4 (FP8, the target's term exact) or -1 (auto)")  # fmt: skip
    if cfg.fp8_scaling not in FP8_SCALINGS:
        raise UserError(f"--fp8-scaling {cfg.fp8_scaling!r}: use dynamic (each tensor's own amax), delayed (the "
                        "previous micro-steps') or auto")  # fmt: skip
    if cfg.fp8_gelu_cast not in (-1, 0, 1):
        raise UserError(f"--fp8-gelu-cast {cfg.fp8_gelu_cast}: use 0 (GELU between the casts), 1 (inside them) or -1 "
                        "(1 where it can run)")  # fmt: skip
    if cfg.fp8_qkv_cast not in (0, 1):
        raise UserError(f"--fp8-qkv-cast {cfg.fp8_qkv_cast}: use 0 (autograd concatenates the gradients) or 1 (the "
                        "cast kernel gathers them)")  # fmt: skip
    if cfg.fp8_norm_cast not in (0, 1):
        raise UserError(f"--fp8-norm-cast {cfg.fp8_norm_cast}: use 0 (the LayerNorms compiled by Inductor) or 1 (inside "
                        "the casts)")  # fmt: skip
    if cfg.fp8_cache_weights not in (0, 1):
        raise UserError(f"--fp8-cache-weights {cfg.fp8_cache_weights}: use 0 (cast in every micro-step) or 1 (once a "
                        "step)")  # fmt: skip
    if cfg.fp8_grad not in FP8_GRAD_FORMATS:
        raise UserError(f"--fp8-grad {cfg.fp8_grad!r}: use e4m3 or e5m2")
    if cfg.fp8_scaling == "delayed" and cfg.recompute == 3:
        raise UserError("--fp8-scaling delayed -r 3: a recomputed linear would record its amax twice a micro-step; "
                        "use -r 2 or --fp8-scaling dynamic")  # fmt: skip
    if set(FP8_LINEARS) <= set(fp8_bf16_parts(cfg.fp8_bf16)):
        raise UserError(f"--fp8-bf16 {cfg.fp8_bf16} keeps every linear in bf16: drop --fp8 and --fp8-bf16")
    if cfg.accumulate_in_matmul not in (-1, 0, 1):
        raise UserError(f"--accumulate-in-matmul {cfg.accumulate_in_matmul}: use 0, 1 or -1 (auto)")
    if cfg.accumulate_in_matmul == 1 and several:
        raise UserError("--accumulate-in-matmul 1 runs in one process only (DDP and ZeRO-1 take each gradient "
                        "from autograd as it is made): drop it")  # fmt: skip
    if cfg.recompute not in (0, 1, 2, 3):
        raise UserError(f"-r {cfg.recompute}: use 0 (none), 1 (GELU), 2 (GELU and LayerNorm) or 3 (each block's "
                        "sublayers whole: the least memory)")  # fmt: skip
    if cfg.recompute_whole < -1:
        raise UserError(f"--recompute-whole {cfg.recompute_whole}: the number of blocks recomputed whole (0 or "
                        "more), or -1 for the fewest that -b needs")  # fmt: skip
    if cfg.recompute_whole == -1 and not cfg.batch_size:
        raise UserError("--recompute-whole -1 picks the blocks for a given -b: give -b B, or a count N with "
                        "-b auto")  # fmt: skip
    if cfg.on_max_skips not in ("stop", "rollback"):
        raise UserError(f"--on-max-skips {cfg.on_max_skips!r}: use stop or rollback")
    if cfg.on_max_skips == "rollback" and not (cfg.max_skips > 0 and cfg.output_dir and cfg.checkpoint_every > 0):
        raise UserError("--on-max-skips rollback needs --max-skips K, -o DIR and -n N (checkpoints to roll back to)")
    if not cfg.output_dir and (cfg.resume or cfg.checkpoint_every):
        raise UserError("-y/-n need an output directory: add -o DIR")
    if cfg.lr_schedule not in SCHEDULES:
        raise UserError(f"-k {cfg.lr_schedule!r}: unknown learning rate schedule; use one of {', '.join(SCHEDULES)}")
    if cfg.attention not in _ATTENTION:
        raise UserError(f"--attention {cfg.attention!r}: use auto, flash, cudnn, efficient or math")


def _model_config(cfg: TrainConfig, env: Environment, lv: dict) -> tuple[ModelConfig, str]:
    """(the model to train, a word on where its weights come from): the resumed checkpoint's, -e FILE's (the
    shape overrides refused), or a preset's with the overrides and the architecture levers."""
    from gpt2train import recipe

    if env.resume_model is not None:
        return env.resume_model, f"checkpoint at step {env.resume_step}"
    overrides = {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "vocab_size", "max_seq_len")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    mcfg = preset(cfg.model)
    if mcfg is None:
        if env.pretrained_model is None:
            raise UserError(
                f"-e {cfg.model!r}: not a model preset (d6..d84, gpt2:dN, gpt3:cN) nor an existing model file or directory"
            )
        arch = recipe.architecture(lv)
        if arch and env.pretrained_model.classic:
            raise UserError(f"-e {cfg.model}: architecture levers ({', '.join(arch)}) "
                            "need a model trained with them or a fresh one (a preset)")  # fmt: skip
        if overrides:
            raise UserError(
                "--n-layer/--n-head/--n-embd/--vocab-size/--max-seq-len cannot change a pretrained model's shape"
            )
        return env.pretrained_model, f"pretrained {cfg.model}"
    if overrides:
        fields = {**mcfg.to_dict(), **overrides}
        if "vocab_size" in overrides:
            fields["padded_vocab_size"] = 0
        mcfg = ModelConfig(**fields)
    return recipe.apply_architecture(mcfg, lv), "random"
