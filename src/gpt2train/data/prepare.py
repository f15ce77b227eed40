"""Dataset preparation: documents -> GPT-2 tokens -> llm.c shards, one engine for every source.

The engine (:func:`write_token_shards`) puts an EOT token before each document, tokenizes chunks of
documents in worker processes (each returns one uint16 array, so little is pickled), and cuts the
token stream into shards named like llm.c's: ``{name}_val_000000.bin``, ``{name}_train_000001.bin``...

Shard 0 is the val split: either the first ``shard_size`` tokens (FineWeb, as llm.c) or exactly the
first ``val_docs`` documents (``prepare text``). Later shards hold ``shard_size`` tokens each (the last
one fewer); a document may span two shards, as in llm.c.

Resume: a manifest (``.gpt2train-prepare.json``) in the output folder records the settings and, for
each finished shard, its token count and where the next shard starts in the document stream (document
index + tokens of that document already written). A re-run checks the listed shards' headers and sizes,
keeps the good prefix, skips the documents already consumed (without tokenizing them) and carries on,
so the output is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import collections
import itertools
import json
import multiprocessing as mp
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpt2train.data.tokenizer import EOT_TOKEN, gpt2_encoding
from gpt2train.errors import UserError
from gpt2train.formats.shards import HEADER_BYTES, read_shard_header, write_shard
from gpt2train.optional import require

MANIFEST = ".gpt2train-prepare.json"
MANIFEST_FORMAT = 1
CHUNK_CHARS = 1 << 18  # characters of text per work item: big enough to amortize IPC, small enough to balance
CHUNK_DOCS = 4096

# FineWeb facts from llm.c's dev/data/fineweb.py and the HuggingFace dataset cards. "revision": the dataset
# repository's commit that prepare streams by default (--revision), so that a re-run, or a resume weeks later,
# reads the same documents; it is recorded in the shards' manifest.
FINEWEB = {
    "fineweb-edu": {
        "repo": "HuggingFaceFW/fineweb-edu",
        "name": "edu_fineweb",
        "dir": "edu_fineweb",
        "revision": "87f09149ef4734204d70ed1d046ddc9ca3f2b8f9",
    },
    "fineweb": {
        "repo": "HuggingFaceFW/fineweb",
        "name": "fineweb",
        "dir": "fineweb",
        "revision": "9bb295ddab0e05d785b879661af7260fed5140fc",
    },
}
FINEWEB_SIZES = {
    "10B": ("sample-10BT", 10 * 10**9),
    "100B": ("sample-100BT", 100 * 10**9),
    "350B": ("sample-350BT", 350 * 10**9),
}

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINYSHAKESPEARE_VAL_TOKENS = 32768
HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
HELLASWAG_SHA256 = "0aa3b88843990f3f10a97b9575c94d7b71fb2205240ba04ae4884d9e9c992588"


# ---------------------------------------------------------------------------------------------- tokenizing


def _encode_np(enc, text: str) -> np.ndarray:
    # encode_to_numpy skips building a Python list; with no special tokens allowed it equals encode_ordinary
    if hasattr(enc, "encode_to_numpy"):
        return enc.encode_to_numpy(text, allowed_special=set(), disallowed_special=())
    return np.asarray(enc.encode_ordinary(text), dtype=np.uint32)


def encode_chunk(docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of ``docs`` as one uint16 array, EOT before each, and each document's length (EOT included)."""
    enc = gpt2_encoding()
    parts, lens = [], np.empty(len(docs), dtype=np.int64)
    eot = np.array([EOT_TOKEN], dtype=np.uint32)
    for i, doc in enumerate(docs):
        toks = _encode_np(enc, doc)
        parts.append(eot)
        parts.append(toks)
        lens[i] = toks.size + 1
    tokens = np.concatenate(parts).astype(np.uint16) if parts else np.empty(0, np.uint16)
    return tokens, lens


def _chunks(docs: Iterable[str]) -> Iterator[list[str]]:
    chunk, chars = [], 0
    for doc in docs:
        chunk.append(doc)
        chars += len(doc)
        if chars >= CHUNK_CHARS or len(chunk) >= CHUNK_DOCS:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def _warm_worker() -> None:
    gpt2_encoding()


