"""A run directory's checkpoints: their file names, the DONE record, and which of them are usable.

A checkpoint after N updates is ``model_%08d.bin`` (llm.c's format; ``.safetensors`` for a modern-architecture
model), one ``state_%08d_%05d.safetensors`` per rank that holds state, and ``DONE_%08d``, written last, holding
the sizes of the others (llm.c's DONE file is empty). train/checkpoint.py writes and restores them; this module
is the one place that names them, lists them, reads the DONE record and decides whether a checkpoint is usable,
for resume (train/), for loading a run dir as a model (formats/load.py) and for ``gpt2train status``
(runinfo.py).
"""

from __future__ import annotations

import json
import os
import re

from gpt2train.config import is_int
from gpt2train.errors import UserError

# every file of a checkpoint, by kind; temp files (``.tmp``) and anything else do not match
_FILE_RE = re.compile(r"^(?:model_(\d{8})\.(?:bin|safetensors)|state_(\d{8})_\d{5}\.safetensors|DONE_(\d{8}))$")

# -- names ----------------------------------------------------------------------------------------


def model_path(out_dir: str, step: int, ext: str | None = None) -> str:
    """The model file of a checkpoint; ``ext`` None: the .safetensors one where it exists, else the .bin."""
    if ext is None:
        modern = os.path.join(out_dir, f"model_{step:08d}.safetensors")
        ext = ".safetensors" if os.path.exists(modern) else ".bin"
    return os.path.join(out_dir, f"model_{step:08d}{ext}")


def model_ext(model_cfg) -> str:
    """.safetensors for a modern-architecture model, .bin (llm.c's format) for GPT-2."""
    return ".bin" if model_cfg.classic else ".safetensors"


def state_path(out_dir: str, step: int, rank: int) -> str:
    return os.path.join(out_dir, f"state_{step:08d}_{rank:05d}.safetensors")


def done_path(out_dir: str, step: int) -> str:
    return os.path.join(out_dir, f"DONE_{step:08d}")


def step_of(path: str) -> int | None:
    """The step in a checkpoint file's name (None for a name that has none)."""
    m = re.search(r"_(\d{8})", os.path.basename(path))
    return int(m.group(1)) if m else None


# -- listing ---------------------------------------------------------------------------------------


def checkpoint_files(out_dir: str) -> dict[int, list[str]]:
    """The names of the checkpoint files (model, state, DONE) in ``out_dir`` by step; {} for no such dir."""
    try:
        names = os.listdir(out_dir)
    except OSError:
        return {}
    steps: dict[int, list[str]] = {}
    for name in sorted(names):
        if m := _FILE_RE.match(name):
            steps.setdefault(int(next(g for g in m.groups() if g)), []).append(name)
    return steps


def complete_steps(out_dir: str) -> list[int]:
    """Steps with a DONE marker, newest first."""
    if not out_dir:
        return []
    files = checkpoint_files(out_dir)
    return sorted((s for s, names in files.items() if f"DONE_{s:08d}" in names), reverse=True)


# -- the DONE record -------------------------------------------------------------------------------


def done_record(out_dir: str, step: int, world_size: int, zero_stage: int, state_ranks: int) -> dict:
    """What ``DONE_<step>`` holds once the checkpoint's files are in place: their sizes, checked on resume."""
    files = [model_path(out_dir, step)] + [state_path(out_dir, step, r) for r in range(state_ranks)]
    return {
        "step": step,
        "world_size": world_size,
        "zero_stage": zero_stage,
        "files": {os.path.basename(p): os.path.getsize(p) for p in files},
    }


def read_done_record(out_dir: str, step: int) -> dict:
    """The DONE record of ``step``, checked before it is trusted: ``{}`` for llm.c's empty DONE file, else its
    step equal to the file name's, world_size and zero_stage in range, and the files it lists: this step's model
    and state files by their plain names (never a path out of ``out_dir``) with their sizes. A UserError naming
    the file otherwise."""
    from gpt2train.paths import confined_name

    path = done_path(out_dir, step)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    if not text.strip():
        return {}
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise UserError(f"{path} is corrupt (not JSON)") from None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        raise UserError(f"{path} is corrupt (no list of files)")
    if record.get("step", step) != step or isinstance(record.get("step"), bool):
        raise UserError(f"{path} is corrupt: it says step {record.get('step')!r}, its name says step {step}")
    world, zero = record.get("world_size", 1), record.get("zero_stage", 0)
    if not (is_int(world) and world >= 1 and is_int(zero) and zero in (0, 1)):
        raise UserError(f"{path} is corrupt: world_size {world!r} / zero_stage {zero!r}")
    own = re.compile(rf"^(model_{step:08d}\.(bin|safetensors)|state_{step:08d}_\d{{5}}\.safetensors)$")
    for name, size in record["files"].items():
        confined_name(name, path, "checkpoint file")
        if not own.match(name) or not is_int(size) or size < 0:
            raise UserError(f"{path} is corrupt: it lists {name!r} ({size!r} bytes), not a file of step {step}")
    return record


