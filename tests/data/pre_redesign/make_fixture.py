"""Write the pre-redesign resume fixture (see README.md): run it with the code of the commit it records.

    git worktree add /tmp/old df779a8
    PYTHONPATH=/tmp/old/src python3 tests/data/pre_redesign/make_fixture.py tests/data/pre_redesign

For each recipe, a 6-step CPU run with a checkpoint every 3 steps; kept: the checkpoint at step 3 with the
run's config.json and its main.log/progress.jsonl trimmed to step 3 (as a resume trims them), and the main.log
lines and progress losses of steps 3..5 (the updates after the checkpoint) and the val losses at steps 4 and 6
of the uninterrupted run, in expected.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

VOCAB = 128  # ids are real GPT-2 tokens of Python's docs taken modulo this, so the embedding stays tiny
SHAPE = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--max-seq-len", "32", "--vocab-size", str(VOCAB)]
STEPS, CHECKPOINT = 6, 3
RECIPES = {"classic": [], "modern": ["--recipe", "modern"]}


def train_args(shards: str, out_dir: str, recipe: str) -> list[str]:
    """The training command line of the fixture (the test resumes it with -y 1 appended)."""
    return ["train", "-i", os.path.join(shards, "train.bin"), "-j", os.path.join(shards, "val.bin"), "-o", out_dir,
            *SHAPE, "-b", "4", "-t", "32", "-d", "256", "-x", str(STEPS), "-n", str(CHECKPOINT), "-v", "4",
            "-m", "2", "-s", "0", "-l", "3e-3", "--device", "cpu", *RECIPES[recipe]]  # fmt: skip


def write_shards(out: str) -> None:
    from gpt2train.data.text_sources import pydoc_docs
    from gpt2train.data.tokenizer import EOT_TOKEN, encode
    from gpt2train.formats.shards import write_shard

    tokens: list[int] = []
    for doc in pydoc_docs():
        tokens += [EOT_TOKEN, *encode(doc)]
        if len(tokens) >= 5120:
            break
    ids = np.array(tokens[:5120], dtype=np.uint16) % VOCAB
    write_shard(os.path.join(out, "val.bin"), ids[:1024])
    write_shard(os.path.join(out, "train.bin"), ids[1024:])


def main(dest: str) -> None:
    from gpt2train.train.runlog import RunLog

    shards = os.path.join(dest, "shards")
    os.makedirs(shards, exist_ok=True)
    write_shards(shards)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(sys.modules["gpt2train"].__file__))).stdout.strip()  # fmt: skip
    expected = {"commit": commit}
    for recipe in RECIPES:
        with tempfile.TemporaryDirectory() as tmp:
            run = os.path.join(tmp, "run")
            env = dict(os.environ, OMP_NUM_THREADS="1")
            subprocess.run([sys.executable, "-m", "gpt2train", *train_args(shards, run, recipe)], check=True, env=env)
            with open(os.path.join(run, "main.log")) as f:
                log = f.read().splitlines()
            rows = [json.loads(ln) for ln in open(os.path.join(run, "progress.jsonl"))]
            after = [
                ln for ln in log if int(ln.split()[0][2:]) >= CHECKPOINT and not ln.startswith(f"s:{CHECKPOINT} tel")
            ]
            expected[recipe] = {
                "main_log_after": after,
                "train_loss": {str(r["step"]): r["loss"] for r in rows if r["kind"] == "train" and r["step"] >= CHECKPOINT},
                "val_loss": {str(r["step"]): r["val_loss"] for r in rows if r["kind"] == "val" and r["step"] > CHECKPOINT},
            }  # fmt: skip
            RunLog(run).trim_after(CHECKPOINT)  # the logs as a run stopped right after the checkpoint leaves them
            kept = os.path.join(dest, recipe)
            shutil.rmtree(kept, ignore_errors=True)
            os.makedirs(kept)
            for name in os.listdir(run):
                if f"{CHECKPOINT:08d}" in name or name in ("config.json", "main.log", "progress.jsonl"):
                    shutil.copy2(os.path.join(run, name), kept)
    with open(os.path.join(dest, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
