"""`gpt2train sample`: generate text from a model, streaming it to stdout."""

from __future__ import annotations

import sys

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="generate text from a model",
        description="Sample continuations of a prompt from an llm.c .bin, a run dir or a HF GPT-2 dir.",
    )
    p.add_argument("--model", "-e", required=True, help="llm.c .bin, run dir, or HuggingFace GPT-2 dir")
    p.add_argument("--prompt", "-p", default="", help="prompt text (default: start from <|endoftext|>)")
    p.add_argument("-n", "--num-samples", type=int, default=1, help="number of samples (default 1)")
    p.add_argument("--max-tokens", "-g", type=int, default=64, help="new tokens per sample (default 64)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass, in (0, 1]")
    p.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context every token")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from gpt2train.data.tokenizer import EOT_TOKEN, encode
    from gpt2train.evaluate import load_model, resolve_device
    from gpt2train.sample import StreamDecoder, generate

    if args.num_samples <= 0:
        raise UserError(f"-n must be positive, not {args.num_samples}")
    if args.max_tokens < 0:
        raise UserError(f"--max-tokens must be >= 0, not {args.max_tokens}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, not {args.temperature}")
    if args.top_k is not None and args.top_k <= 0:
        raise UserError(f"--top-k must be positive, not {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must lie in (0, 1], not {args.top_p}")
    device = resolve_device(args.device)
    model = load_model(args.model, device)
    # an empty prompt starts from <|endoftext|>, as llm.c's samples do
    prompt = encode(args.prompt) if args.prompt else [EOT_TOKEN]
    gen = torch.Generator(device=device).manual_seed(args.seed)
    out = sys.stdout
    for i in range(args.num_samples):
        if args.num_samples > 1:
            out.write(f"--- sample {i + 1}/{args.num_samples}\n")
        out.write(args.prompt)
        out.flush()
        dec = StreamDecoder()

        def emit(tok, dec=dec):
            out.write(dec.feed(tok))
            out.flush()

        generate(
            model, prompt, args.max_tokens, args.temperature, args.top_k, args.top_p, gen,
            use_cache=not args.no_cache, on_token=emit,
        )  # fmt: skip
        out.write(dec.flush() + "\n")
        out.flush()
    return 0
