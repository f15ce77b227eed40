"""`gpt2train plot`: loss and HellaSwag curves of runs against the OpenAI GPT-2/GPT-3 checkpoints."""

from __future__ import annotations

from gpt2train import plot


def register(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="plot val loss and HellaSwag of runs (llm.c's main.log works too)",
        description=(
            "Plot runs as llm.c's notebook does: val loss and HellaSwag vs step or tokens, with the "
            "OpenAI GPT-2 and GPT-3 checkpoints of the run's size as horizontal lines (size from the "
            "run's config.json, or --model for a bare llm.c main.log)."
        ),
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_LOG", help="run directories or main.log files")
    p.add_argument("-o", "--output", required=True, help="image file: .png, .svg or .pdf")
    p.add_argument("--x", choices=["step", "tokens"], default="step", help="x axis (default step)")
    p.add_argument("--smooth", type=int, default=0, help="moving-average window of the train panel (0: off)")
    p.add_argument(
        "--panels",
        default=",".join(plot.DEFAULT_PANELS),
        help=f"comma-separated, from {','.join(plot.PANELS)} (default {','.join(plot.DEFAULT_PANELS)})",
    )
    p.add_argument("--model", default=None, help="size for the baselines when config.json is missing: d12..d48")
    p.add_argument(
        "-d",
        "--total-batch-size",
        type=int,
        default=None,
        help="tokens per step for --x tokens without config.json",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from gpt2train.outputs import writing_output

    with writing_output(args.output, "-o", directory=False):
        out = plot.plot_runs(
            args.runs,
            args.output,
            x=args.x,
            smooth_window=args.smooth,
            panels=plot.parse_panels(args.panels),
            model=args.model,
            total_batch_size=args.total_batch_size,
        )
    print(f"wrote {out}")
    return 0
