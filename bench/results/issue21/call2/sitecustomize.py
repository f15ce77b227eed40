# issue 21 experiment only (carried, not in the tree): EXP_INDUCTOR="triton.prefer_nd_tiling=1,..." sets
# torch._inductor.config values in every Python process that sees it
import os

if os.environ.get("EXP_INDUCTOR"):
    import torch._inductor.config as c

    for kv in os.environ["EXP_INDUCTOR"].split(","):
        k, v = kv.split("=")
        *path, last = k.split(".")
        obj = c
        for p in path:
            obj = getattr(obj, p)
        setattr(obj, last, {"1": True, "0": False}.get(v, v))
    import sys

    print(f"EXP_INDUCTOR: {os.environ['EXP_INDUCTOR']}", file=sys.stderr)
