"""HellaSwag and val loss under torch.distributed (gloo, 2 processes) equal the single-process figures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from gpt2train.config import ModelConfig
from gpt2train.data.hellaswag import load_examples
from gpt2train.evaluate import hellaswag_eval, val_loss
from gpt2train.formats.llmc_model import write_llmc_model
from gpt2train.formats.shards import write_shard
from gpt2train.model import build_model

SRC = str(Path(__file__).resolve().parents[1] / "src")

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    from gpt2train.data.hellaswag import load_examples
    from gpt2train.evaluate import hellaswag_eval, load_model, val_loss

    model_path, hs_path, val_pattern, out = sys.argv[1:5]
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    model = load_model(model_path, "cpu")
    h = hellaswag_eval(model, load_examples(hs_path), "cpu", batch_rows=16)
    v = val_loss(model, val_pattern, 2, 16, -1, "cpu")
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump({"hellaswag": h, "val": v}, f)
    dist.destroy_process_group()
    os._exit(0)  # skip interpreter teardown, where gloo's threads can still race the exit (tests/test_zero.py)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_equal_one(tmp_path, hellaswag_jsonl):
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=32, max_seq_len=128)
    model = build_model(cfg, seed=11).eval()
    with torch.no_grad():
        model.transformer.wte.weight.mul_(20)
    write_llmc_model(tmp_path / "m.bin", model.state_dict(), cfg)
    hs = tmp_path / "hs.jsonl"
    hs.write_text("".join(hellaswag_jsonl.read_text().splitlines(True)[:7]))
    rng = np.random.default_rng(1)
    write_shard(tmp_path / "v0.bin", rng.integers(0, 50257, 3 * 32 + 1))
    write_shard(tmp_path / "v1.bin", rng.integers(0, 50257, 2 * 32 + 3))

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        argv = [sys.executable, str(script), str(tmp_path / "m.bin"), str(hs), str(tmp_path / "v*.bin")]
        procs.append(subprocess.Popen(argv + [str(tmp_path / "out.json")], env=env, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    got = json.loads((tmp_path / "out.json").read_text())

    one_h = hellaswag_eval(model, load_examples(hs), "cpu", batch_rows=16)
    one_v = val_loss(model, str(tmp_path / "v*.bin"), 2, 16, -1, "cpu")
    for k in ("correct", "correct_norm", "correct_charnorm", "examples"):
        assert got["hellaswag"][k] == one_h[k], k
    assert got["val"]["batches"] == one_v["batches"] == 5
    assert got["val"]["tokens"] == one_v["tokens"]
    assert abs(got["val"]["val_loss"] - one_v["val_loss"]) < 1e-5
