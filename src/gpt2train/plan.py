"""Back-of-the-envelope planning: parameters, FLOPs, hours, dollars and GPU memory of a training run.

The compute side uses llm.c's own accounting so that our plans and llm.c's MFU figures agree:
flops per token = 6N + 6*L*C*T (``ModelConfig.flops_per_token``) and the peak is llm.c's dense bf16
figure for the card (llmc/mfu.h: Hopper's 756 TFLOP/s at 456 tensor cores and 1620 MHz, scaled to
the H100 SXM's 528 cores and 1830 MHz = 988.8 TFLOP/s; A100 312).

The default MFU, 47%, is what llm.c measured on the seed run (GPT-2 1558M, d48, 32,000 steps of
1,048,576 tokens on 8 H100s, 2.75 s/step = 47.3% MFU). It predicts 24.6 h and $689 at $3.5/GPU-h
for the seed; the seed's announced "24 h, $672" is rounded down (exactly 24.0 h would take 48.2% MFU).

The memory side (``estimate_memory``) counts the bytes a pre-LayerNorm GPT-2 keeps alive on one GPU, in
one of two layouts:

- ``layout="gpt2train"`` (the default): how our own trainer keeps memory (fp32 weights under bf16
  autocast, DDP buckets, the chunked classifier, compiled blocks). Its activation coefficients are fitted
  to our measured peaks (torch.cuda.max_memory_allocated, BENCHMARKS.md), which it matches within 10%.
- ``layout="llmc"``: how llm.c lays memory out (bf16 weights + fp32 master copy, a full logits buffer);
  within a few percent of llm.c's measured d48 figures (see tests/test_plan.py).

Either is a starting point for ``train -b auto``, which still probes with real steps.
"""

from __future__ import annotations

import math
import re

from gpt2train.config import (
    FP8_CLASSIFIER_GRAD_MODES,
    ModelConfig,
    bf16_params_rule,
    fp8_classifier_rule,
    fp8_rule,
    preset,
)
from gpt2train.errors import UserError
from gpt2train.hardware import GPU, GPUS
from gpt2train.recipe import RECIPES, apply_architecture

MIB = 1024**2
GIB = 1024**3

LAYOUTS = ("gpt2train", "llmc")
DEFAULT_LAYOUT = "gpt2train"

DEFAULT_MFU = 0.47  # llm.c's measured MFU on the seed run (8xH100, d48, B=16, ZeRO-1)
DEFAULT_PRICE = 3.5  # $/GPU-hour: the seed's $672 / (8 GPUs * 24 h)
DEFAULT_SEQ_LEN = 1024
# The modern recipe (--recipe modern) against the classic one, measured by bench/time_to_loss.py (GPT-2 124M, B=32,
# 131,072 tokens per step; BENCHMARKS.md): it reached the classic recipe's 100-step val loss in 10 steps (the
# tokens' ratio; on an H100 2026-11-28, on an H200 2026-12-04), its step 1.12x the classic one's with each recipe's
# default fast path (FP8 blocks in both; 264.8 against 236.8 ms on an H200, and 928.8 against 829.1 at B=64,
# 2026-12-04: Muon, the untied head and its fp32 parameters cost time). Measured over 13M tokens only: gains this
# early in training tend to shrink over a full run, so treat plans made with it as optimistic.
MODERN_TOKEN_RATIO = 0.10
MODERN_STEP_TIME_RATIO = 1.12


_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_COUNT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$", re.IGNORECASE)


def parse_count(text: str, flag: str = "--tokens") -> int:
    """``33.6B`` / ``10e9`` / ``33554432000`` / ``10M`` / ``500K`` / ``1.2T`` -> an integer count."""
    m = _COUNT_RE.match(str(text))
    if not m:
        raise UserError(f"{flag} {text!r}: expected a number like 33.6B, 10e9, 33554432000 or 10M")
    value = float(m.group(1)) * _SUFFIX[m.group(2).upper()]
    if value <= 0 or not math.isfinite(value):
        raise UserError(f"{flag} {text!r}: must be positive")
    return int(round(value))


def resolve_model(descriptor: str) -> ModelConfig:
    """``d48`` / ``gpt2:d12`` / ``gpt3:c768`` -> ModelConfig, or a UserError naming -e."""
    cfg = preset(descriptor)
    if cfg is None:
        raise UserError(f"-e {descriptor}: plan takes a preset name (d12, d24, d36, d48, ..., gpt3:c768)")
    return cfg


def get_gpu(name: str) -> GPU:
    """Card by short name (h100, h200, a100, ...), or a UserError naming --gpu."""
    key = name.lower()
    if key not in GPUS:
        raise UserError(f"--gpu {name}: unknown card; use one of {', '.join(GPUS)}")
    return GPUS[key]


