"""Hit a tiny CPU training run with faults at random moments, resume it with -y 1 until it finishes, and count
runs that lost data.

Each trial starts a fresh run in its own output dir and, chosen by a seeded RNG, hits it 1..--max-faults
times with one of: SIGKILL from outside at a random moment (after a random logged step, plus a random delay,
so some kills land inside a checkpoint write); an injected death inside a checkpoint write (GPT2TRAIN_INJECT
exit_in_model / exit_in_state / exit_before_done: temp file half written, or all files in place but no DONE
record); an abrupt exit in a step; a full disk during a checkpoint write (fail_in_model / fail_in_state: the
run must stop with an error line); a SIGKILL after which the newest checkpoint is damaged (a file cut short,
a garbled header or DONE record, a state file removed: resume must pass over it to an older one); and a
second run started on the same -o while the first trains (it must be refused by the run lock). Every kill
leaves a stale lock, which the next run takes over. After every fault it checks that each DONE record on disk
still matches its files and that the newest usable checkpoint never went backwards (but for a damaged one);
the last resume runs unharmed, and its main.log must equal an uninterrupted run's, with no temp or lock file
left over.

    PYTHONPATH=src python bench/fault_trials.py --trials 30 --faults 100

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
CHECKPOINT_KINDS = ("exit_in_model", "exit_in_state", "exit_before_done")  # killed inside a checkpoint write
DISK_FULL_KINDS = ("fail_in_model", "fail_in_state")  # a checkpoint write fails (ENOSPC): a clean stop, exit 1
KINDS = ("sigkill", "sigkill", *CHECKPOINT_KINDS, "exit", *DISK_FULL_KINDS, "corrupt", "double_start")


def train_args(shards: dict, out_dir, steps: int = STEPS) -> list[str]:
    """The run every trial repeats: checkpoints every 2 steps, keeping 2 plus the major ones (every 4)."""
    args = ["train", "-i", shards["train"], "-j", shards["val"], "-o", out_dir, *TINY, "-b", "4", "-t", "32",
            "-d", "256", "-x", steps, "-v", 4, "-m", 2, "-s", 0, "-l", "3e-3", "-n", EVERY, "-nk", 2, "-nm", 4,
            "-y", 1]  # fmt: skip
    return [str(a) for a in args]


class Run:
    """``gpt2train argv`` in a child forked from this process, which imported torch once: a run starts in a
    fraction of a second instead of the seconds an interpreter needs (on a 2-core machine the difference between
    minutes and hours for 100 faults). The child is a real process: SIGKILL, os._exit and the kernel's release of
    its lock behave as for any launch. Output goes to a file, read by ``communicate``."""

    def __init__(self, argv: list[str], inject: str = ""):
        self.out = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.returncode: int | None = None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the bench
            code = 99
            try:
                os.dup2(self.out.fileno(), 1)
                os.dup2(self.out.fileno(), 2)
                # fresh streams on fds 1 and 2 (a parent's may be replaced, e.g. by pytest's capture)
                sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
                sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)
                os.environ["GPT2TRAIN_INJECT"] = inject
                from gpt2train.cli import main as cli_main

                code = cli_main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 2
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def communicate(self, timeout: float = 600) -> tuple[str, None]:
        deadline = time.time() + timeout
        while self.poll() is None:
            if time.time() > deadline:
                self.send_signal(signal.SIGKILL)
                raise RuntimeError(f"run {self.pid} took longer than {timeout} s")
            time.sleep(0.02)
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        return text, None


FORK = False  # set by main(): forked runs need a parent that never ran torch (its thread pools do not survive fork)


def start(argv: list[str], inject: str = ""):
    """``gpt2train argv`` with output captured (and GPT2TRAIN_INJECT set when ``inject``): a forked Run under
    main(), else a fresh interpreter (subprocess.Popen, the same interface), as from a test that trains in-process."""
    if FORK:
        return Run(argv, inject)
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


def check_dir(out_dir) -> tuple[int | None, dict[int, str]]:
    """(newest usable step, {step: problem}): every DONE on disk must match its files."""
    from gpt2train import rundir

    problems = {}
    for step in rundir.complete_steps(str(out_dir)):
        if (why := rundir.checkpoint_problem(str(out_dir), step)) is not None:
            problems[step] = f"DONE for step {step} but {why}"
    return rundir.latest_usable_step(str(out_dir), warn=lambda _m: None), problems


def _kill_after_a_step(rng: random.Random, proc, out_dir, newest: int | None) -> None:
    """SIGKILL ``proc`` once a random step past ``newest`` is logged, plus a random moment (sometimes inside a
    checkpoint write)."""
    target, delay = rng.randrange((newest or 0), STEPS), rng.uniform(0.0, 0.3)
    deadline = time.time() + 300
    while proc.poll() is None and _logged_steps(out_dir) <= target and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)


def damage_newest(rng: random.Random, out_dir) -> str:
    """Damage the newest complete checkpoint as a bad disk or a careless hand would: a file cut short, a
    garbled header, a state file gone, a garbled DONE record. Returns what was done ('' if none to damage)."""
    from gpt2train import rundir

    newest, _ = check_dir(out_dir)
    if newest is None:
        return ""
    model, state, done = (rundir.model_path(str(out_dir), newest), rundir.state_path(str(out_dir), newest, 0),
                          rundir.done_path(str(out_dir), newest))  # fmt: skip
    how = rng.choice(["truncate_model", "garble_model_header", "truncate_state", "remove_state", "garble_done"])
    if how == "truncate_model":
        os.truncate(model, os.path.getsize(model) - rng.randint(1, 4096))
    elif how == "garble_model_header":
        with open(model, "r+b") as f:
            f.write(bytes(rng.randrange(256) for _ in range(16)))
    elif how == "truncate_state":
        os.truncate(state, rng.randrange(os.path.getsize(state)))
    elif how == "remove_state":
        os.remove(state)
    else:
        Path(done).write_text("{not json")
    return f"{how}@{newest}"


def one_fault(rng: random.Random, out_dir, argv: list[str], newest: int | None, kind: str | None = None
              ) -> tuple[str, list[str]]:  # fmt: skip
    """Run once, hit by one fault (of a random kind unless given); returns (the kind, or '' if the run ended
    before the fault came, and what went wrong that must not: data lost or two runs in one directory)."""
    kind = kind or rng.choice(KINDS)
    later = [s for s in range(EVERY, STEPS + 1, EVERY) if newest is None or s > newest]
    if not later and kind in (*CHECKPOINT_KINDS, *DISK_FULL_KINDS):
        kind = "sigkill"
    problems = []
    if kind in CHECKPOINT_KINDS or kind in DISK_FULL_KINDS:
        proc = start(argv, f"{kind}@{rng.choice(later)}")
    elif kind == "exit":
        proc = start(argv, f"exit@{rng.randrange((newest or 0), STEPS)}")
    elif kind == "double_start":  # a second run on the same -o while the first one trains: refused
        proc = start(argv)
        deadline = time.time() + 300
        while proc.poll() is None and _logged_steps(out_dir) <= (newest or 0) and time.time() < deadline:
            time.sleep(0.01)
        second = start(argv)
        out2, _ = second.communicate(timeout=600)
        first_alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        if first_alive and (second.returncode == 0 or "another run is training" not in out2):
            problems.append(f"a second run on the same -o was not refused (exit {second.returncode}): {out2[-500:]}")
        if not first_alive:
            kind = ""  # the first run ended before the second one came: nothing was tried
    else:  # sigkill, corrupt: killed from outside at a random moment
        proc = start(argv)
        _kill_after_a_step(rng, proc, out_dir, newest)
    out, _ = proc.communicate(timeout=600)
    if proc.returncode == 0 or not kind:
        return "", problems  # it finished before the fault came: nothing was injected
    expected = (1,) if kind in DISK_FULL_KINDS else (-signal.SIGKILL, 13)
    if proc.returncode not in expected:
        raise RuntimeError(f"run died of something else (exit {proc.returncode}):\n{out[-3000:]}")
    if kind in DISK_FULL_KINDS and "error:" not in out:
        problems.append(f"{kind}: the run stopped without an error line: {out[-500:]}")
    if kind == "corrupt":
        damaged = damage_newest(rng, out_dir)
        kind = f"corrupt:{damaged}" if damaged else "sigkill"  # corrupt:HOW@STEP
    return kind, problems


def trial(rng: random.Random, out_dir, shards: dict, reference: list[str], max_faults: int, finish=run_to_end,
          kind: str | None = None) -> dict:  # fmt: skip
    """One trial; returns {'faults': [kinds], 'lost': [reasons]}."""
    argv = train_args(shards, out_dir)
    faults, lost, newest, damaged = [], [], None, set()
    for _ in range(rng.randint(1, max_faults)):
        if newest == STEPS:  # killed after its last checkpoint: nothing left to interrupt
            break
        done, problems = one_fault(rng, out_dir, argv, newest, kind)
        lost += problems
        if not done:
            break
        if done.startswith("corrupt:"):
            done, step = done.split("@")
            damaged.add(int(step))
        faults.append(done)
        usable, problems = check_dir(out_dir)
        lost += [why for step, why in problems.items() if step not in damaged]
        # only a checkpoint damaged on purpose may take the newest usable one back
        if newest is not None and (usable is None or usable < newest) and not done.startswith("corrupt:"):
            lost.append(f"newest usable checkpoint went from step {newest} back to {usable} after {done}")
        newest = usable
    code, out = finish(argv)
    if code != 0:
        lost.append(f"the resumed run failed (exit {code}): {out[-2000:]}")
    if "unusable" in out and not damaged:
        lost.append("resume found a damaged checkpoint: " + next(ln for ln in out.splitlines() if "unusable" in ln))
    if faults and newest is not None and f"resumed from checkpoint at step {newest}" not in out:
        lost.append(f"resume did not start from the newest complete checkpoint (step {newest})")
    if main_log(out_dir) != reference:
        lost.append("main.log differs from the uninterrupted run's")
    leftovers = [n for n in os.listdir(out_dir) if n.endswith(".tmp") or n == ".lock"]
    if leftovers:
        lost.append(f"temp or lock files left over: {leftovers}")
    return {"faults": faults, "lost": lost}


def run_trials(trials: int, seed: int, shards: dict, work_dir, max_faults: int = 3, finish=run_to_end,
               kinds: list[str] | None = None, log=print, min_faults: int = 0) -> dict:  # fmt: skip
    """Run ``trials`` trials, or more until ``min_faults`` faults were injected (trial t's faults of kind
    ``kinds[t % len(kinds)]``, random without ``kinds``); returns the counts (and every loss, with its reason)."""
    work_dir = Path(work_dir)
    code, out = finish(train_args(shards, work_dir / "reference"))
    assert code == 0, out
    reference = main_log(work_dir / "reference")
    counts = {"trials": 0, "faults": 0, "by_kind": collections.Counter(), "lost_trials": 0, "losses": []}
    log(f"reference run done; {trials} trials follow")
    t = 0
    while t < trials or counts["faults"] < min_faults:
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
        t += 1
    counts["by_kind"] = dict(counts["by_kind"])
    return counts


def make_shards(out_dir, chars: int = 200_000) -> dict:
    """Python's own documentation (pydoc_data) as GPT-2 token shards, the first 10% val: no download, no
    ../shared."""
    import numpy as np

    from gpt2train.data.text_sources import pydoc_docs
    from gpt2train.data.tokenizer import EOT_TOKEN, encode
    from gpt2train.formats.shards import write_shard

    tokens = np.array([EOT_TOKEN] + encode("\n\n".join(pydoc_docs())[:chars]), dtype=np.uint16)
    n_val = len(tokens) // 10
    paths = {"val": Path(out_dir) / "val.bin", "train": Path(out_dir) / "train.bin"}
    write_shard(paths["val"], tokens[:n_val])
    write_shard(paths["train"], tokens[n_val:])
    return {k: str(v) for k, v in paths.items()}


def main() -> int:
    global FORK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-faults", type=int, default=3, help="faults per trial: 1..N, chosen at random")
    ap.add_argument("--faults", type=int, default=0, help="go on past --trials until this many faults were injected")
    ap.add_argument("--json", help="also write the counts to this file")
    ap.add_argument("--spawn", action="store_true", help="start every run as a fresh interpreter (slower) "
                    "instead of forking it from this process")  # fmt: skip
    args = ap.parse_args()
    if not args.spawn:
        os.environ.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")  # before torch is imported, for every child
        import gpt2train.train.loop  # noqa: F401  (imported once here, inherited by every forked run)

        FORK = True
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fault_trials_") as tmp:
        counts = run_trials(args.trials, args.seed, make_shards(tmp), tmp, args.max_faults, min_faults=args.faults)
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
