"""Evaluation and generation speed: HellaSwag seconds, and tokens/s with and without the KV cache.

    python bench/eval_speed.py --hellaswag ../shared/data/hellaswag_val_all.jsonl --model d12 \
        --dtype bf16 --out eval_speed.json                       # on a GPU (the lead's H100 run)
    python bench/eval_speed.py --model d12 --n-layer 2 --n-head 4 --n-embd 64 --limit 40 \
        --gen-tokens 32 --device cpu --out /tmp/eval_speed.json  # CPU smoke run

``--model`` is a preset (d12, gpt2:d24, ...; random init, since only time matters) or a model file
/ run dir / HuggingFace dir. Prints a table and writes the figures as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpt2train.config import preset  # noqa: E402
from gpt2train.data.hellaswag import load_examples  # noqa: E402
from gpt2train.evaluate import hellaswag_eval, load_model, resolve_device  # noqa: E402
from gpt2train.model import build_model  # noqa: E402
from gpt2train.sample import generate  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(args, device):
    cfg = preset(args.model)
    if cfg is None:
        model = load_model(args.model, device)
    else:
        for k in ("n_layer", "n_head", "n_embd", "max_seq_len"):
            if getattr(args, k) is not None:
                setattr(cfg, k, getattr(args, k))
        cfg = type(cfg)(**{k: v for k, v in cfg.to_dict().items() if k != "padded_vocab_size"})
        model = build_model(cfg, seed=42).to(device).eval()
    return model


def bench_hellaswag(model, args, device, autocast):
    examples = load_examples(args.hellaswag)
    if args.limit:
        examples = examples[: args.limit]
    # a short warm-up (kernel selection, allocator) not counted
    hellaswag_eval(model, examples[: max(1, args.batch_rows // 4)], device, args.batch_rows, autocast)
    _sync(device)
    t0 = time.perf_counter()
    res = hellaswag_eval(model, examples, device, args.batch_rows, autocast)
    _sync(device)
    res["seconds"] = time.perf_counter() - t0
    return res


def bench_generate(model, args, device):
    from gpt2train.data.tokenizer import encode

    prompt = encode(args.prompt)
    out = {}
    for use_cache in (True, False):
        generate(model, prompt, 4, temperature=0, use_cache=use_cache)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        toks = generate(model, prompt, args.gen_tokens, temperature=0, use_cache=use_cache)
        _sync(device)
        dt = time.perf_counter() - t0
        out["kv_cache" if use_cache else "no_cache"] = {
            "tokens": len(toks),
            "seconds": dt,
            "tok_per_s": len(toks) / dt,
        }
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="d12", help="preset (random init) or model file / run dir / HF dir")
    p.add_argument("--n-layer", type=int)
    p.add_argument("--n-head", type=int)
    p.add_argument("--n-embd", type=int)
    p.add_argument("--max-seq-len", type=int)
    p.add_argument(
        "--hellaswag",
        default=str(Path(__file__).resolve().parents[2] / "shared/data/hellaswag_val_all.jsonl"),
    )
    p.add_argument("--limit", type=int, default=0, help="first N examples only (0: all)")
    p.add_argument("--batch-rows", type=int, default=128, help="HellaSwag rows per forward (4 per example)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="autocast dtype for HellaSwag")
    p.add_argument("--gen-tokens", type=int, default=256, help="tokens to generate per timing (greedy)")
    p.add_argument("--prompt", default="The meaning of life is")
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-hellaswag", action="store_true")
    p.add_argument("--out", required=True, help="JSON file for the results")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = build(args, device)
    cfg = model.config
    autocast = torch.bfloat16 if args.dtype == "bf16" else None
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
        "model": args.model,
        "config": cfg.to_dict(),
        "dtype": args.dtype,
    }
    rows = []
    if not args.skip_hellaswag:
        hs = bench_hellaswag(model, args, device, autocast)
        result["hellaswag"] = hs
        rows.append(
            ("hellaswag", f"{hs['examples']} examples in {hs['seconds']:.2f} s "
             f"({hs['examples'] / hs['seconds']:.0f} ex/s), acc_norm {hs['acc_norm']:.4f}")
        )  # fmt: skip
    gen = bench_generate(model, args, device)
    result["generate"] = gen
    for k, v in gen.items():
        rows.append((f"generate {k}", f"{v['tokens']} tokens in {v['seconds']:.2f} s = {v['tok_per_s']:.1f} tok/s"))
    rows.append(("kv cache speed-up", f"{gen['kv_cache']['tok_per_s'] / gen['no_cache']['tok_per_s']:.2f}x"))
    print(f"{result['device']}, {args.model} L={cfg.n_layer} C={cfg.n_embd} T={cfg.max_seq_len}, {args.dtype}")
    width = max(len(r[0]) for r in rows)
    for name, text in rows:
        print(f"  {name:<{width}}  {text}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
