"""`gpt2train train`: llm.c's flags (same letters, same defaults) beside readable long options."""

from __future__ import annotations

import argparse
import os

from gpt2train.config import TrainConfig
from gpt2train.errors import UserError
from gpt2train.paths import cache_dir

# (llm.c flag, long option, TrainConfig field, type, help)
_FLAGS = [
    ("-i", "--train-data", "train_data", str, "train shards, a glob pattern"),
    ("-j", "--val-data", "val_data", str, "val shards, a glob pattern"),
    (
        "-e",
        "--model",
        "model",
        str,
        "preset (d12, gpt2:d48, gpt3:c768), llm.c .bin, run dir or HuggingFace dir",
    ),
    ("-o", "--output-dir", "output_dir", str, "run dir for main.log and checkpoints (none: no logging)"),
    (
        "-lg",
        "--log-gpu-every",
        "log_gpu_every",
        int,
        "GPU utilisation/memory/power line every N steps (-1 off)",
    ),
    ("-n", "--checkpoint-every", "checkpoint_every", int, "write a checkpoint every N steps (0: only never)"),
    ("-nk", "--checkpoints-keep", "checkpoints_keep", int, "keep the newest N checkpoints (0: keep all)"),
    (
        "-nm",
        "--major-checkpoint-every",
        "major_checkpoint_every",
        int,
        "checkpoints at multiples of N are never deleted",
    ),
    ("-y", "--resume", "resume", int, "1: resume from the newest complete checkpoint in -o (fresh if none)"),
    ("-b", "--batch-size", "batch_size", "batch", "micro-batch size B per process; auto: the largest that fits"),
    ("-t", "--seq-len", "seq_len", int, "sequence length T"),
    (
        "-d",
        "--total-batch-size",
        "total_batch_size",
        int,
        "tokens per step (-1: B*T*processes, no accumulation)",
    ),
    ("-x", "--max-steps", "max_steps", int, "optimisation steps (-1: one epoch of the train data)"),
    ("-k", "--lr-schedule", "lr_schedule", str, "cosine | linear | constant | wsd"),
    ("-l", "--lr", "lr", float, "peak learning rate"),
    ("-u", "--warmup-steps", "warmup_steps", int, "linear warmup steps"),
    ("-q", "--final-lr-frac", "final_lr_frac", float, "final learning rate as a fraction of -l"),
    ("-c", "--weight-decay", "weight_decay", float, "AdamW weight decay (2-D weights only)"),
    (
        "-sl",
        "--skip-loss-z",
        "skip_loss_z",
        float,
        "skip the update when the loss z-score exceeds this (0: off)",
    ),
    (
        "-sg",
        "--skip-grad-z",
        "skip_grad_z",
        float,
        "skip the update when the grad-norm z-score exceeds this (0: off)",
    ),
    ("-v", "--val-every", "val_every", int, "val loss every N steps (and at 0 and the end)"),
    ("-m", "--val-max-steps", "val_max_steps", int, "val batches of B*T tokens (-1: the whole split)"),
    ("-s", "--sample-every", "sample_every", int, "print a sample every N steps (0: never)"),
    ("-g", "--gen-tokens", "gen_tokens", int, "tokens per sample"),
    ("-h", "--hellaswag", "hellaswag", int, "1: HellaSwag accuracy with every val loss"),
    (
        "-a",
        "--overfit-single-batch",
        "overfit_single_batch",
        int,
        "1: train on the first val batch only (debugging)",
    ),
    ("-f", "--tf32", "tf32", int, "1: TF32 matmuls for fp32 work on CUDA"),
    (
        "-w",
        "--master-weights",
        "master_weights",
        int,
        "1: fp32 master weights; 0: bf16 weights, stochastic rounding",
    ),
    (
        "-bp",
        "--bf16-params",
        "bf16_params",
        int,
        "1: bf16 parameters with the fp32 master copy in the optimizer (llm.c's -w 1 layout); needs -w 1; "
        "-1 (default): 1 for one process on the CUDA fast path with -w 1, bf16 and AdamW",
    ),
    (
        "-ge",
        "--gelu-fusion",
        "gelu_fusion",
        int,
        "GELU in cuBLASLt matmul epilogues: 1 forward, 2 and backward, 0 off; -1: 2 on the CUDA fast path (-r 0 only)",
    ),
    ("-z", "--zero-stage", "zero_stage", int, "0: replicated optimizer; 1: ZeRO-1, optimizer state sharded"),
    (
        "-r",
        "--recompute",
        "recompute",
        int,
        "activation recomputation: 0 none, 1 GELU, 2 GELU and LayerNorm (as llm.c), 3 each block's sublayers whole",
    ),
]
_EXTRA = [
    (
        "--recompute-whole",
        "recompute_whole",
        int,
        "recompute the first N blocks whole (as -r 3), the rest at -r: a -b that -r alone cannot fit, at a fraction "
        "of -r 3's cost; gpt2train plan -b B names the N; -1: that N, for this card (default 0)",
    ),
    ("--n-layer", "n_layer", int, "override the preset's layers"),
    ("--n-head", "n_head", int, "override the preset's heads"),
    ("--n-embd", "n_embd", int, "override the preset's channels"),
    ("--vocab-size", "vocab_size", int, "override the vocabulary size (padded to a multiple of 128)"),
    ("--max-seq-len", "max_seq_len", int, "override the maximum sequence length"),
    ("--seed", "seed", int, "seed of the initialisation and the data order"),
    ("--outlier-window", "outlier_window", int, "steps in the -sl/-sg z-score window"),
    ("--max-skips", "max_skips", int, "stop with an error after this many skipped updates in a row (0: never)"),
    ("--on-max-skips", "on_max_skips", str, "at --max-skips: stop, or rollback to the newest checkpoint"),
    ("--max-rollbacks", "max_rollbacks", int, "with --on-max-skips rollback: stop after this many rollbacks"),
    ("--beta1", "beta1", float, "AdamW beta1"),
    ("--beta2", "beta2", float, "AdamW beta2"),
    ("--eps", "eps", float, "AdamW epsilon"),
    ("--grad-clip", "grad_clip", float, "clip the global gradient norm to this"),
    ("--wsd-decay-frac", "wsd_decay_frac", float, "wsd schedule: fraction of steps spent decaying"),
    (
        "--hellaswag-file",
        "hellaswag_file",
        str,
        "HellaSwag jsonl (default: where `prepare hellaswag` puts it)",
    ),
    ("--model-file-dtype", "model_file_dtype", str, "model_%%08d.bin precision: fp32 or bf16"),
    ("--grad-reduce-dtype", "grad_reduce_dtype", str, "dtype of the gradient averaging over processes: fp32 | bf16"),
    ("--device", "device", str, "auto | cpu | cuda"),
    ("--dtype", "dtype", str, "auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32"),
    ("--compile", "compile", int, "torch.compile: 1 on, 0 off (-1: on with the fast path)"),
    ("--compile-scope", "compile_scope", str, "blocks: compile each block (fast start); model: the whole model"),
    (
        "--compile-mode",
        "compile_mode",
        str,
        "torch.compile mode: default | max-autotune-no-cudagraphs | reduce-overhead (CUDA graphs) | max-autotune",
    ),
    ("--attention", "attention", str, "SDPA backend on CUDA: auto | flash | cudnn | efficient | math"),
    ("--deterministic", "deterministic", int, "1: deterministic kernels, bit-identical GPU runs (slower)"),
    (
        "--fp8",
        "fp8",
        int,
        "1: the blocks' matmuls in FP8 with per-tensor scaling (Hopper/Ada; opt-in, see README); 2: the gradient "
        "matmuls in FP8's fast accumulation too (faster)",
    ),
    (
        "--accumulate-in-matmul",
        "accumulate_in_matmul",
        int,
        "1: micro-steps' weight gradients summed by the matmuls into .grad (one process); 0 autograd's sums; "
        "-1: 1 on the fast path with bf16 parameters and AdamW",
    ),
    (
        "--fused-classifier",
        "fused_classifier",
        int,
        "chunked output layer + loss: 1/0 (-1: with the fast path)",
    ),
    ("--classifier-chunk", "classifier_chunk", int, "rows of logits the fused classifier holds at once (0: all)"),
    ("--recipe", "recipe", str, "classic (llm.c's GPT-2) or modern (Muon, rotary, QK-norm, ...): the levers' defaults"),
    ("--optimizer", "optimizer", str, "adamw | muon (Muon for hidden matrices, AdamW for the rest); default: recipe's"),
    ("--pos", "pos", str, "position encoding: learned | rotary; default: recipe's"),
    ("--qk-norm", "qk_norm", int, "1: RMS-normalise queries and keys; default: recipe's"),
    ("--mlp", "mlp", str, "MLP activation: gelu | relu2; default: recipe's"),
    ("--norm", "norm", str, "layernorm | rmsnorm (parameter-free, no biases); default: recipe's"),
    ("--zero-init-proj", "zero_init_proj", int, "1: output projections and untied head start at zero"),
    ("--untied-head", "untied_head", int, "1: an output layer of its own instead of wte; default: recipe's"),
    ("--logit-softcap", "logit_softcap", float, "squash logits to (-c, c) with c*tanh(x/c); 0 off"),
    ("--muon-lr", "muon_lr", float, "Muon peak lr for the hidden matrices"),
    ("--muon-momentum", "muon_momentum", float, "Muon momentum (Nesterov)"),
    ("--head-lr", "head_lr", float, "AdamW peak lr of an untied head (default: recipe's; classic: -l)"),
    ("--embed-lr", "embed_lr", float, "AdamW peak lr of an untied token embedding (default: recipe's; classic: -l)"),
]


