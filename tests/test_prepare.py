"""prepare text / fineweb / tinyshakespeare / hellaswag: shards equal tiktoken, resume, bad input, CLI."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from gpt2train.cli import main
from gpt2train.data.prepare import (
    MANIFEST,
    prepare_fineweb,
    prepare_hellaswag,
    prepare_text,
    prepare_tinyshakespeare,
    tinyshakespeare_tokens,
)
from gpt2train.data.tokenizer import EOT_TOKEN, encode, gpt2_encoding
from gpt2train.errors import UserError
from gpt2train.formats.shards import open_shard


def reference_tokens(docs: list[str]) -> np.ndarray:
    """What every prepare must produce: EOT, then plain GPT-2 BPE, for each document."""
    out = []
    for d in docs:
        out.append(EOT_TOKEN)
        out.extend(encode(d))
    return np.array(out, dtype=np.uint16)


def shard_files(out: Path, name: str) -> list[Path]:
    files = sorted(out.glob(f"{name}_*.bin"), key=lambda p: p.name.split("_")[-1])
    assert files[0].name == f"{name}_val_000000.bin"
    assert all(f.name == f"{name}_train_{i:06d}.bin" for i, f in enumerate(files[1:], 1))
    return files


def all_tokens(out: Path, name: str) -> list[np.ndarray]:
    return [np.asarray(open_shard(f)) for f in shard_files(out, name)]


def paragraphs(text: str) -> list[str]:
    """The documents of ``--doc-separator blankline``, split independently (``text`` has no trailing blanks)."""
    return [d.strip("\n") for d in text.split("\n\n") if d.strip()]


@pytest.fixture(scope="module")
def text_docs(pydoc_text) -> tuple[str, list[str]]:
    """60k characters of Python's docs, lines without trailing blanks (so that blank lines are exactly empty)."""
    text = "\n".join(ln.rstrip() for ln in pydoc_text[:60_000].splitlines())
    return text, paragraphs(text)


def test_text_shards_equal_tiktoken_and_val_is_shard0(tmp_path, text_docs):
    text, docs = text_docs
    src = tmp_path / "in.txt"
    src.write_text(text, encoding="utf-8")
    res = prepare_text(
        [str(src)], str(tmp_path / "out"), name="sp", val_docs=7, shard_size=3000, workers=2, progress=False
    )
    shards = all_tokens(tmp_path / "out", "sp")
    assert res.complete and len(shards) > 3
    np.testing.assert_array_equal(shards[0], reference_tokens(docs[:7]))
    np.testing.assert_array_equal(np.concatenate(shards[1:]), reference_tokens(docs[7:]))
    assert all(s.size == 3000 for s in shards[1:-1]) and 0 < shards[-1].size <= 3000


def test_workers_do_not_change_output(tmp_path, text_docs):
    src = tmp_path / "in.txt"
    src.write_text(text_docs[0], encoding="utf-8")
    for w in (1, 2):
        prepare_text([str(src)], str(tmp_path / f"w{w}"), val_fraction=0.2, shard_size=2000, workers=w, progress=False)
    a, b = all_tokens(tmp_path / "w1", "text"), all_tokens(tmp_path / "w2", "text")
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_resume_is_byte_identical(tmp_path, text_docs):
    src = tmp_path / "in.txt"
    src.write_text(text_docs[0], encoding="utf-8")
    kw = dict(val_docs=5, shard_size=1500, workers=2, progress=False)
    full = prepare_text([str(src)], str(tmp_path / "full"), **kw)
    part = tmp_path / "part"
    r1 = prepare_text([str(src)], str(part), max_shards=3, **kw)
    assert not r1.complete and len(list(part.glob("*.bin"))) == 3
    # a crash mid-write: the last shard gone, a stray temp left behind, then a further interruption
    (part / "text_train_000002.bin").unlink()
    (part / "text_train_000002.bin.tmp").write_bytes(b"garbage")
    prepare_text([str(src)], str(part), max_shards=5, **kw)
    # a corrupted (truncated) finished shard is re-created too
    p4 = part / "text_train_000004.bin"
    p4.write_bytes(p4.read_bytes()[:-10])
    r3 = prepare_text([str(src)], str(part), **kw)
    assert r3.complete and len(r3.shards) == len(full.shards)
    for f in sorted((tmp_path / "full").glob("*.bin")):
        assert (part / f.name).read_bytes() == f.read_bytes(), f.name
    assert not list(part.glob("*.tmp"))
    # a complete folder is left alone; other settings are refused
    assert prepare_text([str(src)], str(part), **kw).complete
    with pytest.raises(UserError, match="other settings"):
        prepare_text([str(src)], str(part), **dict(kw, shard_size=999))


