"""`gpt2train data info`: list token shards and check their headers (parsing only)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect token shards")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    i = actions.add_parser("info", help="shards, tokens, val/train, header check; exit 1 if any is bad")
    i.add_argument("path", metavar="DIR_OR_GLOB", help="a folder of .bin shards, or a glob / file")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    i.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_info(args) -> int:
    import json

    from gpt2train.data.info import format_table, shard_report

    report = shard_report(args.path)
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 1 if report["bad"] else 0