def _batch_size(text: str) -> int | str:
    """-b N, or -b auto (kept as the word here; config_from_args stores it as 0 and refuses a literal 0)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def register(sub) -> None:
    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a GPT-2 (llm.c's flags)",
        add_help=False,  # -h is HellaSwag, as in llm.c
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a GPT-2 from scratch or from a checkpoint. Flags and defaults follow llm.c's "
        "train_gpt2cu; every flag also has a long option.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    for short, long, field, typ, text in _FLAGS:
        typ = _batch_size if typ == "batch" else typ
        p.add_argument(short, long, dest=field, type=typ, default=getattr(d, field), help=text)
    for long, field, typ, text in _EXTRA:
        p.add_argument(long, dest=field, type=typ, default=getattr(d, field), help=text)
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="read train data in order")
    p.add_argument("--plain", action="store_true", help="switch every fast path off (plain PyTorch)")
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="no TensorBoard event files")
    p.add_argument(
        "--wandb",
        default=None,
        metavar="PROJECT",
        help="also log to Weights & Biases (extra wandb: pip install 'gpt2train[wandb]'); -y 1 resumes its run",
    )
    # llm.c's multi-node flags: accepted so pasted commands work; torchrun's environment is what counts
    for flag in ("-pn", "-pr", "-pg", "-pi", "-ps", "-pf", "-pm", "-pp"):
        p.add_argument(flag, dest="llmc_" + flag[1:], default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def config_from_args(args) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    if values.get("batch_size") == "auto":
        values["batch_size"] = 0  # the trainer probes for the largest B that fits
    elif isinstance(values.get("batch_size"), int) and values["batch_size"] < 1:
        raise UserError(f"-b {values['batch_size']}: use -b auto for the largest micro-batch that fits, or a "
                        "positive -b")  # fmt: skip
    return TrainConfig(**values)


def run(args) -> int:
    from gpt2train.train.launch import apply_llmc_process_flags
    from gpt2train.train.loop import train

    apply_llmc_process_flags(args)
    # growable segments keep the allocator from fragmenting between differently sized step buffers
    # (the difference between nvidia-smi's and the allocator's peak); read when CUDA starts, so set here
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    # compiled kernels kept beside our other caches (not in /tmp), so a second start skips compilation
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    return train(config_from_args(args))
