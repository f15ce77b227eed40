"""`gpt2train plan`: time, cost and per-GPU memory of a training run, before renting the GPUs."""

from __future__ import annotations

import json

from gpt2train import plan
from gpt2train.config import FP8_AUTO_MIN_WIDTH


def register(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="predict time, cost and GPU memory of a run",
        description=(
            "Predict parameters, FLOPs (6N + 6LCT per token, llm.c's count), hours, dollars and "
            "per-GPU memory of a training run. Example (the seed run, GPT-2 1558M): "
            "gpt2train plan -e d48 --tokens 33.6B --gpus 8 --gpu h100 -z 1 -r 0"
        ),
    )
    p.add_argument("-e", "--model", required=True, help="preset: d12, d24, d36, d48, ..., gpt3:c768")
    p.add_argument("--tokens", default=None, help="training tokens: 33.6B, 10e9, 33554432000, 10M (or use -x and -d)")
    p.add_argument("-x", "--steps", type=int, default=None, help="optimizer steps (with -d) instead of --tokens")
    p.add_argument("-d", "--total-batch-size", type=int, default=None, help="tokens per step (with -x)")
    p.add_argument("--gpus", type=int, default=1, help="number of GPUs (default 1)")
    p.add_argument("--gpu", default="h100", choices=sorted(plan.GPUS), help="card (default h100)")
    p.add_argument(
        "--mfu",
        type=float,
        default=plan.DEFAULT_MFU,
        help=(
            f"model FLOPs utilization (default {plan.DEFAULT_MFU}: llm.c measured 47%% on the seed run; "
            "48.2%% reproduces its announced 24.0 h exactly)"
        ),
    )
    p.add_argument(
        "--price",
        type=float,
        default=plan.DEFAULT_PRICE,
        help=f"dollars per GPU-hour (default {plan.DEFAULT_PRICE}: the seed's $672 / (8 GPUs x 24 h))",
    )
    p.add_argument("-b", "--batch-size", type=int, default=16, help="micro-batch per GPU (default 16)")
    p.add_argument("-t", "--seq-len", type=int, default=plan.DEFAULT_SEQ_LEN, help="sequence length (1024)")
    p.add_argument("-z", "--zero-stage", type=int, default=0, choices=[0, 1, 2, 3], help="ZeRO stage (0)")
    p.add_argument(
        "-r",
        "--recompute",
        type=int,
        default=1,
        choices=[0, 1, 2, 3],
        help="0 none, 1 GELU, 2 +LayerNorm, 3 sublayers whole (ours) (1)",
    )
    p.add_argument("--recompute-whole", type=int, default=0, metavar="N",
                   help="the first N blocks recomputed whole (as -r 3), the rest at -r (0)")  # fmt: skip
    p.add_argument("--fp8", type=int, default=-1, choices=[-1, 0, 1, 2],
                   help="as the trainer's --fp8: 1 or 2, every block linear in FP8 (their saved e4m3 copies in the "
                   "estimate); 0: bf16 matmuls; -1 (default): as the trainer, 1 for one Hopper GPU (h100, h200) and "
                   f"a model of {FP8_AUTO_MIN_WIDTH:,}+ channels (either --recipe) at -r 0 or 1")  # fmt: skip
    p.add_argument("-w", "--master-weights", type=int, default=1, choices=[0, 1], help="fp32 master (1)")
    p.add_argument("-bp", "--bf16-params", type=int, default=-1, choices=[-1, 0, 1],
                   help="1: bf16 parameters, the fp32 master copy in the optimizer (llm.c's -w 1 layout); "
                   "-1 (default): as the trainer, 1 for one GPU with -w 1 and the classic recipe")  # fmt: skip
    p.add_argument(
        "--layout",
        default=plan.DEFAULT_LAYOUT,
        choices=plan.LAYOUTS,
        help="whose memory layout to estimate: gpt2train (our trainer, default) or llmc (llm.c's)",
    )
    p.add_argument(
        "--recipe",
        default="classic",
        choices=tuple(plan.RECIPES),
        help=f"modern: plan for {plan.MODERN_TOKEN_RATIO} x --tokens (the tokens the modern recipe needs for "
        f"the classic recipe's loss) at {plan.MODERN_STEP_TIME_RATIO} x the time per token (measured by "
        "bench/time_to_loss.py over a short run: optimistic for long ones)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(func=run)


def run(args) -> int:
    tokens = plan.resolve_tokens(args.tokens, args.steps, args.total_batch_size)
    result = plan.make_plan(
        args.model,
        tokens,
        args.gpus,
        args.gpu,
        mfu=args.mfu,
        price=args.price,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        zero_stage=args.zero_stage,
        recompute=args.recompute,
        recompute_whole=args.recompute_whole,
        fp8=args.fp8,
        master_weights=args.master_weights,
        bf16_params=args.bf16_params,
        layout=args.layout,
        recipe=args.recipe,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(plan.format_plan(result))
    return 0
