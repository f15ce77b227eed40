"""Where documents come from: local text / jsonl / parquet files, Python's own docs, or a `datasets` dataset.

Every source is an iterable of ``str`` documents in a fixed order, so that re-reading it (to resume a
prepare) sees the same documents again. Empty documents are dropped.

Non-UTF-8 policy: bytes that are not valid UTF-8 become U+FFFD (the replacement character), the
number of bad bytes is counted per file and reported on stderr once per file; with
``on_bad_utf8="error"`` the first bad byte is a UserError naming the file and byte offset instead.
"""

from __future__ import annotations

import codecs
import dataclasses
import glob
import gzip
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gpt2train.errors import UserError
from gpt2train.formats.json_text import parse_json
from gpt2train.optional import require

DOC_SEPARATORS = ("blankline", "file", "line")
TEXT_SUFFIXES = (".txt", ".txt.gz", ".md", ".text")
JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
BUILTIN_PYDOC = "pydoc"


class _Utf8Decoder:
    """Decodes bytes of one file under the non-UTF-8 policy, counting replaced bytes."""

    def __init__(self, path: str, policy: str):
        self.path, self.policy, self.bad_bytes, self.offset = path, policy, 0, 0

    def decode(self, raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if self.policy == "error":
                raise UserError(
                    f"{self.path}: byte {self.offset + e.start} is not valid UTF-8; fix the file, or pass "
                    "--on-bad-utf8 replace to turn bad bytes into U+FFFD"
                ) from None
            text = raw.decode("utf-8", errors="replace")
            # count bad bytes exactly: re-decode with a handler that tallies each error span
            counter = [0]

            def tally(err: UnicodeDecodeError):
                counter[0] += err.end - err.start
                return ("\ufffd", err.end)

            codecs.register_error("gpt2train_tally", tally)
            raw.decode("utf-8", errors="gpt2train_tally")
            self.bad_bytes += counter[0]
        self.offset += len(raw)
        return text

    def report(self) -> None:
        if self.bad_bytes:
            print(
                f"warning: {self.path}: {self.bad_bytes} bytes were not valid UTF-8 and became U+FFFD",
                file=sys.stderr,
            )


def _open_binary(path: str):
    try:
        if path.endswith(".gz"):
            f = gzip.open(path, "rb")
            f.peek(1)  # fail now, naming the file, if it is not gzip
            return f
        return open(path, "rb")
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def _text_docs(path: str, separator: str, policy: str) -> Iterator[str]:
    dec = _Utf8Decoder(path, policy)
    f = _open_binary(path)
    try:
        with f:
            if separator == "file":
                doc = dec.decode(f.read())
                if doc:
                    yield doc
            elif separator == "line":
                for raw in f:
                    doc = dec.decode(raw).rstrip("\r\n")
                    if doc.strip():
                        yield doc
            else:  # blankline: a document is a maximal run of non-blank lines, without its final newline
                lines: list[str] = []
                for raw in f:
                    line = dec.decode(raw)
                    if line.strip():
                        lines.append(line)
                    elif lines:
                        yield "".join(lines).rstrip("\r\n")
                        lines = []
                if lines:
                    yield "".join(lines).rstrip("\r\n")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    dec.report()


def _field_of(obj, fld: str, where: str) -> str:
    if not isinstance(obj, dict) or fld not in obj:
        keys = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
        raise UserError(f"{where}: record has no field {fld!r} (it has: {keys}); pass --field NAME")
    value = obj[fld]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UserError(f"{where}: field {fld!r} is {type(value).__name__}, not text")
    return value


def _json_docs(path: str, fld: str, policy: str) -> Iterator[str]:
    dec = _Utf8Decoder(path, policy)
    f = _open_binary(path)
    with f:
        head = f.read(1)
        while head in (b" ", b"\n", b"\r", b"\t"):
            head = f.read(1)
        if head == b"[":  # a JSON array of records
            data = dec.decode(head + f.read())
            try:
                records = json.loads(data)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
            for i, obj in enumerate(records):
                doc = _field_of(obj, fld, f"{path}: record {i}")
                if doc:
                    yield doc
        else:  # JSON lines
            first = True
            for lineno, raw in enumerate(f, 1):
                if first:
                    raw, first = head + raw, False
                line = dec.decode(raw)
                if not line.strip():
                    continue
                doc = _field_of(parse_json(line, f"{path}:{lineno}"), fld, f"{path}:{lineno}")
                if doc:
                    yield doc
            if first and head:  # a one-line file without a newline
                obj = json.loads(dec.decode(head))
                doc = _field_of(obj, fld, f"{path}:1")
                if doc:
                    yield doc
    dec.report()


def _parquet_docs(path: str, fld: str) -> Iterator[str]:
    pq = require("pyarrow.parquet", "data", f"reading the parquet file {path}")
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for unreadable files
        raise UserError(f"cannot read parquet file {path}: {e}") from None
    if fld not in pf.schema_arrow.names:
        raise UserError(
            f"{path}: parquet file has no column {fld!r} (it has: {', '.join(pf.schema_arrow.names)}); "
            "pass --field NAME"
        )
    for batch in pf.iter_batches(columns=[fld], batch_size=4096):
        for doc in batch.column(0).to_pylist():
            if doc:
                yield doc


def pydoc_docs() -> Iterator[str]:
    """The English reference docs inside Python's stdlib (pydoc_data.topics): one document per topic."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise UserError("this Python has no pydoc_data module, so --input pydoc is not available") from None
    for key in sorted(topics):
        if topics[key]:
            yield topics[key]


def _kind(path: str) -> str:
    low = path.lower()
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if low.endswith(JSON_SUFFIXES):
        return "json"
    return "text"


@dataclass
class DocSource:
    """A re-iterable, ordered stream of documents from files, Python's docs, or a `datasets` dataset.

    ``inputs``: globs / paths / ``pydoc`` / a dataset directory or hub name. ``field``: the text field of
    json and parquet records. ``separator``: how .txt files split into documents.
    """

    inputs: list[str]
    field: str = "text"
    separator: str = "blankline"
    on_bad_utf8: str = "replace"
    cache_dir: str | None = None
    files: list[str] = dataclasses.field(default_factory=list, init=False)

    def __post_init__(self):
        if self.separator not in DOC_SEPARATORS:
            raise UserError(f"--doc-separator must be one of {', '.join(DOC_SEPARATORS)}, not {self.separator!r}")
        self._entries: list[tuple[str, str]] = []  # (kind, path or name)
        for spec in self.inputs:
            if spec == BUILTIN_PYDOC:
                self._entries.append(("pydoc", spec))
            elif os.path.isdir(spec) and _is_dataset_dir(spec):
                self._entries.append(("dataset", spec))
            elif os.path.isdir(spec):
                found = sorted(
                    os.path.join(spec, n)
                    for n in os.listdir(spec)
                    if n.lower().endswith(TEXT_SUFFIXES + JSON_SUFFIXES + PARQUET_SUFFIXES)
                )
                if not found:
                    raise UserError(f"--input {spec!r}: folder holds no .txt, .jsonl, .json or .parquet files")
                self._entries += [(_kind(p), p) for p in found]
            else:
                matched = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
                if matched:
                    self._entries += [(_kind(p), p) for p in matched]
                elif _looks_like_hub_name(spec):
                    self._entries.append(("dataset", spec))
                else:
                    raise UserError(f"--input {spec!r} matches no files: check the path or glob")
        self.files = [p for k, p in self._entries if k in ("text", "json", "parquet")]
        for p in self.files:
            if not os.access(p, os.R_OK):
                raise UserError(f"cannot read {p}: permission denied")

    def describe(self) -> list[str]:
        """What the source reads, for the resume manifest (sizes catch edited files)."""
        out = []
        for kind, p in self._entries:
            if kind in ("text", "json", "parquet"):
                out.append(f"{os.path.abspath(p)}:{os.path.getsize(p)}")
            else:
                out.append(f"{kind}:{p}")
        return out

    def input_bytes(self) -> int:
        """Bytes of the local input files (a hint for the disk-space check; gzip counted x3)."""
        return sum(os.path.getsize(p) * (3 if p.endswith(".gz") else 1) for p in self.files)

    def __iter__(self) -> Iterator[str]:
        for kind, p in self._entries:
            if kind == "pydoc":
                yield from pydoc_docs()
            elif kind == "text":
                yield from _text_docs(p, self.separator, self.on_bad_utf8)
            elif kind == "json":
                yield from _json_docs(p, self.field, self.on_bad_utf8)
            elif kind == "parquet":
                yield from _parquet_docs(p, self.field)
            else:
                yield from hf_dataset_docs(p, self.field, cache_dir=self.cache_dir)


def _is_dataset_dir(path: str) -> bool:
    # a folder written by datasets' save_to_disk
    return os.path.exists(os.path.join(path, "dataset_info.json")) or os.path.exists(os.path.join(path, "state.json"))


def _looks_like_hub_name(spec: str) -> bool:
    return spec.count("/") == 1 and not any(c in spec for c in "*?[") and not os.path.exists(spec)


def hf_dataset_docs(
    name: str,
    fld: str = "text",
    config: str | None = None,
    split: str = "train",
    cache_dir: str | None = None,
    revision: str | None = None,
) -> Iterable[str]:
    """Documents of a `datasets` dataset: a save_to_disk folder, or a hub name streamed (no full download) at
    ``revision`` (a commit, tag or branch; None: the default branch)."""
    datasets = require("datasets", "data", f"reading the dataset {name}")
    try:
        if os.path.isdir(name):
            ds = datasets.load_from_disk(name)
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
        else:
            ds = datasets.load_dataset(
                name, name=config, split=split, streaming=True, cache_dir=cache_dir, revision=revision
            )
    except Exception as e:  # datasets raises many types (network, missing config, ...)
        raise UserError(
            f"cannot open dataset {name!r}{f' config {config}' if config else ''}: {e}; check the network "
            "(or HF_DATASETS_OFFLINE), or pass --source with local parquet/jsonl files"
        ) from None
    checked = False
    for row in ds:
        if not checked:
            _field_of(row, fld, f"dataset {name}")
            checked = True
        doc = row[fld]
        if doc:
            yield doc