# ---------------------------------------------------------------------------------------------
# memory


def activation_bytes_per_token(cfg: ModelConfig, recompute: int = 1, act_bytes: int = 2) -> dict:
    """Bytes of saved activations per token, by part, for a pre-LN GPT-2 with flash attention.

    Per block the backward pass needs (C = channels, in the compute dtype):
      block input x (for LN1)              C
      LN1 output (input of the qkv matmul) C   -- recomputed with -r 2
      q, k, v (flash attention inputs)     3C
      attention output (attproj input)     C
      residual after attention (for LN2)   C
      LN2 output (input of the fc matmul)  C   -- recomputed with -r 2
      fc output (GELU input)               4C
      GELU output (fcproj input)           4C  -- recomputed with -r 1 and -r 2
    = 16C, plus fp32 LayerNorm mean/rstd (4 floats) and the attention log-sum-exp (1 float per head).
    Recomputing keeps one layer's worth of the dropped tensors as a shared buffer.
    """
    if recompute not in (0, 1, 2):
        raise UserError(f"-r {recompute}: llm.c's recompute is 0, 1 or 2 (-r 3 is gpt2train's)")
    C, L, H = cfg.n_embd, cfg.n_layer, cfg.n_head
    kept = 16 * C
    dropped = 0
    if recompute >= 1:
        dropped += 4 * C  # GELU output
    if recompute >= 2:
        dropped += 2 * C  # LN1 and LN2 outputs
    per_layer = (kept - dropped) * act_bytes + 4 * 4 + H * 4
    layers = L * per_layer + dropped * act_bytes  # one shared buffer for what is recomputed
    # outside the blocks: embedding output, final LN in/out, its stats, and the backward scratch
    # (the widest transient gradient, 4C for the fc output, plus a C-wide one)
    outer = 3 * C * act_bytes + 2 * 4 + 5 * C * act_bytes
    return {"layers": layers, "outer": outer}


def estimate_memory(
    cfg: ModelConfig,
    batch_size: int,
    seq_len: int = DEFAULT_SEQ_LEN,
    *,
    world_size: int = 1,
    zero_stage: int = 0,
    recompute: int = 1,
    master_weights: int = 1,
    dtype: str = "bf16",
    overhead_mib: float | None = None,
    layout: str = DEFAULT_LAYOUT,
    bf16_params: int = 0,
    recompute_whole: int = 0,
    fp8_linears: str = "none",
    fp8_classifier: int = 0,
    fp8_cache_weights: int = 0,
) -> dict:
    """Estimated peak bytes on one GPU, by part; ``total`` is the sum of the other entries.

    ``layout`` picks whose memory layout is modelled: ``"gpt2train"`` (our trainer, the default; see
    ``_estimate_gpt2train`` for its parts) or ``"llmc"`` (llm.c's; the parts below).
    ``bf16_params`` (our ``--bf16-params 1``) moves our trainer to llm.c's ``-w 1`` layout; llm.c's own
    layout already is that, so ``"llmc"`` ignores it. ``recompute_whole`` (our ``--recompute-whole N``) has N
    blocks recomputed whole as at -r 3; llm.c has no such setting. ``fp8_linears`` (one of ``FP8_LINEAR_MODES``; our
    ``--fp8``) models the FP8 linears' saved copies (``fp8_cache_weights``, our ``--fp8-cache-weights``, one more of
    their weights), ``fp8_classifier`` (our ``--fp8-classifier`` 1 or 2) the output layer's float8 copies; llm.c has
    no FP8.
    """
    if batch_size < 0 or seq_len <= 0:
        raise UserError(f"-b {batch_size} -t {seq_len}: batch size and sequence length must be positive")
    if zero_stage not in (0, 1, 2, 3):
        raise UserError(f"-z {zero_stage}: zero stage must be 0, 1, 2 or 3")
    if dtype not in ("bf16", "fp32"):
        raise UserError(f"dtype {dtype!r}: must be bf16 or fp32")
    if world_size < 1:
        raise UserError(f"--gpus {world_size}: must be at least 1")
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout}: must be one of {', '.join(LAYOUTS)}")
    kwargs = dict(world_size=world_size, zero_stage=zero_stage, recompute=recompute,
                  master_weights=master_weights, dtype=dtype, overhead_mib=overhead_mib)  # fmt: skip
    if fp8_linears not in FP8_LINEAR_MODES:
        raise UserError(f"fp8_linears {fp8_linears!r}: must be one of {', '.join(FP8_LINEAR_MODES)}")
    if layout == "llmc":
        if recompute_whole:
            raise UserError("--recompute-whole is gpt2train's; llm.c's layout has no such setting")
        if fp8_linears != "none" or fp8_classifier:
            flag = "--fp8" if fp8_linears != "none" else "--fp8-classifier"
            raise UserError(f"{flag} is gpt2train's; llm.c's layout has no FP8 (use --layout gpt2train or {flag} 0)")
        return _estimate_llmc(cfg, batch_size, seq_len, **kwargs)
    return _estimate_gpt2train(cfg, batch_size, seq_len, bf16_params=bf16_params, recompute_whole=recompute_whole,
                               fp8_linears=fp8_linears, fp8_classifier=fp8_classifier,
                               fp8_cache_weights=fp8_cache_weights, **kwargs)  # fmt: skip


