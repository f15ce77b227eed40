"""`gpt2train export` (not written yet)."""

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("export", help="(not available yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise UserError("gpt2train export is not available yet")
