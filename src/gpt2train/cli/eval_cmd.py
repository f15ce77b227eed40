"""`gpt2train eval` (not written yet)."""

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("eval", help="(not available yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise UserError("gpt2train eval is not available yet")