def test_corpus_gz_blankline_docs(tmp_path, text_docs):
    # three gzip parts of blank-line separated documents, as a text corpus comes
    docs = text_docs[1]
    parts = [docs[: len(docs) // 3], docs[len(docs) // 3 : 2 * len(docs) // 3], docs[2 * len(docs) // 3 :]]
    for i, part_docs in enumerate(parts):
        with gzip.open(tmp_path / f"part-{i:03d}.txt.gz", "wt", encoding="utf-8") as f:
            f.write("\n\n".join(part_docs) + "\n")
    res = prepare_text(
        [str(tmp_path / "*.txt.gz")],
        str(tmp_path / "c"),
        name="corpus",
        val_docs=1,
        shard_size=2_000,
        max_shards=3,
        workers=2,
        progress=False,
    )
    assert len(res.shards) == 3 and not res.complete
    val, *train = all_tokens(tmp_path / "c", "corpus")
    np.testing.assert_array_equal(val, reference_tokens(docs[:1]))  # the val doc is part-000's first
    np.testing.assert_array_equal(np.concatenate(train), reference_tokens(docs[1:])[: 2 * 2_000])
    # to the end, every part is read in order: the tokens are the documents' in the files' order
    res = prepare_text([str(tmp_path / "*.txt.gz")], str(tmp_path / "c"), name="corpus", val_docs=1,
                       shard_size=2_000, workers=2, progress=False)  # fmt: skip
    assert res.complete
    np.testing.assert_array_equal(np.concatenate(all_tokens(tmp_path / "c", "corpus")), reference_tokens(docs))


def test_pydoc_builtin_source_is_fast(tmp_path):
    from pydoc_data.topics import topics

    docs = [topics[k] for k in sorted(topics) if topics[k]]
    res = prepare_text(["pydoc"], str(tmp_path / "pd"), name="pydoc", shard_size=50_000, progress=False)
    shards = all_tokens(tmp_path / "pd", "pydoc")
    n_val = round(0.1 * len(docs))
    np.testing.assert_array_equal(shards[0], reference_tokens(docs[:n_val]))
    np.testing.assert_array_equal(np.concatenate(shards[1:]), reference_tokens(docs[n_val:]))
    assert res.complete


def test_jsonl_json_parquet_and_line_separator(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [f"Document number {i}. " + "words " * (i % 7) for i in range(40)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in docs[:10]))
    (tmp_path / "b.json").write_text(json.dumps([{"body": d} for d in docs[10:20]]))
    pq.write_table(pa.table({"body": docs[20:30]}), tmp_path / "c.parquet")
    (tmp_path / "d.txt").write_text("\n".join(docs[30:]) + "\n")
    inputs = [str(tmp_path / n) for n in ("a.jsonl", "b.json", "c.parquet")]
    prepare_text(inputs, str(tmp_path / "o1"), field="body", val_docs=3, shard_size=100, progress=False)
    got = np.concatenate(all_tokens(tmp_path / "o1", "text"))
    np.testing.assert_array_equal(got, reference_tokens(docs[:30]))
    prepare_text([str(tmp_path / "d.txt")], str(tmp_path / "o2"), separator="line", val_docs=2, progress=False)
    got = np.concatenate(all_tokens(tmp_path / "o2", "text"))
    np.testing.assert_array_equal(got, reference_tokens(docs[30:]))


def test_non_utf8_policy(tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 au lait\n\nsecond doc \xff\xfe ok\n\nthird\n")
    prepare_text([str(tmp_path / "bad.txt")], str(tmp_path / "o"), val_docs=1, progress=False)
    assert "3 bytes were not valid UTF-8" in capsys.readouterr().err
    got = np.concatenate(all_tokens(tmp_path / "o", "text"))
    expected = reference_tokens(["caf\ufffd au lait", "second doc \ufffd\ufffd ok", "third"])
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(UserError, match=r"bad\.txt: byte 3 is not valid UTF-8"):
        prepare_text([str(tmp_path / "bad.txt")], str(tmp_path / "o2"), val_docs=1, on_bad_utf8="error", progress=False)


@pytest.mark.parametrize(
    "setup, match",
    [
        ("missing", "matches no files"),
        ("empty", "holds no text"),
        ("one_doc", "1 document"),
        ("no_field", "no field 'text'"),
        ("bad_json", "not valid JSON"),
        ("not_gzip", "cannot read"),
        ("foreign", "did not make"),
    ],
)
def test_bad_input_is_user_error(tmp_path, setup, match):
    out = tmp_path / "out"
    inp = tmp_path / "in.txt"
    inp.write_text("one doc\n\nanother doc\n")
    if setup == "missing":
        inp = tmp_path / "nope*.txt"
    elif setup == "empty":
        inp.write_text("\n\n   \n")
    elif setup == "one_doc":
        inp.write_text("just one\n")
    elif setup == "no_field":
        inp = tmp_path / "x.jsonl"
        inp.write_text('{"content": "hi"}\n')
    elif setup == "bad_json":
        inp = tmp_path / "x.jsonl"
        inp.write_text('{"text": "hi"\n')
    elif setup == "not_gzip":
        inp = tmp_path / "x.txt.gz"
        inp.write_bytes(b"plain text, not gzip")
    elif setup == "foreign":
        out.mkdir()
        (out / "notes.md").write_text("mine")
    with pytest.raises(UserError, match=match):
        prepare_text([str(inp)], str(out), val_docs=1 if setup != "one_doc" else None, progress=False)
    if setup == "foreign":
        assert (out / "notes.md").read_text() == "mine"


def test_unreadable_file(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text("a\n\nb\n")
    p.chmod(0)
    if os.access(p, os.R_OK):  # root reads anything: use a file whose read fails with EIO instead
        if not os.path.exists("/proc/self/mem"):
            pytest.skip("no unreadable file available")
        p = Path("/proc/self/mem")
    with pytest.raises(UserError, match=f"cannot read {p}"):
        prepare_text([str(p)], str(tmp_path / "o"), val_docs=1, progress=False)


def test_unreadable_directory_as_file(tmp_path):
    d = tmp_path / "dir.txt"
    d.mkdir()
    (d / "inner.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="no .txt"):
        prepare_text([str(d)], str(tmp_path / "o"), val_docs=1, progress=False)


def _fineweb_source(tmp_path, n=60):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [f"Web page {i}: " + "the quick brown fox jumps over the lazy dog. " * (1 + i % 9) for i in range(n)]
    src = tmp_path / "fw"
    src.mkdir()
    pq.write_table(pa.table({"text": docs[: n // 2], "id": list(range(n // 2))}), src / "000.parquet")
    (src / "001.jsonl").write_text("".join(json.dumps({"text": d, "url": "u"}) + "\n" for d in docs[n // 2 :]))
    return src, docs


def test_fineweb_local_source_end_to_end_and_resume(tmp_path):
    src, docs = _fineweb_source(tmp_path)
    out = tmp_path / "edu"
    res = prepare_fineweb("fineweb-edu", "10B", str(out), shard_size=500, workers=2, source=str(src), progress=False)
    shards = all_tokens(out, "edu_fineweb")
    assert res.complete and all(s.size == 500 for s in shards[:-1])
    np.testing.assert_array_equal(np.concatenate(shards), reference_tokens(docs))
    # interrupted run + resume == uninterrupted run, byte for byte
    out2 = tmp_path / "edu2"
    prepare_fineweb(
        "fineweb-edu",
        "10B",
        str(out2),
        shard_size=500,
        workers=1,
        max_shards=2,
        source=str(src),
        progress=False,
    )
    assert len(list(out2.glob("*.bin"))) == 2
    prepare_fineweb("fineweb-edu", "10B", str(out2), shard_size=500, workers=2, source=str(src), progress=False)
    for f in out.glob("*.bin"):
        assert (out2 / f.name).read_bytes() == f.read_bytes()
    manifest = json.loads((out2 / MANIFEST).read_text())
    assert manifest["complete"] and len(manifest["shards"]) == len(shards)


def test_fineweb_disk_space_check(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 10**9, 10**9))
    monkeypatch.setattr("gpt2train.data.text_sources.hf_dataset_docs", lambda *a, **k: iter(["x"]))
    with pytest.raises(UserError, match="not enough disk space"):
        prepare_fineweb("fineweb", "10B", str(tmp_path / "fw"), progress=False)


def test_tinyshakespeare_matches_llmc_split(tmp_path, pydoc_text):
    # any text split the llm.c way: sections at blank lines, the first 32768 tokens val
    (tmp_path / "input.txt").write_text(pydoc_text, encoding="utf-8")
    written = prepare_tinyshakespeare(str(tmp_path / "ts"), source=str(tmp_path / "input.txt"))
    text = pydoc_text
    llmc_way = gpt2_encoding().encode(
        "<|endoftext|>" + text.replace("\n\n", "\n\n<|endoftext|>"), allowed_special={"<|endoftext|>"}
    )
    assert [n for _, n in written] == [32768, len(llmc_way) - 32768]  # llm.c's tinyshakespeare.py split
    got = np.concatenate([np.asarray(open_shard(p)) for p, _ in written])
    np.testing.assert_array_equal(got, np.array(llmc_way, dtype=np.uint16))


def test_hellaswag_source_validated_and_stored(tmp_path, hellaswag_jsonl, monkeypatch):
    monkeypatch.setenv("GPT2TRAIN_CACHE", str(tmp_path / "cache"))
    dest = prepare_hellaswag(source=str(hellaswag_jsonl))
    assert dest == tmp_path / "cache" / "hellaswag" / "hellaswag_val.jsonl"
    assert dest.read_bytes() == hellaswag_jsonl.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ctx": "x", "endings": ["a"], "label": 0}\n')
    with pytest.raises(UserError, match="endings"):
        prepare_hellaswag(str(tmp_path / "h.jsonl"), source=str(bad))
    assert not (tmp_path / "h.jsonl").exists()


def test_cli(tmp_path, pydoc_text, capsys):
    src = tmp_path / "in.txt"
    src.write_text("alpha beta\n\ngamma delta\n\nepsilon\n")
    out = tmp_path / "o"
    rc = main(
        [
            "prepare",
            "text",
            "--input",
            str(src),
            "-o",
            str(out),
            "--val-docs",
            "1",
            "--workers",
            "1",
            "--no-progress",
            "--name",
            "tiny",
        ]
    )
    assert rc == 0 and (out / "tiny_val_000000.bin").exists() and (out / "tiny_train_000001.bin").exists()
    assert "complete" in capsys.readouterr().out
    assert main(["prepare", "text", "--input", str(tmp_path / "none.txt"), "-o", str(out)]) == 1
    assert "error: --input" in capsys.readouterr().err
    (tmp_path / "input.txt").write_text(pydoc_text, encoding="utf-8")
    n_train = tinyshakespeare_tokens(pydoc_text).size - 32768
    rc = main(
        [
            "prepare",
            "tinyshakespeare",
            "-o",
            str(tmp_path / "ts"),
            "--source",
            str(tmp_path / "input.txt"),
        ]
    )
    assert rc == 0 and f"{n_train:,} tokens" in capsys.readouterr().out
    assert main(["prepare", "hellaswag", "-o", str(tmp_path / "h.jsonl"), "--source", str(src)]) == 1
    with pytest.raises(SystemExit) as e:
        main(["prepare", "fineweb-edu", "--tokens", "7B"])
    assert e.value.code == 2


def test_datasets_save_to_disk_source_and_tiny_fineweb(tmp_path):
    import datasets

    docs = [f"row {i} " * 5 for i in range(12)]
    datasets.Dataset.from_dict({"text": docs}).save_to_disk(str(tmp_path / "ds"))
    prepare_text([str(tmp_path / "ds")], str(tmp_path / "o"), val_docs=2, progress=False)
    np.testing.assert_array_equal(np.concatenate(all_tokens(tmp_path / "o", "text")), reference_tokens(docs))
    # too little data for one val shard plus training data: an error, and the folder is not marked done
    for _ in range(2):
        with pytest.raises(UserError, match="nothing to train on"):
            prepare_fineweb("fineweb", "10B", str(tmp_path / "fw"), source=str(tmp_path / "ds"), progress=False)


def test_resume_inside_a_long_document(tmp_path):
    # one document spans many shards; stop inside it twice, then finish: same bytes as one run
    docs = ["short one", "long " + "the rain in spain falls mainly on the plain. " * 300, "tail doc"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    kw = dict(shard_size=700, workers=1, source=str(src), progress=False)
    prepare_fineweb("fineweb", "10B", str(tmp_path / "a"), **kw)
    for m in (2, 4, None):
        prepare_fineweb("fineweb", "10B", str(tmp_path / "b"), max_shards=m, **kw)
    files = sorted(p.name for p in (tmp_path / "a").glob("*.bin"))
    assert len(files) >= 5
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    np.testing.assert_array_equal(np.concatenate(all_tokens(tmp_path / "b", "fineweb")), reference_tokens(docs))


def test_fineweb_streams_a_pinned_revision_and_records_it(tmp_path, monkeypatch, capsys):
    import shutil

    import datasets

    from gpt2train.data.prepare import FINEWEB

    calls = []

    def fake_load_dataset(path, **kwargs):  # the hub, offline: records what was asked for
        calls.append(dict(kwargs, path=path))
        return [{"text": f"document {i} " * 20} for i in range(30)]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**14, 0, 10**14))
    args = ["prepare", "fineweb-edu", "--shard-size", "400", "--workers", "1", "--no-progress"]

    def manifest(out):
        return json.loads((out / MANIFEST).read_text())["params"]

    assert main([*args, "-o", str(tmp_path / "pinned")]) == 0
    pinned = FINEWEB["fineweb-edu"]["revision"]
    assert len(pinned) == 40 and int(pinned, 16) >= 0  # a commit hash, not a branch that moves
    assert {c["revision"] for c in calls} == {pinned}
    assert calls[0]["path"] == "HuggingFaceFW/fineweb-edu" and calls[0]["name"] == "sample-10BT"
    assert manifest(tmp_path / "pinned")["revision"] == pinned

    calls.clear()
    assert main([*args, "-o", str(tmp_path / "other"), "--revision", "abc123"]) == 0
    assert {c["revision"] for c in calls} == {"abc123"} and manifest(tmp_path / "other")["revision"] == "abc123"
    # a folder streamed from one revision is not continued from another
    assert main([*args, "-o", str(tmp_path / "pinned"), "--revision", "abc123"]) == 1
    assert "other settings (revision:" in capsys.readouterr().err
    # --revision names a hub commit: with a local --source it is refused
    src = tmp_path / "docs.jsonl"
    src.write_text('{"text": "a document"}\n')
    assert main([*args, "-o", str(tmp_path / "local"), "--source", str(src), "--revision", "abc123"]) == 1
    assert "--revision" in capsys.readouterr().err