def tokenize_stream(docs: Iterable[str], workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Ordered (tokens, doc_lengths) per chunk of documents, tokenized by ``workers`` processes.

    At most 2 * workers chunks are in flight, so memory stays bounded however long the stream is
    (Pool.imap would read the whole input ahead).
    """
    if workers <= 1:
        for chunk in _chunks(docs):
            yield encode_chunk(chunk)
        return
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else None)
    if ctx.get_start_method() == "fork":
        gpt2_encoding()  # build once here; forked workers inherit it
    with ctx.Pool(workers, initializer=_warm_worker) as pool:
        pending: collections.deque = collections.deque()
        for chunk in _chunks(docs):
            pending.append(pool.apply_async(encode_chunk, (chunk,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


# ---------------------------------------------------------------------------------------------- the engine


def shard_filename(name: str, index: int) -> str:
    """llm.c's naming: shard 0 is val, the rest train."""
    return f"{name}_{'val' if index == 0 else 'train'}_{index:06d}.bin"


@dataclass
class PrepareResult:
    out_dir: str
    shards: list[dict]
    complete: bool
    total_tokens: int
    docs: int


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _check_out_dir(out: Path, name: str, params: dict) -> list[dict]:
    """Make ``out``; return the finished shards worth keeping from an earlier run with the same settings."""
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out}: {e.strerror or e}") from None
    ours = re.compile(rf"^{re.escape(name)}_(val|train)_\d{{6}}\.bin(\.tmp)?$")
    entries = sorted(os.listdir(out))
    foreign = [n for n in entries if n not in (MANIFEST, MANIFEST + ".tmp") and not ours.match(n)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise UserError(
            f"output folder {out} holds files that this prepare did not make ({shown}); use an empty folder"
        )
    manifest_path = out / MANIFEST
    if not manifest_path.exists():
        if any(ours.match(n) for n in entries):
            raise UserError(
                f"output folder {out} holds {name}_*.bin shards but no {MANIFEST}, so they cannot be checked "
                "for resuming; delete them or use an empty folder"
            )
        return []
    try:
        manifest = json.loads(manifest_path.read_text())
        old_params, shards = manifest["params"], list(manifest["shards"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{manifest_path} is unreadable ({e}); delete the folder {out} and prepare again") from None
    if old_params != params:
        diff = [f"{k}: {old_params.get(k)!r} -> {v!r}" for k, v in params.items() if old_params.get(k) != v]
        raise UserError(
            f"output folder {out} was prepared with other settings ({'; '.join(diff) or 'format'}); "
            "use another -o, or delete the folder to start over"
        )
    keep = []
    for i, rec in enumerate(shards):
        path = out / shard_filename(name, i)
        try:
            info = read_shard_header(path)
        except UserError as e:
            print(f"warning: re-creating shard {i}: {e}", file=sys.stderr)
            break
        if (
            rec.get("file") != path.name
            or info.num_tokens != rec["tokens"]
            or info.file_bytes != (HEADER_BYTES + 2 * rec["tokens"])
        ):
            print(f"warning: re-creating shard {i}: {path} does not match the manifest", file=sys.stderr)
            break
        keep.append(rec)
    return keep


def check_disk_space(out: Path, needed_bytes: int, what: str) -> None:
    """UserError if the filesystem of ``out`` has less than ``needed_bytes`` free (plus 5%)."""
    free = shutil.disk_usage(out).free
    if needed_bytes > 0 and free < needed_bytes * 1.05:
        raise UserError(
            f"not enough disk space in {out}: {what} needs about {needed_bytes / 1e9:.1f} GB, "
            f"{free / 1e9:.1f} GB free; free space, pick another -o, or pass --max-shards N"
        )


def write_token_shards(
    docs: Iterable[str],
    out_dir: str | os.PathLike,
    name: str,
    shard_size: int,
    params: dict,
    val_docs: int | None = None,
    workers: int | None = None,
    max_shards: int | None = None,
    total_tokens_hint: int | None = None,
    progress: bool = True,
) -> PrepareResult:
    """Tokenize ``docs`` (EOT before each) into llm.c shards in ``out_dir``, resuming an earlier run.

    ``params`` identifies the output (source, tokenizer, shard layout): a re-run with other params is a
    UserError. ``val_docs=None``: shard 0 (val) is the first ``shard_size`` tokens; else it is exactly the
    first ``val_docs`` documents. ``max_shards`` stops after that many shards in total (a later run without
    it continues). ``docs`` must yield the same documents in the same order on every run.
    """
    if shard_size < 1:
        raise UserError(f"--shard-size must be positive, got {shard_size}")
    if max_shards is not None and max_shards < 1:
        raise UserError(f"--max-shards must be at least 1, got {max_shards}")
    workers = workers or os.cpu_count() or 1
    out = Path(out_dir)
    params = dict(params, format=MANIFEST_FORMAT, name=name, shard_size=shard_size, val_docs=val_docs)
    shards = _check_out_dir(out, name, params)
    manifest_path = out / MANIFEST
    manifest = {"params": params, "shards": shards, "complete": False}
    if shards and shards[-1].get("last"):
        print(f"{out}: already complete ({len(shards)} shards), nothing to do", file=sys.stderr)
        return PrepareResult(str(out), shards, True, shards[-1]["end"], shards[-1]["next_doc"])
    if total_tokens_hint:
        todo = total_tokens_hint - (shards[-1]["end"] if shards else 0)
        if max_shards:
            todo = min(todo, (max_shards - len(shards)) * shard_size)
        check_disk_space(out, 2 * todo, f"{name} ({todo / 1e9:.2f}B tokens left)")
    _write_json_atomic(manifest_path, manifest)

    k = len(shards)  # index of the shard being filled
    start_doc = shards[-1]["next_doc"] if shards else 0
    skip = shards[-1]["skip"] if shards else 0
    pos = shards[-1]["end"] if shards else 0  # global token position of the next token
    if k == 0:
        shard_end = None if val_docs is not None else shard_size
    else:
        shard_end = pos + shard_size
    if max_shards is not None and k >= max_shards:
        print(f"{out}: already has {k} shards (--max-shards {max_shards}), nothing to do", file=sys.stderr)
        return PrepareResult(str(out), shards, False, pos, start_doc)

    buf: list[np.ndarray] = []
    doc0 = start_doc  # global index of the first document of the current chunk
    first = True
    stopped = False
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=total_tokens_hint,
            initial=pos,
            unit="tok",
            unit_scale=True,
            dynamic_ncols=True,
            desc=f"{name} shard {k}",
            file=sys.stderr,
            disable=None,
        )
    t0, docs_seen = time.time(), 0

    def finish_shard(next_doc: int, doc_skip: int, last: bool) -> None:
        nonlocal k, buf
        tokens = np.concatenate(buf) if buf else np.empty(0, np.uint16)
        fname = shard_filename(name, k)
        write_shard(out / fname, tokens)
        end = (shards[-1]["end"] if shards else 0) + tokens.size
        shards.append(
            {
                "file": fname,
                "tokens": int(tokens.size),
                "end": int(end),
                "next_doc": int(next_doc),
                "skip": int(doc_skip),
                "last": last,
            }
        )
        manifest["complete"] = last
        _write_json_atomic(manifest_path, manifest)
        k += 1
        buf = []
        if bar is not None:
            bar.set_description(f"{name} shard {k}")

    stream = itertools.islice(iter(docs), start_doc, None)
    try:
        for tokens, lens in tokenize_stream(stream, workers):
            lead = 0  # tokens of document doc0 written before this chunk (only when resuming mid-document)
            if first and skip:  # the first document was partly written into the last kept shard
                tokens, lens = tokens[skip:], lens.copy()
                lens[0] -= skip
                lead = skip
            first = False
            ends = np.cumsum(lens)
            if shard_end is None and doc0 <= val_docs - 1 < doc0 + lens.size:
                shard_end = pos + int(ends[val_docs - 1 - doc0])
            cut = 0
            while shard_end is not None and shard_end <= pos + tokens.size:
                b = shard_end - pos
                buf.append(tokens[cut:b])
                done = int(np.searchsorted(ends, b, side="right"))  # documents that end at or before b
                finish_shard(doc0 + done, b - int(ends[done - 1]) if done else lead + b, last=False)
                cut = b
                shard_end += shard_size
                if max_shards is not None and k >= max_shards:
                    stopped = True
                    break
            if stopped:
                break
            buf.append(tokens[cut:])
            pos += tokens.size
            doc0 += lens.size
            docs_seen += lens.size
            if bar is not None:
                bar.update(tokens.size)
                bar.set_postfix(docs_s=f"{docs_seen / max(time.time() - t0, 1e-9):,.0f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()

    if not stopped:
        if doc0 == 0 and not shards:
            raise UserError("the input holds no text: every document is empty")
        if val_docs is not None and shard_end is None:
            raise UserError(
                f"the input has only {doc0} documents, but the val split needs {val_docs} plus at least one "
                "for training; pass a smaller --val-docs / --val-fraction or more input"
            )
        pending = sum(a.size for a in buf)
        if not shards:  # checked before anything is marked complete, so a re-run is not "done"
            raise UserError(
                f"the input gave only {pending} tokens, all in the val shard; there is nothing to train on: "
                "add input, or lower --shard-size / the val split"
            )
        if pending:
            finish_shard(doc0, 0, last=True)
        else:
            shards[-1]["last"] = True
            manifest["complete"] = True
            _write_json_atomic(manifest_path, manifest)
    else:
        print(
            f"stopped after {k} shards (--max-shards); run the same command without it to continue",
            file=sys.stderr,
        )
    total = shards[-1]["end"] if shards else 0
    return PrepareResult(str(out), shards, not stopped, total, shards[-1]["next_doc"] if shards else 0)


def summarize(result: PrepareResult) -> str:
    """One line per split for the command's output."""
    val = [s for s in result.shards if s["file"].split("_")[-2] == "val"]
    train = [s for s in result.shards if s not in val]
    state = "complete" if result.complete else "partial (re-run to continue)"
    return (
        f"{result.out_dir}: {len(val)} val shard(s) {sum(s['tokens'] for s in val):,} tokens, "
        f"{len(train)} train shard(s) {sum(s['tokens'] for s in train):,} tokens; {state}"
    )


# ---------------------------------------------------------------------------------------------- commands


def prepare_text(
    inputs: list[str],
    out_dir: str,
    name: str = "text",
    field: str = "text",
    separator: str = "blankline",
    val_fraction: float | None = None,
    val_docs: int | None = None,
    shard_size: int = 100_000_000,
    workers: int | None = None,
    max_shards: int | None = None,
    on_bad_utf8: str = "replace",
    progress: bool = True,
) -> PrepareResult:
    """``gpt2train prepare text``: local files, ``pydoc``, or a `datasets` dataset into shards.

    The val shard is the first ``val_docs`` documents, or the first ``round(val_fraction * documents)``
    (at least 1; the documents are counted first, without tokenizing). Default: 10% of the documents.
    """
    from gpt2train.data.text_sources import DocSource

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UserError(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    source = DocSource(list(inputs), field=field, separator=separator, on_bad_utf8=on_bad_utf8)
    if val_docs is not None and val_fraction is not None:
        raise UserError("pass --val-fraction or --val-docs, not both")
    if val_docs is None:
        f = 0.1 if val_fraction is None else val_fraction
        if not 0 < f < 1:
            raise UserError(f"--val-fraction must lie strictly between 0 and 1, got {f}")
        if any(k == "dataset" for k, _ in source._entries):
            raise UserError("for a datasets dataset pass --val-docs N (its documents cannot be counted up front)")
        n_docs = sum(1 for _ in _quiet(source))
        if n_docs == 0:
            raise UserError(f"the input ({', '.join(inputs)}) holds no text: every document is empty")
        if n_docs < 2:
            raise UserError(
                f"the input holds 1 document, but a val and a train split need 2; try --doc-separator "
                f"blankline or line (now {separator})"
            )
        val_docs = min(max(1, round(f * n_docs)), n_docs - 1)
    elif val_docs < 1:
        raise UserError(f"--val-docs must be at least 1, got {val_docs}")
    params = {
        "source": source.describe(),
        "field": field,
        "separator": separator,
        "on_bad_utf8": on_bad_utf8,
        "tokenizer": "gpt2",
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_disk_space(out, int(source.input_bytes() * 0.6), "the shards")
    return write_token_shards(
        source,
        out,
        name,
        shard_size,
        params,
        val_docs=val_docs,
        workers=workers,
        max_shards=max_shards,
        progress=progress,
    )


class _quiet:
    """Iterate a DocSource with warnings off (the counting pass must not print them twice)."""

    def __init__(self, source):
        self.source = source

    def __iter__(self):
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()):
            yield from self.source


def prepare_fineweb(
    kind: str,
    tokens: str,
    out_dir: str | None = None,
    shard_size: int = 100_000_000,
    workers: int | None = None,
    max_shards: int | None = None,
    source: str | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
    revision: str | None = None,
) -> PrepareResult:
    """``gpt2train prepare fineweb-edu|fineweb``: stream the HuggingFace sample (or ``source``) into shards.

    Shard 0 (val) is the first ``shard_size`` tokens, as in llm.c. ``source`` (a local parquet/jsonl file,
    glob or folder, a save_to_disk folder, or another hub name) replaces the hub dataset. ``revision``: the
    hub dataset's commit (default: the pinned one in FINEWEB).
    """
    if kind not in FINEWEB:
        raise UserError(f"unknown dataset {kind!r}: choose fineweb-edu or fineweb")
    if tokens not in FINEWEB_SIZES:
        raise UserError(f"--tokens must be one of {', '.join(FINEWEB_SIZES)}, got {tokens!r}")
    info = FINEWEB[kind]
    config, total = FINEWEB_SIZES[tokens]
    out = Path(out_dir or f"data/{info['dir']}{tokens}")
    if source is None:
        from gpt2train.data.text_sources import hf_dataset_docs

        require("datasets", "data", f"prepare {kind}")  # now, not after the output folder is made
        revision = revision or info["revision"]

        class _Hub:  # re-iterable (hf_dataset_docs is a generator)
            def __iter__(self):
                return iter(
                    hf_dataset_docs(info["repo"], "text", config=config, cache_dir=cache_dir, revision=revision)
                )

        docs, src_id = _Hub(), f"{info['repo']}:{config}"
    elif revision is not None:
        raise UserError("--revision picks a commit of the HuggingFace dataset; it does not apply to --source")
    else:
        from gpt2train.data.text_sources import DocSource

        ds = DocSource([source], field="text", cache_dir=cache_dir)
        docs, src_id = ds, ds.describe()
        total = None  # unknown for a custom source
    params = {"source": src_id, "field": "text", "tokenizer": "gpt2"}
    if revision is not None:
        params["revision"] = revision
    return write_token_shards(
        docs,
        out,
        info["name"],
        shard_size,
        params,
        val_docs=None,
        workers=workers,
        max_shards=max_shards,
        total_tokens_hint=total,
        progress=progress,
    )


def tinyshakespeare_tokens(text: str) -> np.ndarray:
    """llm.c's tinyshakespeare tokens: sections end at each blank line, an EOT before every section."""
    enc = gpt2_encoding()
    pieces = text.split("\n\n")
    out = []
    for i, piece in enumerate(pieces):
        section = piece + ("\n\n" if i < len(pieces) - 1 else "")
        out.append(np.array([EOT_TOKEN], np.uint32))
        out.append(_encode_np(enc, section))
    return np.concatenate(out).astype(np.uint16)


def prepare_tinyshakespeare(
    out_dir: str = "data/tinyshakespeare", source: str | None = None, url: str | None = None
) -> list[tuple[str, int]]:
    """``gpt2train prepare tinyshakespeare``: download (or take ``source``), tokenize, write both shards."""
    from gpt2train.data.download import download
    from gpt2train.paths import cache_dir

    if source is None:
        official = url is None or url == TINYSHAKESPEARE_URL
        path = download(
            url or TINYSHAKESPEARE_URL,
            cache_dir() / "tinyshakespeare" / "input.txt",
            sha256=TINYSHAKESPEARE_SHA256 if official else None,
        )
    else:
        path = Path(source)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read --source {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"--source {path}: byte {e.start} is not valid UTF-8") from None
    tokens = tinyshakespeare_tokens(text)
    if tokens.size <= TINYSHAKESPEARE_VAL_TOKENS:
        raise UserError(
            f"--source {path} gives only {tokens.size} tokens; the val split alone takes {TINYSHAKESPEARE_VAL_TOKENS}"
        )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out}: {e.strerror or e}") from None
    written = []
    for split, part in (
        ("val", tokens[:TINYSHAKESPEARE_VAL_TOKENS]),
        ("train", tokens[TINYSHAKESPEARE_VAL_TOKENS:]),
    ):
        p = out / f"tiny_shakespeare_{split}.bin"
        write_shard(p, part)
        written.append((str(p), int(part.size)))
    return written


def prepare_hellaswag(out: str | None = None, source: str | None = None, url: str | None = None) -> Path:
    """``gpt2train prepare hellaswag``: fetch the official file (sha256) or copy a checked local one."""
    from gpt2train.data.download import copy_atomic, download
    from gpt2train.data.hellaswag import load_examples
    from gpt2train.paths import default_hellaswag_path

    dest = Path(out) if out else default_hellaswag_path()
    if dest.is_dir():
        dest = dest / "hellaswag_val.jsonl"
    if source is not None:
        n = len(load_examples(source))
        copy_atomic(source, dest)
    else:
        official = url is None or url == HELLASWAG_URL
        if official:
            download(HELLASWAG_URL, dest, sha256=HELLASWAG_SHA256)
        else:  # not the official file: check its content instead of its hash, before it takes dest's place
            tmp = dest.with_name(dest.name + ".download")
            try:
                download(url, tmp)
                load_examples(tmp)
                os.replace(tmp, dest)
            finally:
                if tmp.exists():
                    tmp.unlink()
        n = len(load_examples(dest))
    print(f"{dest}: {n} HellaSwag examples", file=sys.stderr)
    return dest
