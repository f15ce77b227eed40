"""`gpt2train status`: where a run stands (also while it trains)."""

from __future__ import annotations

import json

from gpt2train import runinfo


def register(sub) -> None:
    p = sub.add_parser(
        "status",
        help="progress, losses, speed, ETA and checkpoints of a run directory",
        description=(
            "Summarize a run directory: last step of max steps, last train/val loss and HellaSwag, "
            "tok/s, elapsed and ETA (from progress.jsonl, else main.log and file times), and the "
            "checkpoints (complete = DONE marker present). Safe to run while the run trains."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the -o directory of a training run")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(func=run)


def run(args) -> int:
    st = runinfo.run_status(args.run_dir)
    print(json.dumps(runinfo.to_jsonable(st)) if args.json else runinfo.format_status(st))
    return 0
