"""Helpers for tests that run the command line in-process or as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys

import torch

from gpt2train.cli import main
from gpt2train.data.text_sources import pydoc_docs

TINY = ["--n-layer", "2", "--n-head", "4", "--n-embd", "64", "--max-seq-len", "64"]


@contextlib.contextmanager
def torch_threads(n: int):
    """Torch's CPU ops on ``n`` threads inside the block: a CPU matmul's sums depend on its thread count, so a run
    compared with a subprocess's (OMP_NUM_THREADS=1, as cli_subprocess starts it) runs on one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cli(argv: list[str], capsys=None) -> tuple[int, str, str]:
    """Run ``gpt2train argv`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        code = e.code if isinstance(e.code, int) else 2
    out, err = ("", "")
    if capsys is not None:
        captured = capsys.readouterr()
        out, err = captured.out, captured.err
    return code, out, err


def cli_subprocess(argv: list[str], **kwargs) -> subprocess.Popen:
    """Start ``python -m gpt2train argv`` as a child process (stdout/stderr piped)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "gpt2train", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kwargs)  # fmt: skip


def tiny_train_args(shards: dict, out_dir, steps: int, extra: list | None = None) -> list:
    return ["train", "-i", shards["train"], "-j", shards["val"], "-o", out_dir, *TINY, "-b", "4", "-t", "32",
            "-d", "256", "-x", steps, "-v", 4, "-m", 2, "-s", 0, "-l", "3e-3", *(extra or [])]  # fmt: skip


def progress_losses(run) -> dict:
    """{(kind, step): loss} of a run's progress.jsonl: train losses and val losses, at full precision."""
    rows = [json.loads(ln) for ln in open(os.path.join(run, "progress.jsonl"))]
    return {(r["kind"], r["step"]): r.get("loss", r.get("val_loss")) for r in rows if r["kind"] in ("train", "val")}


def roundtrip(tmp_path, obj):
    """``obj`` written by torch.save and read back with ``weights_only=True``, as a checkpoint would be."""
    path = tmp_path / "roundtrip.pt"
    torch.save(obj, path)
    return torch.load(path, weights_only=True)


def resume_copy(run, dest, step: int, args: list) -> list:
    """Copy the run directory ``run`` to ``dest`` without the checkpoint of ``step`` (so a resume starts from
    the one before); returns ``args`` (the run's train argv) writing to ``dest`` and resuming (-y 1)."""
    shutil.copytree(run, dest)
    for name in os.listdir(dest):
        if f"{step:08d}" in name:
            os.remove(os.path.join(dest, name))
    i = args.index("-o")
    return [*args[: i + 1], dest, *args[i + 2 :], "-y", "1"]


def write_hellaswag(path, n: int, seed: int = 0):
    """``n`` synthetic HellaSwag examples in the official file's layout (idx, activity_label, ctx, endings,
    label), made from sentences of Python's docs: the context is a sentence's head, the right ending its tail,
    the three wrong endings the tails of other sentences. Returns ``path``."""
    rng = random.Random(seed)
    sentences = [
        (topic, words)
        for topic, doc in enumerate(pydoc_docs())
        for s in re.split(r"(?<=[.!?])\s+", doc)
        if 8 <= len(words := s.split()) <= 40
    ]
    picked = rng.sample(sentences, 4 * n)
    lines = []
    for i in range(n):
        topic, words = picked[4 * i]
        cut = max(3, len(words) * 3 // 5)
        endings = [" ".join(words[cut:])] + [" ".join(w[len(w) * 3 // 5 :]) for _, w in picked[4 * i + 1 : 4 * i + 4]]
        label = rng.randrange(4)
        endings[0], endings[label] = endings[label], endings[0]
        ex = {"idx": i, "activity_label": f"topic {topic}", "ctx": " ".join(words[:cut]), "endings": endings,
              "label": label}  # fmt: skip
        lines.append(json.dumps(ex) + "\n")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return path


def tiny_fp8_runs(variants, autocast: bool = True, steps: int = 2, levers: dict | None = None) -> list:
    """For each (FastPaths fields, compiled): a tiny GPT (the same seed and batch; ``levers``: its architecture's,
    ModelConfig fields) accelerated with them (our FP8 linears, delayed scaling and the cast kernel, plus the fields),
    blocks compiled with aot_eager if ``compiled``, trained ``steps`` micro-steps (bf16 autocast on the CPU if
    ``autocast``): (loss, grads, buffers, model) each."""
    from gpt2train.config import ModelConfig
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, accelerate, cast_weight_copies, weight_copy_layers

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32, **(levers or {}))
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    results = []
    try:
        for fields, compiled in variants:
            model = build_model(cfg, seed=5)
            accelerate(model, FastPaths(**{"fp8": 1, "fp8_cast_kernel": 1, "fp8_delayed": True, **fields}))
            for block in model.transformer.h if compiled else ():
                block.compile(backend="aot_eager")
            cast_weight_copies(weight_copy_layers(model))
            for _ in range(steps):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = model(idx, idx)
                loss.backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters()}
            results.append((loss.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}, model))
    finally:
        torch._dynamo.reset()
    return results


def assert_trains_bit_for_bit(run0, run1, bias: str | None) -> None:
    """Two tiny_fp8_runs results with the same loss, gradients and amax histories (both micro-steps recorded), bit
    for bit, but the gradient of the parameter named ``...bias`` (None: none): a fused pass sums it in fp32 before
    rounding once, where fp8_linear sums the bf16 gradient."""
    (loss0, grads0, bufs0, _), (loss1, grads1, bufs1, _) = run0, run1
    assert torch.equal(loss0, loss1)
    for n, g in grads0.items():
        if bias is not None and n.endswith(bias):
            torch.testing.assert_close(grads1[n], g, rtol=1e-2, atol=1e-5)
        else:
            assert torch.equal(grads1[n], g), n
    histories = [n for n in bufs0 if "history" in n]
    assert len(histories) == 16 and all(torch.equal(bufs0[n], bufs1[n]) for n in histories)
    assert all(bufs1[n][:2].gt(0).all() for n in histories)


def assert_compiles_for_hopper(script: str) -> None:
    """Run ``script`` (which compiles Triton kernels for sm_90 and prints "compiled") in a process without
    TRITON_INTERPRET, with the ptxas Triton ships, no GPU needed; skip where Triton or its ptxas is missing."""
    import os
    import subprocess
    import sys

    import pytest

    from gpt2train.kernels._triton import triton_available

    if not triton_available():
        pytest.skip("no triton")
    import triton

    if not os.path.exists(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")):
        pytest.skip("this triton ships no ptxas")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "compiled" in out.stdout, out.stderr[-2000:]