def _estimate_llmc(
    cfg: ModelConfig,
    batch_size: int,
    seq_len: int,
    *,
    world_size: int,
    zero_stage: int,
    recompute: int,
    master_weights: int,
    dtype: str,
    overhead_mib: float | None,
) -> dict:
    """llm.c's layout: estimated peak bytes on one GPU, by part; ``total`` is the sum of the others.

    - ``params``: weights in the compute dtype (bf16: 2 bytes; fp32: 4), sharded only with ZeRO-3.
    - ``grads``: gradients in the compute dtype, sharded with ZeRO-2 and up.
    - ``optimizer``: AdamW's two fp32 moments, sharded over ``world_size`` with ZeRO-1 and up.
    - ``master_weights``: the fp32 copy (``-w 1`` with bf16), sharded like the optimizer state.
    - ``activations``: what the backward pass keeps, see ``activation_bytes_per_token``.
    - ``logits``: the B*T*padded-vocab logits buffer in the compute dtype (its gradient reuses it).
    - ``overhead``: CUDA context, cuBLAS/attention workspaces, allocator slack, NCCL buffers when
      ``world_size > 1``. Default 2 GiB (+0.5 GiB with several GPUs).
    """
    n = cfg.num_parameters()
    wb = 2 if dtype == "bf16" else 4
    shard = lambda stage: world_size if zero_stage >= stage else 1  # noqa: E731
    tokens = batch_size * seq_len
    act = activation_bytes_per_token(cfg, recompute, act_bytes=wb)
    if overhead_mib is None:
        overhead_mib = 2048 + (512 if world_size > 1 else 0)
    parts = {
        "params": n * wb / shard(3),
        # fp32 training has no separate master copy: the weights are already fp32
        "master_weights": (n * 4 / shard(1)) if (master_weights and dtype == "bf16") else 0.0,
        "grads": n * wb / shard(2),
        "optimizer": n * 8 / shard(1),
        "activations": tokens * act["layers"] + tokens * act["outer"],
        "logits": tokens * cfg.padded_vocab_size * wb,
        "overhead": overhead_mib * MIB,
    }
    parts = {k: int(math.ceil(v)) for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


# Our trainer's saved activations, in bytes per token per layer per channel (C), fitted by least
# squares to the single-GPU peaks in BENCHMARKS.md (d12 and d48, T=1024; residuals under 170 MiB).
# Keys: (recompute, master_weights).
#   -r 0, -w 1: 32.5 ~ llm.c's 16C in bf16 (32 bytes); the residual stream is bf16 under autocast
#               (34.5 while it was fp32; refitted on the d12 and d48 peaks of BENCHMARKS.md round 3)
#   -r 0, -w 0: 32.5 -- the same saved tensors
#   -r 1:       24.5 -- -r 0 less GELU's output (4C in bf16), from the layout (before 2026-11-28 the compiled
#               blocks kept it anyway and -r 1 measured as -r 0; the d48 peaks of rounds 10-12 fit 32.5)
#   -r 2:       20.5 -- -r 1 less the two LayerNorm outputs (2C in bf16), from the layout (llm.c's -r 2); d48
#               B = 8..32 measured 20.4 (BENCHMARKS.md round 16)
#   -r 3, -w 1: 11.5 -- fp32 parameters (measured 2026-11-27 as that day's -r 2; not remeasured)
#   -r 3, -w 0: 2.6 -- bf16 parameters (-w 0, or --bf16-params 1): each block keeps its bf16 input (2 bytes)
#               and recomputes the rest, fitted to d48 B = 16..256 (BENCHMARKS.md round 15, run as -r 2 then,
#               within +5%; 10.25 before, while the weight gradients summed in the matmuls kept every matmul input)
_GPT2TRAIN_ACT = {(0, 1): 32.5, (0, 0): 32.5, (1, 1): 24.5, (1, 0): 24.5, (2, 1): 20.5, (2, 0): 20.5,
                  (3, 1): 11.5, (3, 0): 2.6}  # fmt: skip
# With our FP8 linears in every block (--fp8 1 or 2, --fp8-impl ours): each linear keeps the e4m3 copy of its input
# that its weight gradient needs (7C bytes) in place of the bf16 one, and -r 1 and 2 recompute nothing it keeps (the
# GELU and LayerNorm outputs it needs are those e4m3 copies), so -r 0 to 2 keep the same. 27.5 fits d12 B=64, d36 B=16
# and d48 B=16 at -r 0 and d48 at -r 1 within 0.5% (27.36-27.44, bf16 parameters; Issue 21's third and fourth
# sessions, BENCHMARKS.md), with the weights' e4m3 copies counted apart (FP8_LINEAR_MODES below). Blocks recomputed whole
# keep bf16 linears (train/accelerate.py), so -r 3's bf16 figure: d48 B=40 -r 2 with 20 of them peaked at 77,319 MiB
# against the estimate's 78,414 (issue 21, fifth session).
_GPT2TRAIN_FP8_ACT = 27.5
# What the FP8 estimate models: none (bf16 matmuls), all (our FP8 linears in every block), some (FP8 in some
# linears only, --fp8-bf16, or torchao's, unmeasured: the larger of the two per layer, the weights' copies kept too)
FP8_LINEAR_MODES = ("none", "all", "some")
# Chunked classifier (kernels/fused_classifier.py): one chunk of bf16 logits plus about 12 bytes per row
# per channel (the bf16 input, its fp32 gradient and scratch); the kernel check of 2026-11-27, autocast rows.
_CLASSIFIER_CHUNK_ROWS = 16384
_CLASSIFIER_ROW_BYTES_PER_C = 12
# --fp8-classifier 1: a chunk's logit gradient in float8 twice (as it is and transposed) beside its bf16 logits
_FP8_CLASSIFIER_LOGIT_BYTES = 2
# Several GPUs under DDP (-z 0; also -z 1 before it got its own ZeRO-1), measured on d12 and d48 at 2 and 4 GPUs:
# 4 more bytes per parameter (a second fp32 gradient-sized buffer, despite gradient_as_bucket_view) and
# 2 more bytes per token per layer per channel (torch.compile splits the graph at DDP's bucket
# boundaries, which keeps some tensors the whole-graph compile would have recomputed).
_DDP_PARAM_BYTES = 4
_DDP_ACT_BYTES = 2.0
# -z 1 (train/zero.py) has no DDP: instead of the 4 bytes per parameter it holds this rank's gradient shard
# (from the layout, not yet measured); the activation term is kept for it until measured.
_GPT2TRAIN_OVERHEAD_MIB = 128  # fitted constant: cuBLAS / attention workspaces, small buffers


def _estimate_gpt2train(
    cfg: ModelConfig,
    batch_size: int,
    seq_len: int,
    *,
    world_size: int,
    zero_stage: int,
    recompute: int,
    master_weights: int,
    dtype: str,
    overhead_mib: float | None,
    bf16_params: int = 0,
    recompute_whole: int = 0,
    fp8_linears: str = "none",
    fp8_classifier: int = 0,
    fp8_cache_weights: int = 0,
) -> dict:
    """Our trainer's layout: estimated peak bytes on one GPU, by part; ``total`` is the sum of the others.

    The total is what ``torch.cuda.max_memory_allocated`` reports: the CUDA context and NCCL's own
    buffers live outside PyTorch's allocator and are left to ``max_batch_size``'s headroom.

    - ``params``: fp32 weights with ``-w 1`` (4 bytes each), bf16 with ``-w 0`` or ``--bf16-params 1`` (2);
      never sharded.
    - ``autocast_copies``: the bf16 casts of the fp32 weights that autocast makes in the forward pass
      and the backward pass keeps (2 bytes each; none with ``-w 0``, ``--bf16-params 1`` or fp32 compute, nor
      for the blocks' linears when all of them are FP8).
    - ``fp8_weights`` (only with FP8 linears): the transposed e4m3 copy of each block linear's weight that the
      backward pass keeps (1 byte each); with ``fp8_cache_weights`` the forward's copy too, kept between steps.
    - ``master_weights``: ``--bf16-params 1``'s fp32 master copy in the optimizer (4 bytes each, sharded
      like the moments with ``-z 1``); 0 otherwise (``-w 1`` without it: the fp32 params are the master).
      With it a parameter costs 16 bytes (2 + 2 + 4 + 8), llm.c's ``-w 1`` layout; not yet measured.
    - ``grads``: gradients in the weights' dtype, full on every rank (our ZeRO-1 accumulates them whole).
    - ``ddp_buffers``: with several GPUs under ``-z 0``, 4 more bytes per parameter (measured, see
      ``_DDP_PARAM_BYTES``); under ``-z 1`` (no DDP) this rank's shard of the averaged gradients.
    - ``optimizer``: AdamW's two fp32 moments (8 bytes each), divided by ``world_size`` with ``-z 1``.
    - ``activations``: B*T*L*C times a fitted per-layer coefficient (``_GPT2TRAIN_ACT``; ``_GPT2TRAIN_FP8_ACT``
      with FP8 linears below -r 3), +2 with several GPUs; with ``recompute_whole`` N, N of the L layers take -r 3's
      coefficient.
    - ``classifier``: the chunked classifier's transient memory; the logits are never held whole. With
      ``fp8_classifier`` (--fp8-classifier 1 to 4) also the e4m3 copies of its input and weight (1 byte each), and
      with 1, 3 or 4 a chunk's float8 gradient in two layouts.
    - ``overhead``: a fitted 128 MiB of workspaces.

    Our trainer supports ZeRO stages 0 and 1 only.
    fp32 compute (``dtype="fp32"``) was not measured: its activations are taken as twice bf16's.
    """
    if zero_stage not in (0, 1):
        raise UserError(f"-z {zero_stage}: our trainer supports ZeRO stages 0 and 1 (use --layout llmc for llm.c)")
    if recompute not in (0, 1, 2, 3):
        raise UserError(f"-r {recompute}: recompute must be 0, 1, 2 or 3")
    if not master_weights and dtype != "bf16":
        raise UserError("-w 0 (bf16 weights without an fp32 master copy) needs bf16")
    if bf16_params and not master_weights:
        raise UserError("-w 0 --bf16-params 1: contradictory (-w 0 keeps no fp32 master copy)")
    if bf16_params and dtype != "bf16":
        raise UserError("--bf16-params 1 (bf16 parameters, the fp32 master copy in the optimizer) needs bf16")
    ddp = world_size > 1
    n = cfg.num_parameters()
    L, C = cfg.n_layer, cfg.n_embd
    tokens = batch_size * seq_len
    # -w 1 keeps fp32 weights (no separate master copy); -w 0 and --bf16-params 1 bf16 ones
    fp32_params = master_weights and not bf16_params
    wb = 4 if fp32_params else 2
    # bf16 parameters: the -w 0 coefficients (the same bf16 tensors are saved; unmeasured for --bf16-params)
    if not 0 <= recompute_whole <= L:
        raise UserError(f"--recompute-whole {recompute_whole}: must be in 0..{L} (the model's layers)")
    w = 1 if fp32_params else 0
    per_layer = _GPT2TRAIN_ACT[(recompute, w)]
    if fp8_linears != "none" and recompute < 3:
        per_layer = _GPT2TRAIN_FP8_ACT if fp8_linears == "all" else max(per_layer, _GPT2TRAIN_FP8_ACT)
    coeff = ((L - recompute_whole) * per_layer + recompute_whole * _GPT2TRAIN_ACT[(3, w)]) / L
    # the weights of the four linears of each block --fp8 swaps: not those recomputed whole, which keep bf16 linears
    fp8_blocks = 0 if recompute == 3 else L - recompute_whole
    block_linear_params = 12 * C * C * fp8_blocks
    fp8 = fp8_linears != "none" and fp8_blocks > 0
    autocast_copies = 0
    if fp32_params and dtype == "bf16":  # FP8 linears cast their fp32 weights to e4m3 and keep only that
        autocast_copies = (n - (block_linear_params if fp8_linears == "all" else 0)) * 2
    if dtype == "fp32":
        coeff *= 2  # unmeasured: every saved tensor in fp32 instead of bf16
    if ddp:  # kept for -z 1 too until measured without DDP
        coeff += _DDP_ACT_BYTES
    fp8_grad_bytes = _FP8_CLASSIFIER_LOGIT_BYTES if fp8_classifier in FP8_CLASSIFIER_GRAD_MODES else 0
    logit_bytes = (2 if dtype == "bf16" else 4) + fp8_grad_bytes
    fp8_copies = (tokens + cfg.padded_vocab_size) * C if fp8_classifier else 0  # e4m3 x and W, a byte each
    chunk = min(_CLASSIFIER_CHUNK_ROWS, tokens)
    parts = {
        "params": n * wb,
        "autocast_copies": autocast_copies,
        "master_weights": n * 4 / (world_size if zero_stage >= 1 else 1) if bf16_params else 0,
        "grads": n * wb,
        "ddp_buffers": (n * wb / world_size if zero_stage >= 1 else n * _DDP_PARAM_BYTES) if ddp else 0,
        "optimizer": n * 8 / (world_size if zero_stage >= 1 else 1),
        "activations": tokens * L * C * coeff,
        "classifier": chunk * cfg.padded_vocab_size * logit_bytes
        + tokens * C * _CLASSIFIER_ROW_BYTES_PER_C
        + fp8_copies,
        "overhead": (_GPT2TRAIN_OVERHEAD_MIB if overhead_mib is None else overhead_mib) * MIB,
    }
    if fp8:  # shown only where there are FP8 linears
        parts["fp8_weights"] = block_linear_params * (2 if fp8_cache_weights else 1)
    parts = {k: int(math.ceil(v)) for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def max_batch_size(
    cfg: ModelConfig,
    memory_bytes: float,
    seq_len: int = DEFAULT_SEQ_LEN,
    *,
    headroom: float = 0.01,
    limit: int = 1 << 16,
    **kwargs,
) -> int:
    """Largest micro-batch B whose ``estimate_memory`` total fits ``memory_bytes`` (0 if none fits).

    ``headroom`` keeps that fraction of the card free for allocator fragmentation: with 1%, the
    answer agrees with every d48 run of llm.c measured on an 80 GB H100 (BENCHMARK_TARGETS.md) under
    ``layout="llmc"``, and with our trainer's measured fits and out-of-memory runs under the default
    ``layout="gpt2train"``. ``kwargs`` (``layout`` included) go to ``estimate_memory``. The estimate is affine in B, so we solve for B and then
    check the neighbours exactly.
    """
    memory_bytes = memory_bytes * (1.0 - headroom)
    fixed = estimate_memory(cfg, 0, seq_len, **kwargs)["total"]
    per_b = estimate_memory(cfg, 1, seq_len, **kwargs)["total"] - fixed
    if fixed + per_b > memory_bytes:
        return 0
    b = min(limit, int((memory_bytes - fixed) // per_b))
    while b < limit and estimate_memory(cfg, b + 1, seq_len, **kwargs)["total"] <= memory_bytes:
        b += 1
    while b > 0 and estimate_memory(cfg, b, seq_len, **kwargs)["total"] > memory_bytes:
        b -= 1
    return b


def max_batch_by_recompute(cfg: ModelConfig, memory_bytes: float, seq_len: int = DEFAULT_SEQ_LEN,
                           fp8_at=None, **kwargs) -> dict:  # fmt: skip
    """``max_batch_size`` at each -r level the layout has (0-2 for llm.c's, 0-3 for ours), ``kwargs``'
    other settings kept (``fp8_at``: a function of -r giving the FP8 settings there, fp8_linears and fp8_classifier,
    for --fp8 -1, which decides by -r): {recompute: largest B}."""
    kwargs.pop("recompute", None)
    kwargs.pop("recompute_whole", None)
    levels = range(3) if kwargs.get("layout") == "llmc" else range(4)
    kept = {k: kwargs.pop(k) for k in ("fp8_linears", "fp8_classifier") if k in kwargs}
    at = fp8_at or (lambda r: kept)
    return {r: max_batch_size(cfg, memory_bytes, seq_len, recompute=r, **at(r), **kwargs) for r in levels}


def whole_blocks_needed(
    cfg: ModelConfig, memory_bytes: float, batch_size: int, seq_len: int = DEFAULT_SEQ_LEN, **kwargs
) -> int | None:
    """The fewest blocks to recompute whole (``--recompute-whole``) for ``batch_size`` to fit ``memory_bytes``
    at ``kwargs``' -r (with ``max_batch_size``'s headroom); None when even all of them are not enough."""
    kwargs.pop("recompute_whole", None)
    for n in range(cfg.n_layer + 1):
        if max_batch_size(cfg, memory_bytes, seq_len, recompute_whole=n, **kwargs) >= batch_size:
            return n
    return None


# ---------------------------------------------------------------------------------------------
# the whole plan


def resolve_tokens(tokens: str | int | None, steps: int | None = None, total_batch: int | None = None) -> int:
    """Training tokens from ``--tokens``, or from ``-x`` steps times ``-d`` tokens per step.

    This is the one place that decides the token budget: a future ``--recipe modern --tokens-ratio R``
    (tokens = R * params) belongs here.
    """
    if tokens is not None:
        if steps is not None:
            raise UserError("--tokens and -x/--steps: give one of them")
        return tokens if isinstance(tokens, int) else parse_count(tokens)
    if steps is not None:
        if total_batch is None or total_batch <= 0:
            raise UserError("-x/--steps needs -d/--total-batch-size (tokens per step)")
        if steps <= 0:
            raise UserError(f"-x {steps}: must be positive")
        return steps * total_batch
    raise UserError("give --tokens N (e.g. 33.6B) or -x STEPS with -d TOKENS_PER_STEP")


def make_plan(
    model: str,
    tokens: int,
    gpus: int = 1,
    gpu: str = "h100",
    *,
    mfu: float = DEFAULT_MFU,
    price: float = DEFAULT_PRICE,
    batch_size: int = 16,
    seq_len: int = DEFAULT_SEQ_LEN,
    zero_stage: int = 0,
    recompute: int = 1,
    master_weights: int = 1,
    layout: str = DEFAULT_LAYOUT,
    recipe: str = "classic",
    bf16_params: int = -1,
    recompute_whole: int = 0,
    fp8: int = -1,
) -> dict:
    """Everything ``gpt2train plan`` prints, as one JSON-ready dict.

    ``tokens`` is what the classic recipe trains on; with ``recipe="modern"`` the plan is for
    ``MODERN_TOKEN_RATIO`` times as many (the same loss in fewer tokens), keeping ``classic_tokens``.

    Keys: model, params, flops_per_token, tokens, flops, gpu, gpus, peak_tflops, mfu, tok_s, hours,
    gpu_hours, price, cost_usd, batch_size, seq_len, zero_stage, recompute, master_weights, bf16_params, layout,
    memory (bytes by part, which parts depends on ``layout``), memory_gib, gpu_memory_gib, fits, max_batch,
    max_batch_by_recompute (the largest B at each -r the layout has, the other settings kept), recompute_whole,
    whole_blocks_needed (the fewest blocks recomputed whole for batch_size to fit at this -r, when it does not
    fit as asked; None otherwise), fp8 (the trainer's --fp8: every block linear in FP8, ours; -1 as the trainer
    decides it, :func:`gpt2train.config.fp8_rule`).
    """
    cfg = resolve_model(model)
    card = get_gpu(gpu)
    if gpus < 1:
        raise UserError(f"--gpus {gpus}: must be at least 1")
    if not 0 < mfu <= 1:
        raise UserError(f"--mfu {mfu}: must be in (0, 1], e.g. 0.47")
    if price < 0:
        raise UserError(f"--price {price}: must not be negative")
    if tokens <= 0:
        raise UserError(f"--tokens {tokens}: must be positive")
    if recipe not in RECIPES:
        raise UserError(f"--recipe {recipe}: use one of {', '.join(RECIPES)}")
    if bf16_params == -1:  # the trainer's rule, for its CUDA fast path in bf16 (the classic recipe's AdamW)
        bf16_params = bf16_params_rule(True, gpus, master_weights, "bf16", "adamw" if recipe == "classic" else "muon")
    classic_tokens = tokens
    if recipe == "modern":
        tokens = round(tokens * MODERN_TOKEN_RATIO)
    if not 0 < seq_len <= cfg.max_seq_len:
        raise UserError(f"-t {seq_len}: must be in 1..{cfg.max_seq_len} (the model's max sequence length)")
    fpt = cfg.flops_per_token(seq_len)
    flops = fpt * tokens
    flop_s = gpus * card.peak_tflops * 1e12 * mfu
    seconds = flops / flop_s
    if recipe == "modern":
        seconds *= MODERN_STEP_TIME_RATIO  # same tokens per step, slower steps
    hours = seconds / 3600
    if fp8 not in (-1, 0, 1, 2):
        raise UserError(f"--fp8 {fp8}: use 0 (bf16 matmuls), 1 or 2 (FP8, as the trainer's --fp8), -1 (as the trainer)")
    asked = fp8

    def fp8_at(r: int, whole: int = 0) -> dict:
        """The trainer's FP8 settings on its fast path at -r ``r``: --fp8 as asked or by its rule (-1), and
        --fp8-classifier -1's mode (4 beside FP8 blocks without a soft-cap: the e4m3 copies of x and W and a chunk's
        float8 gradient; else 2: the copies only)."""
        model = apply_architecture(cfg, RECIPES[recipe])  # the rule asks whether the model is one recipe's whole
        rule = fp8_rule(card.hopper, gpus, model, RECIPES[recipe]["optimizer"], "bf16", r, whole)
        linears = asked if asked != -1 else int(rule and layout != "llmc")
        classifier = (
            0 if layout == "llmc" else fp8_classifier_rule(card.hopper, gpus, bool(linears), model.logit_softcap)
        )
        return {"fp8_linears": "all" if linears else "none", "fp8_classifier": classifier}

    decided = fp8_at(recompute, recompute_whole)
    fp8 = int(decided["fp8_linears"] == "all")
    mem_kwargs = dict(world_size=gpus, zero_stage=zero_stage, recompute=recompute, master_weights=master_weights,
                      layout=layout, bf16_params=bf16_params, recompute_whole=recompute_whole, **decided)  # fmt: skip
    mem = estimate_memory(cfg, batch_size, seq_len, **mem_kwargs)
    card_bytes = card.memory_mib * MIB
    max_batch = max_batch_size(cfg, card_bytes, seq_len, **mem_kwargs)
    whole = None
    if max_batch < batch_size and layout == "gpt2train" and recompute < 3:
        whole = whole_blocks_needed(cfg, card_bytes, batch_size, seq_len, **mem_kwargs)
    return {
        "model": model,
        "n_layer": cfg.n_layer,
        "n_embd": cfg.n_embd,
        "params": cfg.num_parameters(),
        "flops_per_token": fpt,
        "tokens": tokens,
        "recipe": recipe,
        "classic_tokens": classic_tokens,
        "flops": flops,
        "gpu": gpu.lower(),
        "gpu_name": card.name,
        "gpus": gpus,
        "peak_tflops": round(card.peak_tflops, 1),
        "mfu": mfu,
        "tok_s": tokens / seconds,
        "hours": hours,
        "gpu_hours": hours * gpus,
        "price": price,
        "cost_usd": hours * gpus * price,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "zero_stage": zero_stage,
        "recompute": recompute,
        "recompute_whole": recompute_whole,
        "fp8": fp8,
        "master_weights": master_weights,
        "bf16_params": bf16_params,
        "layout": layout,
        "memory": mem,
        "memory_gib": mem["total"] / GIB,
        "gpu_memory_gib": card_bytes / GIB,
        "fits": mem["total"] <= card_bytes,
        "max_batch": max_batch,
        "max_batch_by_recompute": max_batch_by_recompute(cfg, card_bytes, seq_len, fp8_at, **mem_kwargs),
        "whole_blocks_needed": whole,
    }


def _si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def format_plan(p: dict) -> str:
    """The human-readable report of ``make_plan``'s result."""
    mem = p["memory"]
    lines = [
        f"model        {p['model']} (L={p['n_layer']}, C={p['n_embd']}): {p['params']:,} parameters",
        f"tokens       {p['tokens']:,} ({_si(p['tokens'])}), T={p['seq_len']}",
        *(
            [
                f"recipe       modern recipe: {p['tokens'] / p['classic_tokens']:.2f} x the classic recipe's "
                f"{_si(p['classic_tokens'])} tokens for the same loss (plan.MODERN_TOKEN_RATIO), each step "
                f"{MODERN_STEP_TIME_RATIO:.2f} x as long (plan.MODERN_STEP_TIME_RATIO); measured over 13M tokens",
            ]
            if p.get("recipe") == "modern"
            else []
        ),  # fmt: skip
        f"compute      {p['flops']:.3e} FLOPs ({p['flops_per_token']:,} per token = 6N + 6LCT)",
        f"hardware     {p['gpus']} x {p['gpu']} ({p['gpu_name']}, {p['peak_tflops']} TFLOP/s bf16 peak)",
        f"throughput   {p['tok_s']:,.0f} tok/s at {p['mfu'] * 100:.1f}% MFU"
        + (" (the classic model's; the modern recipe's slower steps included)" if p.get("recipe") == "modern" else ""),
        f"time         {p['hours']:.1f} h ({p['gpu_hours']:,.0f} GPU-hours)",
        f"cost         ${p['cost_usd']:,.0f} at ${p['price']:.2f}/GPU-hour",
        f"memory/GPU   {p['memory_gib']:.1f} GiB of {p['gpu_memory_gib']:.1f} GiB at B={p['batch_size']}"
        f" -z {p['zero_stage']} -r {p['recompute']}"
        + (f" --recompute-whole {p['recompute_whole']}" if p.get("recompute_whole") else "")
        + f" -w {p['master_weights']}"
        + (" --bf16-params 1" if p.get("bf16_params") else "")
        + (f" --fp8 {p['fp8']}" if p.get("fp8") else "")
        + f" ({p['layout']} layout)"
        + ("" if p["fits"] else "  (does NOT fit)"),
    ]
    for k, v in mem.items():  # the parts differ between layouts
        if k != "total":
            lines.append(f"  {k:<16} {v / GIB:7.2f} GiB")
    lines.append(f"max batch    B={p['max_batch']} fits (estimate; -b auto probes from here)")
    by_r = p.get("max_batch_by_recompute") or {}
    lines.append("  by -r       " + " | ".join(f"-r {r}: B={b}" for r, b in by_r.items()))
    if p.get("whole_blocks_needed") is not None:
        n = p["whole_blocks_needed"]
        lines.append(f"  B={p['batch_size']}        fits at -r {p['recompute']} with --recompute-whole {n} (the first {n} "
                     f"of {p['n_layer']} blocks recomputed whole, as -r 3)")  # fmt: skip
    return "\n".join(lines)
