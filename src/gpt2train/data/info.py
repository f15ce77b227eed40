"""`gpt2train data info`: what a folder of token shards holds, and which files are broken."""

from __future__ import annotations

import glob
import os

from gpt2train.config import GPT2_VOCAB_SIZE
from gpt2train.errors import UserError
from gpt2train.formats.shards import check_token_ids, read_shard_header


def split_of(filename: str) -> str:
    """'val' / 'train' from llm.c-style names (``*_val_*``, ``*_train_*``), else '?'."""
    stem = os.path.basename(filename).lower()
    if "val" in stem:
        return "val"
    if "train" in stem:
        return "train"
    return "?"


def shard_report(dir_or_glob: str, vocab_size: int = GPT2_VOCAB_SIZE) -> dict:
    """Every .bin shard of a folder (or glob): tokens, split, the checks training makes (header, length, token
    ids below ``vocab_size``); bad files listed, not raised."""
    if os.path.isdir(dir_or_glob):
        paths = glob.glob(os.path.join(dir_or_glob, "*.bin"))
    else:
        paths = [p for p in glob.glob(dir_or_glob) if os.path.isfile(p)]
    paths.sort(key=lambda p: (split_of(p) != "val", p))  # val first, as in llm.c listings
    if not paths:
        raise UserError(f"{dir_or_glob!r} matches no .bin files: check the path or run gpt2train prepare first")
    shards, totals = [], {"val": 0, "train": 0, "?": 0}
    for p in paths:
        row = {"path": p, "split": split_of(p)}
        try:
            info = read_shard_header(p)
            check_token_ids(info, vocab_size)
            row.update(ok=True, tokens=info.num_tokens, bytes=info.file_bytes, error=None)
            totals[row["split"]] += info.num_tokens
        except UserError as e:
            row.update(ok=False, tokens=None, bytes=os.path.getsize(p) if os.path.exists(p) else None, error=str(e))
        shards.append(row)
    bad = sum(not r["ok"] for r in shards)
    return {"shards": shards, "tokens": totals, "total_tokens": sum(totals.values()), "bad": bad}


def format_table(report: dict) -> str:
    """A plain-text table of a :func:`shard_report`."""
    width = max(len(r["path"]) for r in report["shards"])
    lines = [f"{'file':<{width}}  split  {'tokens':>14}  check"]
    for r in report["shards"]:
        tokens = f"{r['tokens']:,}" if r["ok"] else "-"
        check = "ok" if r["ok"] else "BAD: " + r["error"]
        lines.append(f"{r['path']:<{width}}  {r['split']:<5}  {tokens:>14}  {check}")
    t = report["tokens"]
    lines.append(
        f"{len(report['shards'])} shards, {report['total_tokens']:,} tokens "
        f"(val {t['val']:,}, train {t['train']:,}"
        + (f", unknown split {t['?']:,}" if t["?"] else "")
        + f"); {report['bad']} bad"
    )
    return "\n".join(lines)
