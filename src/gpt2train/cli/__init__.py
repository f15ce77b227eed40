"""The ``gpt2train`` command line: one subcommand per job, parsing only; the work lives elsewhere.

Each subcommand's parser is in its own module here, exposing ``register(subparsers)``, which adds a
parser whose ``func`` default runs the command with the parsed arguments.
"""

from __future__ import annotations

import argparse
import sys

from gpt2train import __version__
from gpt2train.errors import UserError

# order = order in --help
_COMMANDS = ["train", "prepare", "data", "eval", "sample", "export", "plot", "plan", "status"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="gpt2train",
        description="Train GPT-2-class models from scratch with llm.c's command line and files.",
    )
    parser.add_argument("--version", action="version", version=f"gpt2train {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"gpt2train.cli.{name}_cmd").register(sub)
    return parser


# what makes room when a command other than train (which says it itself) runs out of GPU memory
_OOM_ELSEWHERE = "run on a larger card or with --device cpu"
_OOM_ANY = f"free the GPU of other processes, or {_OOM_ELSEWHERE}"
_OOM_ROOM = {
    "eval": f"lower -b (val loss) or --batch-rows (HellaSwag), use --dtype bf16, or {_OOM_ELSEWHERE}",
    "sample": f"lower --max-tokens (the KV cache grows with it) or {_OOM_ELSEWHERE}",
}


def _error_line(message: str) -> None:
    # one write, so that the lines of several processes sharing stderr do not interleave mid-line
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and ``python -m gpt2train``."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        _error_line(str(e))
        return e.exit_code
    except Exception as e:
        if type(e).__name__ != "OutOfMemoryError":  # torch's; not imported here, so --help stays fast
            raise
        _error_line(f"out of GPU memory in `gpt2train {args.command}`: {_OOM_ROOM.get(args.command, _OOM_ANY)}")
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
