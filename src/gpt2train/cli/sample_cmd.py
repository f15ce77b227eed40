"""`gpt2train sample` (not written yet)."""

from gpt2train.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("sample", help="(not available yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise UserError("gpt2train sample is not available yet")
