"""`gpt2train eval`: validation loss and/or HellaSwag accuracy of a model file."""

from __future__ import annotations

import json
import sys

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="validation loss and HellaSwag accuracy of a model",
        description="Evaluate an llm.c model .bin, a run directory (newest complete checkpoint) or a "
        "HuggingFace GPT-2 directory: val loss over token shards (-j) and/or HellaSwag (--hellaswag).",
    )
    p.add_argument("--model", "-e", required=True, help="llm.c .bin, run dir, or HuggingFace GPT-2 dir")
    p.add_argument("-j", "--val-data", default=None, help="val token shards (glob); omit to skip val loss")
    p.add_argument(
        "--hellaswag",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="score HellaSwag; FILE defaults to the one `gpt2train prepare hellaswag` stores",
    )
    p.add_argument("-b", "--batch-size", type=int, default=4, help="val batch size B (default 4)")
    p.add_argument(
        "-t",
        "--seq-len",
        type=int,
        default=1024,
        help="val sequence length T (default 1024, capped at the model's)",
    )
    p.add_argument("-m", "--val-max-steps", type=int, default=-1, help="val batches to use; -1: all (default)")
    p.add_argument("--batch-rows", type=int, default=64, help="HellaSwag rows per forward pass (4 per example)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N HellaSwag examples (0: all)")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="autocast dtype for the forward")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from gpt2train.evaluate import hellaswag_eval, load_model, resolve_device, val_loss

    if args.val_data is None and args.hellaswag is None:
        raise UserError("eval: nothing to do; give -j VAL_GLOB and/or --hellaswag [FILE]")
    for flag, v in (("-b", args.batch_size), ("-t", args.seq_len), ("--batch-rows", args.batch_rows)):
        if v <= 0:
            raise UserError(f"{flag} must be positive, not {v}")
    device = resolve_device(args.device)
    autocast = torch.bfloat16 if args.dtype == "bf16" else None
    model = load_model(args.model, device)
    result: dict = {"model": args.model, "val_loss": None, "hellaswag_acc": None, "hellaswag_acc_norm": None}
    if args.val_data is not None:
        T = min(args.seq_len, model.config.max_seq_len)
        v = val_loss(model, args.val_data, args.batch_size, T, args.val_max_steps, device, autocast)
        result.update(val_loss=v["val_loss"], bits_per_byte=v["bits_per_byte"], val_batches=v["batches"])
        result["val_tokens"] = v["tokens"]
    if args.hellaswag is not None:
        from gpt2train.data.hellaswag import load_examples
        from gpt2train.paths import default_hellaswag_path

        path = args.hellaswag or str(default_hellaswag_path())
        if not args.hellaswag:
            import os

            if not os.path.exists(path):
                raise UserError(
                    f"HellaSwag file {path} not found: run `gpt2train prepare hellaswag` or pass --hellaswag FILE"
                )
        examples = load_examples(path)
        if args.limit > 0:
            examples = examples[: args.limit]
        h = hellaswag_eval(model, examples, device, batch_rows=args.batch_rows, autocast_dtype=autocast)
        result.update(
            hellaswag_acc=h["acc"],
            hellaswag_acc_norm=h["acc_norm"],
            hellaswag_acc_charnorm=h["acc_charnorm"],
            examples=h["examples"],
        )
    if args.json:
        print(json.dumps(result))
        return 0
    out = sys.stdout
    if result["val_loss"] is not None:
        print(
            f"val loss {result['val_loss']:.4f}  bits/byte {result['bits_per_byte']:.4f}  "
            f"({result['val_batches']} batches, {result['val_tokens']} tokens)",
            file=out,
        )
    if result["hellaswag_acc"] is not None:
        print(
            f"HellaSwag {result['examples']} examples: acc {result['hellaswag_acc']:.4f}  "
            f"acc_norm {result['hellaswag_acc_norm']:.4f} (llm.c's figure)  "
            f"acc_charnorm {result['hellaswag_acc_charnorm']:.4f}",
            file=out,
        )
    return 0
