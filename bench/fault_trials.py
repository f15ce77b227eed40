"""Kill a tiny CPU training run at random moments, resume it with -y 1 until it finishes, and count losses.

Each trial starts a fresh run in its own output dir and, chosen by a seeded RNG, kills it 1..--max-faults
times: SIGKILL from outside at a random moment (after a random logged step, plus a random delay, so some
kills land inside a checkpoint write), or an injected death inside a checkpoint write (GPT2TRAIN_INJECT
exit_in_model / exit_in_state / exit_before_done: temp file half written, or all files in place but no
DONE record), or an abrupt exit in a step. After every death it checks that each DONE record on disk
still matches its files and that the newest usable checkpoint never went backwards; the last resume runs
unharmed, and its main.log must equal an uninterrupted run's, with no temp file left over.

    PYTHONPATH=src python bench/fault_trials.py --trials 30

prints the counts (trials, faults injected by kind, trials that lost data: must be 0) and exits 1 if any
trial lost data. tests/test_faults_trials.py runs a few trials of the same engine.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--n-layer", "2", "--n-head", "4", "--n-embd", "64", "--max-seq-len", "64"]
STEPS, EVERY = 8, 2
CHECKPOINT_KINDS = ("exit_in_model", "exit_in_state", "exit_before_done")


def train_args(shards: dict, out_dir, steps: int = STEPS) -> list[str]:
    """The run every trial repeats: checkpoints every 2 steps, keeping 2 plus the major ones (every 4)."""
    args = ["train", "-i", shards["train"], "-j", shards["val"], "-o", out_dir, *TINY, "-b", "4", "-t", "32",
            "-d", "256", "-x", steps, "-v", 4, "-m", 2, "-s", 0, "-l", "3e-3", "-n", EVERY, "-nk", 2, "-nm", 4,
            "-y", 1]  # fmt: skip
    return [str(a) for a in args]


def start(argv: list[str], inject: str = "") -> subprocess.Popen:
    """``python -m gpt2train argv`` with output piped (and GPT2TRAIN_INJECT set when ``inject``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", GPT2TRAIN_INJECT=inject)
    return subprocess.Popen([sys.executable, "-m", "gpt2train", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip


def run_to_end(argv: list[str]) -> tuple[int, str]:
    """Run unharmed to the end in a child process: (exit code, output)."""
    proc = start(argv)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def main_log(out_dir) -> list[str]:
    path = Path(out_dir) / "main.log"
    return path.read_text().splitlines() if path.exists() else []


def _logged_steps(out_dir) -> int:
    return sum(1 for ln in main_log(out_dir) if " trl:" in ln)


def check_dir(out_dir) -> tuple[int | None, list[str]]:
    """(newest usable step, problems): every DONE on disk must match its files."""
    from gpt2train.train import checkpoint as ckpt

    problems = []
    for step in ckpt.complete_steps(str(out_dir)):
        if (why := ckpt.checkpoint_problem(str(out_dir), step)) is not None:
            problems.append(f"DONE for step {step} but {why}")
    return ckpt.latest_usable_step(str(out_dir), warn=lambda _m: None), problems


def one_fault(rng: random.Random, out_dir, argv: list[str], newest: int | None, kind: str | None = None) -> str:
    """Run once, killed by one fault (of a random kind unless given); returns the kind, or '' if the run
    ended before the fault came."""
    kind = kind or rng.choice(["sigkill", "sigkill", *CHECKPOINT_KINDS, "exit"])
    later = [s for s in range(EVERY, STEPS + 1, EVERY) if newest is None or s > newest]
    if not later and kind in CHECKPOINT_KINDS:
        kind = "sigkill"
    if kind in CHECKPOINT_KINDS:
        proc = start(argv, f"{kind}@{rng.choice(later)}")
    elif kind == "exit":
        proc = start(argv, f"exit@{rng.randrange((newest or 0), STEPS)}")
    else:  # after a random step is logged, wait a random moment: sometimes inside a checkpoint write
        proc = start(argv)
        target, delay = rng.randrange((newest or 0), STEPS), rng.uniform(0.0, 0.3)
        deadline = time.time() + 300
        while proc.poll() is None and _logged_steps(out_dir) <= target and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    if proc.returncode == 0:
        return ""  # it finished before the fault came: nothing was injected
    if proc.returncode not in (-signal.SIGKILL, 13):
        raise RuntimeError(f"run died of something else (exit {proc.returncode}):\n{out[-3000:]}")
    return kind


def trial(rng: random.Random, out_dir, shards: dict, reference: list[str], max_faults: int, finish=run_to_end,
          kind: str | None = None) -> dict:  # fmt: skip
    """One trial; returns {'faults': [kinds], 'lost': [reasons]}."""
    argv = train_args(shards, out_dir)
    faults, lost, newest = [], [], None
    for _ in range(rng.randint(1, max_faults)):
        if newest == STEPS:  # killed after its last checkpoint: nothing left to interrupt
            break
        done = one_fault(rng, out_dir, argv, newest, kind)
        if not done:
            break
        faults.append(done)
        usable, problems = check_dir(out_dir)
        lost += problems
        if newest is not None and (usable is None or usable < newest):
            lost.append(f"newest usable checkpoint went from step {newest} back to {usable} after {done}")
        newest = usable
    code, out = finish(argv)
    if code != 0:
        lost.append(f"the resumed run failed (exit {code}): {out[-2000:]}")
    if "unusable" in out:
        lost.append("resume found a damaged checkpoint: " + next(ln for ln in out.splitlines() if "unusable" in ln))
    if faults and newest is not None and f"resumed from checkpoint at step {newest}" not in out:
        lost.append(f"resume did not start from the newest complete checkpoint (step {newest})")
    if main_log(out_dir) != reference:
        lost.append("main.log differs from the uninterrupted run's")
    leftovers = [n for n in os.listdir(out_dir) if n.endswith(".tmp")]
    if leftovers:
        lost.append(f"temp files left over: {leftovers}")
    return {"faults": faults, "lost": lost}


def run_trials(trials: int, seed: int, shards: dict, work_dir, max_faults: int = 3, finish=run_to_end,
               kinds: list[str] | None = None, log=print) -> dict:  # fmt: skip
    """Run ``trials`` trials (trial t's faults of kind ``kinds[t % len(kinds)]``, random without ``kinds``);
    returns the counts (and every loss, with its reason)."""
    work_dir = Path(work_dir)
    code, out = finish(train_args(shards, work_dir / "reference"))
    assert code == 0, out
    reference = main_log(work_dir / "reference")
    counts = {"trials": 0, "faults": 0, "by_kind": collections.Counter(), "lost_trials": 0, "losses": []}
    for t in range(trials):
        rng = random.Random(f"{seed}:{t}")
        kind = kinds[t % len(kinds)] if kinds else None
        res = trial(rng, work_dir / f"trial_{t:03d}", shards, reference, max_faults, finish, kind)
        counts["trials"] += 1
        counts["faults"] += len(res["faults"])
        counts["by_kind"].update(res["faults"])
        if res["lost"]:
            counts["lost_trials"] += 1
            counts["losses"].append({"trial": t, "faults": res["faults"], "lost": res["lost"]})
        log(f"trial {t}: faults {res['faults'] or 'none'}: {'LOST ' + '; '.join(res['lost']) if res['lost'] else 'ok'}")
    counts["by_kind"] = dict(counts["by_kind"])
    return counts


def make_shards(out_dir) -> dict:
    """tinyshakespeare as GPT-2 token shards (as tests/conftest.py makes them)."""
    import numpy as np

    from gpt2train.data.tokenizer import EOT_TOKEN, encode
    from gpt2train.formats.shards import write_shard

    shared = Path(os.environ.get("GPT2TRAIN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    text = (shared / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    tokens = np.array([EOT_TOKEN] + encode(text), dtype=np.uint16)
    n_val = len(tokens) // 10
    paths = {"val": Path(out_dir) / "val.bin", "train": Path(out_dir) / "train.bin"}
    write_shard(paths["val"], tokens[:n_val])
    write_shard(paths["train"], tokens[n_val:])
    return {k: str(v) for k, v in paths.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-faults", type=int, default=3, help="faults per trial: 1..N, chosen at random")
    ap.add_argument("--json", help="also write the counts to this file")
    args = ap.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fault_trials_") as tmp:
        counts = run_trials(args.trials, args.seed, make_shards(tmp), tmp, args.max_faults)
    counts["seconds"] = round(time.time() - t0, 1)
    print(f"trials run: {counts['trials']}")
    print(
        f"faults injected: {counts['faults']} ({', '.join(f'{k} {v}' for k, v in sorted(counts['by_kind'].items()))})"
    )
    print(f"trials that lost data: {counts['lost_trials']}")
    print(f"time: {counts['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(counts, indent=2))
    return 1 if counts["lost_trials"] else 0


if __name__ == "__main__":
    sys.exit(main())
