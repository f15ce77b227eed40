"""Tokenizer throughput of the prepare engine vs the plain approach, on the shared English corpus.

plain:  multiprocessing.Pool.imap over documents, one encode_ordinary per document, a Python list back
        (EOT + tokens), chunksize 16 -- how llm.c's dev/data scripts do it.
engine: gpt2train.data.prepare.tokenize_stream -- chunks of ~256K characters per task, encode_to_numpy,
        one uint16 array back per chunk, bounded in-flight queue; workers=1 runs in-process.

Both read the same documents lazily from the same gzip files (reading is part of the time) and count
the same tokens. Best of --repeat interleaved runs each; wall time and CPU time (all processes).
Run:  PYTHONPATH=src python bench/tokenize_throughput.py [--separator blankline line]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time

from gpt2train.data.prepare import tokenize_stream
from gpt2train.data.text_sources import DocSource
from gpt2train.data.tokenizer import EOT_TOKEN, gpt2_encoding

DEFAULT_CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "corpus", "*.txt.gz")


def _plain_one(doc: str) -> list[int]:
    return [EOT_TOKEN, *gpt2_encoding().encode_ordinary(doc)]


def _cpu_seconds() -> float:
    # this process plus its finished children (pool workers are joined before a run returns)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_plain(source, workers: int) -> int:
    n = 0
    with mp.get_context("fork").Pool(workers) as pool:
        for toks in pool.imap(_plain_one, iter(source), chunksize=16):
            n += len(toks)
    return n


def run_engine(source, workers: int) -> int:
    return sum(t.size for t, _ in tokenize_stream(iter(source), workers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=DEFAULT_CORPUS)
    ap.add_argument("--separator", nargs="+", default=["blankline", "line"])
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs (the CPU may be shared)")
    ap.add_argument("--json", default="tokenize_throughput.json")
    args = ap.parse_args()
    gpt2_encoding()  # built once before forking, for both methods
    sources = {sep: DocSource([args.input], separator=sep) for sep in args.separator}
    n_docs = {sep: sum(1 for _ in src) for sep, src in sources.items()}
    configs = [(sep, w, m) for sep in args.separator for w in args.workers for m in ("plain", "engine")]
    best: dict = {}
    for _ in range(args.repeat):  # interleaved, so a busy moment on a shared CPU hits every config alike
        for sep, workers, method in configs:
            fn = run_plain if method == "plain" else run_engine
            cpu0, t0 = _cpu_seconds(), time.perf_counter()
            tokens = fn(sources[sep], workers)
            dt, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            old = best.get((sep, workers, method))
            best[(sep, workers, method)] = (
                min(dt, old[0]) if old else dt,
                min(cpu, old[1]) if old else cpu,
                tokens,
            )
    rows = []
    for sep, workers, method in configs:
        dt, cpu, tokens = best[(sep, workers, method)]
        rows.append(
            dict(separator=sep, docs=n_docs[sep], workers=workers, method=method, tokens=tokens,
                 seconds=round(dt, 3), tok_per_s=round(tokens / dt), cpu_seconds=round(cpu, 3),
                 tok_per_cpu_s=round(tokens / cpu))
        )  # fmt: skip
        print(
            f"{sep:9s} docs={n_docs[sep]:7d} workers={workers} {method:6s} {tokens:>11,} tok {dt:7.2f} s "
            f"{tokens / dt / 1e6:6.2f} M tok/s  cpu {cpu:6.2f} s {tokens / cpu / 1e6:5.2f} M tok/cpu-s",
            flush=True,
        )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (> 0: the CPU is shared)")
    result = {
        "load_average_end": load,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "input": args.input,
        "rows": rows,
    }
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
