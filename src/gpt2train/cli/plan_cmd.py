"""`gpt2train plan` (not written yet)."""

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("plan", help="(not available yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise UserError("gpt2train plan is not available yet")
