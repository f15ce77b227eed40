"""The fault-trial engine of bench/fault_trials.py on three kinds (SIGKILL from outside at a random moment,
SIGKILL with a checkpoint complete but its DONE record unwritten, a damaged newest checkpoint): resume always
finds a usable checkpoint and the final main.log equals an uninterrupted run's (the bench runs 100 and more)."""

import importlib.util
from pathlib import Path

from tests.helpers import run_cli

_spec = importlib.util.spec_from_file_location("fault_trials", Path(__file__).parents[1] / "bench" / "fault_trials.py")
fault_trials = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fault_trials)


def test_random_kills_lose_nothing(tmp_path, text_shards, capsys):
    def finish(argv):  # the unharmed resume runs in this process (no interpreter start-up)
        code, out, err = run_cli(argv, capsys)
        return code, out + err

    # one trial per kind of fault; where and when comes from the seeded RNG
    # (the bench runs 100 faults of every kind; each kind's own guarantee has its own test in test_faults.py,
    # test_lock.py and test_rollback.py, so the suite runs the engine on three kinds only)
    kinds = ["sigkill", "exit_before_done", "corrupt"]
    counts = fault_trials.run_trials(len(kinds), seed=1, shards=text_shards, work_dir=tmp_path,
                                     max_faults=1, finish=finish, kinds=kinds, log=lambda m: None)  # fmt: skip
    assert counts["lost_trials"] == 0, counts["losses"]
    assert counts["trials"] == len(kinds) and counts["faults"] >= 2, counts