# -- usable checkpoints ----------------------------------------------------------------------------


def checkpoint_problem(out_dir: str, step: int) -> str | None:
    """Why the checkpoint at ``step`` is unusable, or None if its DONE record matches the files."""
    try:
        record = read_done_record(out_dir, step)
    except UserError as e:
        return str(e)
    if not record:  # an llm.c DONE file is empty: only the model file can be checked
        return None if os.path.exists(model_path(out_dir, step)) else "model file missing"
    for name, size in record["files"].items():
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
            return f"{path} is missing"
        if os.path.getsize(path) != size:
            return f"{path} is {os.path.getsize(path)} bytes, the DONE record says {size}"
    return _header_problem(out_dir, step, list(record["files"]))


def _header_problem(out_dir: str, step: int, names: list[str]) -> str | None:
    """A damaged header (overwritten bytes of the right length) in the model or a state file. Cheap: only the
    headers are read; flipped bits inside tensor data are not detected (no checksums, to keep resume fast)."""
    from safetensors import SafetensorError, safe_open

    from gpt2train.formats.load import read_model_header
    from gpt2train.train.checkpoint import read_state_meta, state_tensors_problem, unreadable_state

    try:
        read_model_header(model_path(out_dir, step))
    except UserError as e:
        return str(e)
    for name in names:
        if name.startswith("state_"):
            path = os.path.join(out_dir, name)
            try:
                read_state_meta(path)
                with safe_open(path, framework="pt") as f:  # the names, and the small RNG tensors only
                    tensors = {k: f.get_tensor(k) if k.startswith("rng/") else None for k in f.keys()}
            except UserError as e:
                return str(e)
            except (SafetensorError, OSError, ValueError, RuntimeError) as e:
                return str(unreadable_state(path, e))
            if problem := state_tensors_problem(tensors):
                return str(unreadable_state(path, problem))
    return None


def latest_usable_step(out_dir: str, warn=print) -> int | None:
    """The newest checkpoint whose files match its DONE record; damaged ones are reported and passed over."""
    for step in complete_steps(out_dir):
        problem = checkpoint_problem(out_dir, step)
        if problem is None:
            return step
        warn(f"warning: checkpoint at step {step} is unusable ({problem}); trying an older one")
    return None


def resume_step(out_dir: str, warn=print) -> int | None:
    """The checkpoint ``-y 1`` resumes from: the newest usable one (damaged newer ones warned about and passed
    over), None when there is none; a UserError when checkpoints exist but none is usable (starting afresh
    would overwrite them)."""
    step = latest_usable_step(out_dir, warn)
    if step is None and (steps := complete_steps(out_dir)):
        raise UserError(f"-o {out_dir}: no checkpoint there is usable (step {steps[0]}: "
                        f"{checkpoint_problem(out_dir, steps[0])}); move the damaged files away, or start afresh "
                        "in another -o")  # fmt: skip
    return step


def newest_model(run_dir: str, warn=print) -> str | None:
    """The model file (model_%08d.bin or .safetensors) of the newest usable checkpoint of a run dir, None if
    there is none (llm.c's checkpoints, with their empty DONE files, count)."""
    step = latest_usable_step(run_dir, warn)
    return None if step is None else model_path(run_dir, step)


# -- retention -------------------------------------------------------------------------------------


def delete_checkpoint(out_dir: str, step: int) -> None:
    """DONE first, so a half-deleted checkpoint never looks complete."""
    done = os.path.basename(done_path(out_dir, step))
    names = sorted(checkpoint_files(out_dir).get(step, []), key=lambda n: n != done)
    for name in names:
        try:
            os.remove(os.path.join(out_dir, name))
        except FileNotFoundError:
            pass


def prune(out_dir: str, keep: int, major_every: int) -> list[int]:
    """-nk/-nm retention: keep the newest ``keep`` checkpoints, and every major one; return what was deleted."""
    if keep <= 0:
        return []
    deleted = []
    # the newest checkpoint that resume would use is never deleted, even when newer damaged ones count
    # towards ``keep`` (a DONE whose files are broken must not push the last good one out)
    protected = latest_usable_step(out_dir, warn=lambda _msg: None)
    minors = [s for s in complete_steps(out_dir) if not (major_every > 0 and s % major_every == 0)]
    for step in minors[keep:]:
        if step == protected:
            continue
        delete_checkpoint(out_dir, step)
        deleted.append(step)
    return deleted
