"""`gpt2train prepare`: download and tokenize datasets into llm.c token shards (parsing only)."""

from __future__ import annotations

import argparse

from gpt2train.outputs import writing_output


def _positive_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("prepare", help="download and tokenize a dataset into llm.c .bin shards")
    kinds = p.add_subparsers(dest="dataset", metavar="DATASET")

    t = kinds.add_parser("tinyshakespeare", help="tiny shakespeare, split as llm.c does (val = first 32768 tokens)")
    t.add_argument("-o", "--output-dir", default="data/tinyshakespeare", help="default: %(default)s")
    t.add_argument("--source", help="a local copy of input.txt instead of downloading")
    t.add_argument("--url", help="download from here instead (no sha256 check unless it is the default URL)")
    t.set_defaults(func=run_tinyshakespeare)

    x = kinds.add_parser("text", help="local text/jsonl/parquet files, 'pydoc', or a datasets dataset")
    x.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="GLOB",
        help="files (.txt, .txt.gz, .jsonl, .json, .parquet), a folder, 'pydoc' (Python's own docs), "
        "or a datasets dataset folder / hub name; repeatable",
    )
    x.add_argument("-o", "--output-dir", required=True)
    x.add_argument("--field", default="text", help="text field of json/parquet/dataset records (default: text)")
    val = x.add_mutually_exclusive_group()
    val.add_argument("--val-fraction", type=float, help="val split = this fraction of the documents (default 0.1)")
    val.add_argument("--val-docs", type=int, help="val split = the first N documents")
    x.add_argument("--shard-size", type=_positive_int, default=100_000_000, help="tokens per shard (%(default)s)")
    x.add_argument("--workers", type=_positive_int, default=None, help="tokenizer processes (default: all cores)")
    x.add_argument("--name", default="text", help="shard name prefix: NAME_val_000000.bin ... (%(default)s)")
    x.add_argument(
        "--doc-separator",
        choices=["blankline", "file", "line"],
        default="blankline",
        help="how .txt files split into documents (default: %(default)s)",
    )
    x.add_argument(
        "--on-bad-utf8",
        choices=["replace", "error"],
        default="replace",
        help="bytes that are not UTF-8: U+FFFD with a warning, or an error (default: %(default)s)",
    )
    x.add_argument("--max-shards", type=_positive_int, help="stop after N shards; re-run to continue")
    x.add_argument("--no-progress", action="store_true", help="no progress bar")
    x.set_defaults(func=run_text)

    for kind in ("fineweb-edu", "fineweb"):
        f = kinds.add_parser(kind, help=f"HuggingFaceFW/{kind} sample, streamed, 100M-token shards (llm.c layout)")
        f.add_argument(
            "--tokens",
            choices=["10B", "100B", "350B"],
            default="10B",
            help="sample size: sample-10BT / sample-100BT / sample-350BT (default: %(default)s)",
        )
        f.add_argument("-o", "--output-dir", help="default: data/edu_fineweb10B, data/fineweb100B, ...")
        f.add_argument("--shard-size", type=_positive_int, default=100_000_000, help="tokens per shard (%(default)s)")
        f.add_argument("--workers", type=_positive_int, default=None, help="tokenizer processes (default: all cores)")
        f.add_argument("--max-shards", type=_positive_int, help="stop after N shards; re-run to continue")
        f.add_argument(
            "--source",
            help="a local parquet/jsonl file, glob or folder (field 'text'), or a "
            "dataset name, instead of the HuggingFace sample",
        )
        f.add_argument("--cache-dir", help="datasets cache folder (default: datasets' own, HF_DATASETS_CACHE)")
        f.add_argument(
            "--revision",
            help=f"commit (or tag) of HuggingFaceFW/{kind} to stream (default: a pinned commit; the manifest records it)",
        )
        f.add_argument("--no-progress", action="store_true", help="no progress bar")
        f.set_defaults(func=run_fineweb, kind=kind)

    h = kinds.add_parser("hellaswag", help="the HellaSwag validation file for `train -h 1` and `eval`")
    h.add_argument("-o", "--output", help="file or folder (default: $GPT2TRAIN_CACHE/hellaswag/hellaswag_val.jsonl)")
    h.add_argument("--source", help="a local HellaSwag jsonl (validated) instead of downloading")
    h.add_argument("--url", help="download from here instead (validated by content, not sha256)")
    h.set_defaults(func=run_hellaswag)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_tinyshakespeare(args) -> int:
    from gpt2train.data.prepare import prepare_tinyshakespeare

    with writing_output(args.output_dir):
        for path, n in prepare_tinyshakespeare(args.output_dir, source=args.source, url=args.url):
            print(f"wrote {n:,} tokens to {path}")
    return 0


def run_text(args) -> int:
    from gpt2train.data.prepare import prepare_text, summarize

    with writing_output(args.output_dir):
        result = prepare_text(
            args.input,
            args.output_dir,
            name=args.name,
            field=args.field,
            separator=args.doc_separator,
            val_fraction=args.val_fraction,
            val_docs=args.val_docs,
            shard_size=args.shard_size,
            workers=args.workers,
            max_shards=args.max_shards,
            on_bad_utf8=args.on_bad_utf8,
            progress=not args.no_progress,
        )
    print(summarize(result))
    return 0


def run_fineweb(args) -> int:
    from gpt2train.data.prepare import prepare_fineweb, summarize

    with writing_output(args.output_dir):
        result = prepare_fineweb(
            args.kind,
            args.tokens,
            args.output_dir,
            shard_size=args.shard_size,
            workers=args.workers,
            max_shards=args.max_shards,
            source=args.source,
            cache_dir=args.cache_dir,
            progress=not args.no_progress,
            revision=args.revision,
        )
    print(summarize(result))
    return 0


def run_hellaswag(args) -> int:
    from gpt2train.data.prepare import prepare_hellaswag

    with writing_output(args.output, directory=None):
        print(prepare_hellaswag(args.output, source=args.source, url=args.url))
    return 0
