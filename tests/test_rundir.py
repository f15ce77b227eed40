"""rundir.py: the names of a run directory's checkpoint files, their listing, and the newest usable model, as
resume, ``eval``/``sample`` on a run dir and ``status`` see them alike."""

from __future__ import annotations

import os

from gpt2train import rundir
from gpt2train.runinfo import list_checkpoints


def _touch(d, name, size=1):
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"x" * size)


def test_checkpoint_files_by_step(tmp_path):
    d = str(tmp_path)
    for name in ("model_00000002.bin", "state_00000002_00000.safetensors", "state_00000002_00001.safetensors",
                 "DONE_00000002", "model_00000004.safetensors", "state_00000004_00000.safetensors.tmp",
                 "model_00000006.bin.tmp", "main.log", "DONE_6", "model_00000008.pt"):  # fmt: skip
        _touch(d, name)
    assert rundir.checkpoint_files(d) == {
        2: ["DONE_00000002", "model_00000002.bin", "state_00000002_00000.safetensors",
            "state_00000002_00001.safetensors"],
        4: ["model_00000004.safetensors"],
    }  # fmt: skip
    assert rundir.complete_steps(d) == [2]
    assert rundir.checkpoint_files(os.path.join(d, "missing")) == {} and rundir.complete_steps("") == []
    assert [(c["step"], c["complete"], c["model_file"], c["state_files"]) for c in list_checkpoints(tmp_path)] == [
        (2, True, True, 2),
        (4, False, True, 0),  # a modern model file counts as the model file too
    ]
    rundir.delete_checkpoint(d, 2)
    assert sorted(os.listdir(d)) == ["DONE_6", "main.log", "model_00000004.safetensors", "model_00000006.bin.tmp",
                                     "model_00000008.pt", "state_00000004_00000.safetensors.tmp"]  # fmt: skip


def test_names_and_step_of(tmp_path):
    d = str(tmp_path)
    assert rundir.model_path(d, 3) == os.path.join(d, "model_00000003.bin")
    _touch(d, "model_00000003.safetensors")
    assert rundir.model_path(d, 3) == os.path.join(d, "model_00000003.safetensors")
    assert rundir.model_path(d, 3, ".bin").endswith("model_00000003.bin")
    assert rundir.state_path(d, 3, 1).endswith("state_00000003_00001.safetensors")
    assert rundir.done_path(d, 3).endswith("DONE_00000003")
    steps = [rundir.step_of(p) for p in (rundir.state_path(d, 12, 7), rundir.done_path(d, 5), "main.log")]
    assert steps == [12, 5, None]


def test_newest_model_takes_llmc_empty_done(tmp_path):
    """llm.c's DONE files are empty: its checkpoints load by their model file alone; a DONE without its model
    file is passed over with a warning."""
    from gpt2train.config import ModelConfig
    from gpt2train.formats.llmc_model import write_llmc_model
    from gpt2train.model import build_model

    d = str(tmp_path)
    cfg = ModelConfig(n_layer=1, n_head=1, n_embd=8, vocab_size=16, max_seq_len=4)
    write_llmc_model(rundir.model_path(d, 5, ".bin"), build_model(cfg, 0).state_dict(), cfg)
    _touch(d, "DONE_00000005", 0)
    _touch(d, "DONE_00000009", 0)  # no model file of step 9
    warnings = []
    assert rundir.newest_model(d, warn=warnings.append) == rundir.model_path(d, 5)
    assert len(warnings) == 1 and "step 9" in warnings[0] and "model file missing" in warnings[0]
    assert rundir.newest_model(str(tmp_path / "none"), warn=warnings.append) is None
