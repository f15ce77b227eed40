"""`gpt2train status` (not written yet)."""

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("status", help="(not available yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise UserError("gpt2train status is not available yet")
