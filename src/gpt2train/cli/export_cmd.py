"""`gpt2train export`: convert a model to a HuggingFace directory or an llm.c model file."""

from __future__ import annotations

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="convert a model to HuggingFace or llm.c format",
        description="Read an llm.c .bin, a run dir or a HuggingFace GPT-2 dir and write it as a "
        "HuggingFace GPT2LMHeadModel directory (--to hf) or an llm.c model file (--to llmc).",
    )
    p.add_argument("--model", "-e", required=True, help="llm.c .bin, run dir, or HuggingFace GPT-2 dir")
    p.add_argument("--to", choices=["hf", "llmc"], required=True, help="output format")
    p.add_argument("-o", "--output", required=True, help="output directory (hf) or file (llmc)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="weights dtype (default fp32)")
    p.set_defaults(func=run)


def run(args) -> int:
    from gpt2train.outputs import writing_output

    # the output is checked before the model is read, and a failed write names it
    with writing_output(args.output, "-o", directory=args.to == "hf"):
        return _export(args)


def _export(args) -> int:
    from gpt2train.formats.load import load_pretrained

    cfg, sd = load_pretrained(args.model)
    if args.to == "hf" and not cfg.classic:  # a trust_remote_code directory (formats/hf_modern.py)
        from gpt2train.formats.hf_modern import write_modern_hf_dir

        write_modern_hf_dir(args.output, cfg, sd, dtype=args.dtype)
    elif args.to == "hf":
        from gpt2train.formats.hf import write_hf_dir

        write_hf_dir(args.output, cfg, sd, dtype=args.dtype)
    elif not cfg.classic:
        raise UserError(f"{args.model} is a modern-recipe model: llm.c's format cannot hold it; use --to hf")
    else:
        from gpt2train.formats.llmc_model import write_llmc_model

        write_llmc_model(args.output, sd, cfg, dtype=args.dtype)
    print(f"wrote {args.output} ({args.to}, {args.dtype}, {cfg.n_layer} layers, {cfg.n_embd} channels)")
    return 0
