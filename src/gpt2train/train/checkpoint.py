"""Checkpoints in the output dir, readable by llm.c where llm.c has a format.

A checkpoint after N updates is:
- ``model_%08d.bin``: the model in llm.c's format (rank 0); a modern-architecture model (formats/safetensors_model.py),
  which llm.c's format cannot hold, is ``model_%08d.safetensors`` instead;
- ``state_%08d_%05d.safetensors``: one per rank: optimizer moments (this rank's shard under ZeRO-1),
  parameters when the model file cannot hold them exactly, RNG states as tensors, and a JSON
  ``meta`` entry (step, data loader position, outlier detectors, world size, config);
- ``DONE_%08d``: written last, by rank 0, holding the sizes of the files above; resume takes the
  newest step whose DONE exists and whose files match it.
Every file is written to a temp name, fsynced and renamed, so a crash at any moment leaves the
previous checkpoint usable. Loading executes no code from the files (safetensors, raw arrays, JSON).
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from gpt2train.config import is_int, is_number
from gpt2train.errors import UserError

_DONE_RE = re.compile(r"^DONE_(\d{8})$")

# Fault injection (faults.py) sets this to kill the process part-way through a checkpoint write; it is
# called with (phase, temp path) at "model" and "state" (the temp file written, not yet renamed) and at
# "done" (every file in place, the DONE record not yet written). None in every normal run.
fault_hook: Callable[[str, str], None] | None = None


def _fault_point(phase: str, path: str) -> None:
    if fault_hook is not None:
        fault_hook(phase, path)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def write_failed(path: str, err: Exception) -> UserError:
    """A one-line error for a checkpoint file that could not be written (ENOSPC named as a full disk)."""
    # safetensors reports I/O errors as SafetensorError with the OS error only in its text
    full = getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "os error 28" in str(err)
    why = "the disk is full" if full else (getattr(err, "strerror", None) or str(err))
    older = [s for s in complete_steps(os.path.dirname(path)) if checkpoint_problem(os.path.dirname(path), s) is None]
    keep = f"the checkpoint at step {older[0]} is intact" if older else "no earlier checkpoint exists"
    return UserError(f"cannot write checkpoint file {path}: {why}; {keep}: free space in -o and resume with -y 1")


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


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic_bytes(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        raise write_failed(path, e) from None


def _step_of(path: str) -> int | None:
    """The step in a checkpoint file's name (None for a name that has none)."""
    m = re.search(r"_(\d{8})", os.path.basename(path))
    return int(m.group(1)) if m else None


def save_model(path: str, state_dict: dict, model_cfg, dtype: str) -> None:
    """The checkpoint's llm.c model file (atomic); on a failed write (full disk) nothing named like it is left."""
    from gpt2train.formats.llmc_model import write_llmc_model
    from gpt2train.formats.safetensors_model import save_safetensors_model

    write = write_llmc_model if model_cfg.classic else save_safetensors_model
    try:
        write(path, state_dict, model_cfg, dtype, on_written=lambda tmp: _fault_point("model", tmp))
    except (OSError, SafetensorError) as e:
        _remove_quietly(path + ".tmp")
        raise write_failed(path, e) from None


def local_optimizer(optimizer):
    """The optimizer whose state this rank holds (ZeroAdamW keeps its shard's optimizer in ``.optim``)."""
    return getattr(optimizer, "optim", optimizer)


def _flatten_optimizer(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = local_optimizer(optimizer).state_dict()
    tensors, state_meta = {}, {}
    for idx, pstate in sd["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                # a copy: state tensors can be views of one buffer, which safetensors refuses to share
                tensors[f"optim/{idx}/{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                state_meta.setdefault(str(idx), {})[key] = value
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": state_meta}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = t
    for idx, scalars in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(path: str, optimizer, meta: dict, params: dict[str, torch.Tensor] | None = None) -> None:
    """One rank's resumable state as a safetensors file (atomic)."""
    tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors["rng/cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    for name, p in (params or {}).items():
        tensors[f"param/{name}"] = p.detach().to("cpu", copy=True).contiguous()
    full_meta = {**meta, "optimizer": opt_meta}
    tmp = path + ".tmp"
    try:
        save_file(tensors, tmp, metadata={"meta": json.dumps(full_meta)})
        _fault_point("state", tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:
        # this step's model file is complete but useless without its state: remove it with the temp file
        _remove_quietly(tmp)
        out_dir = os.path.dirname(path)
        if not os.path.exists(done_path(out_dir, _step_of(path))):
            _remove_quietly(model_path(out_dir, _step_of(path)))
        raise write_failed(path, e) from None


def read_state_meta(path: str) -> dict:
    """The metadata of a state file, without reading its tensors, checked (:func:`state_meta_problem`) before
    anything trusts it; a damaged or tampered file is a UserError naming it."""
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RecursionError) as e:
        raise _unreadable_state(path, e) from None
    problem = state_meta_problem(meta, _step_of(path))
    if problem:
        raise _unreadable_state(path, problem)
    return meta


def _unreadable_state(path: str, e: Exception | str) -> UserError:
    return UserError(f"checkpoint state {path} is unreadable or corrupt ({e}); delete that step's DONE file "
                     "to resume from the one before")  # fmt: skip


def load_state(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, tensors) of a state file, both checked; a damaged or tampered file is a UserError naming it."""
    meta = read_state_meta(path)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise _unreadable_state(path, e) from None
    problem = state_tensors_problem(tensors)
    if problem:
        raise _unreadable_state(path, problem)
    return meta, tensors


def state_meta_problem(meta, step: int | None) -> str | None:
    """What makes a state file's ``meta`` untrustworthy, or None. ``step`` is the step in the file's name.

    Checked before any of it is used: the keys the trainer reads and their types (ints are ints, not floats or
    bools), the step against the file name, the loader position inside the shards it records, the outlier
    detectors' windows, the optimizer's groups.
    """
    from gpt2train.data.loader import loader_state_problem

    if not isinstance(meta, dict):
        return "its meta is not an object"
    for key, kind in (("step", "int"), ("loader", "dict"), ("detectors", "dict"), ("world_size", "int"),
                      ("config", "dict"), ("optimizer", "dict")):  # fmt: skip
        if key not in meta:
            return f"its meta has no {key!r}"
        if not (is_int(meta[key]) if kind == "int" else isinstance(meta[key], dict)):
            return f"its meta's {key!r} is {meta[key]!r}, not an {kind}"[:200]
    if step is not None and meta["step"] != step:
        return f"its meta says step {meta['step']}, its name says step {step}"
    if meta["world_size"] < 1 or meta.get("zero_stage", 0) not in (0, 1):
        return f"its world_size {meta['world_size']!r} or zero_stage {meta.get('zero_stage')!r} is impossible"
    if "model_config" in meta and not isinstance(meta["model_config"], dict):
        return "its meta's 'model_config' is not an object"
    if problem := loader_state_problem(meta["loader"]):
        return problem
    for name in ("loss", "grad"):
        det = meta["detectors"].get(name)
        if not (isinstance(det, dict) and isinstance(det.get("values"), list) and is_int(det.get("skipped_in_a_row"))
                and det["skipped_in_a_row"] >= 0 and all(is_number(v) for v in det["values"])):  # fmt: skip
            return f"its {name} outlier detector state is not a window of finite numbers and a count"
    return _optimizer_meta_problem(meta["optimizer"])


def _optimizer_meta_problem(opt) -> str | None:
    groups, scalars = opt.get("param_groups"), opt.get("scalars")
    if not isinstance(groups, list) or not isinstance(scalars, dict):
        return "its optimizer state has no list of param_groups and no scalars"
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("params"), list):
            return "an optimizer param group is not an object with a list of params"
        if not all(is_int(i) and i >= 0 for i in g["params"]):
            return "an optimizer param group lists params that are not indices"
        for key in ("lr", "eps", "weight_decay", "momentum"):
            if key in g and not is_number(g[key]):
                return f"an optimizer param group's {key} is {g[key]!r}, not a number"[:200]
        if "betas" in g and not (isinstance(g["betas"], list) and len(g["betas"]) == 2
                                 and all(is_number(b) for b in g["betas"])):  # fmt: skip
            return "an optimizer param group's betas are not two numbers"
    for idx, values in scalars.items():
        if not idx.isdigit() or not isinstance(values, dict):
            return "the optimizer's per-parameter scalars are not keyed by parameter index"
        if not all(is_number(v) or isinstance(v, bool) for v in values.values()):
            return f"the optimizer's scalars of parameter {idx} are not numbers"
    return None


def state_tensors_problem(tensors: dict[str, torch.Tensor | None]) -> str | None:
    """What is wrong with a state file's tensors, or None: names of the three kinds, RNG states as the bytes
    torch.set_rng_state takes (not floats, not another length). Only the ``rng/*`` tensors are looked at (the
    others may be None: the checkpoint check reads names only)."""
    for name in tensors:
        kind = name.split("/", 1)[0]
        if kind not in ("optim", "rng", "param") or (kind == "optim" and not re.fullmatch(r"optim/\d+/[^/]+", name)):
            return f"it holds a tensor named {name!r}, which no checkpoint writes"
    cpu = tensors.get("rng/cpu")
    expected = torch.get_rng_state()
    if cpu is None or cpu.dtype != torch.uint8 or tuple(cpu.shape) != tuple(expected.shape):
        what = "missing" if cpu is None else f"{cpu.dtype} {tuple(cpu.shape)}"
        return f"its CPU RNG state is {what}, expected uint8 {tuple(expected.shape)}"
    try:  # the bytes must be a state the generator accepts: tried on a scratch generator, not the global one
        torch.Generator().set_state(cpu)
    except RuntimeError as e:
        return f"its CPU RNG state is invalid ({str(e).splitlines()[0]})"
    cuda = tensors.get("rng/cuda")
    if cuda is not None and (cuda.dtype != torch.uint8 or cuda.dim() != 1):
        return f"its CUDA RNG state is {cuda.dtype} {tuple(cuda.shape)}, expected uint8 bytes"
    return None


def restore_optimizer(optimizer, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Load the optimizer state; a ValueError when it does not fit this optimizer's parameters (their count,
    or a moment of another shape, which would otherwise fail mid-step)."""
    opt = local_optimizer(optimizer)
    state = _unflatten_optimizer(tensors, meta["optimizer"])
    params = [p for g in opt.param_groups for p in g["params"]]
    for idx, pstate in state["state"].items():
        if idx >= len(params):
            raise ValueError(f"state for parameter {idx}, but the optimizer has {len(params)}")
        for key, t in pstate.items():
            if torch.is_tensor(t) and t.dim() > 0 and t.shape != params[idx].shape:
                raise ValueError(f"{key} of parameter {idx} has shape {tuple(t.shape)}, the parameter "
                                 f"{tuple(params[idx].shape)}")  # fmt: skip
    opt.load_state_dict(state)


def restore_params(model, tensors: dict[str, torch.Tensor], path: str) -> None:
    """The exact parameters a state file keeps (``param/<name>``, when the model file cannot hold them), copied
    into ``model``; a set that does not match the model's parameters is a UserError naming the file."""
    params = {k[len("param/") :]: v for k, v in tensors.items() if k.startswith("param/")}
    if not params:
        return
    named = dict(model.named_parameters())
    if set(params) != set(named) or any(params[n].shape != p.shape for n, p in named.items()):
        raise _unreadable_state(path, "its parameters do not match the model's names and shapes")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(params[name].to(p.dtype))


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng/cpu"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])


def write_done(out_dir: str, step: int, world_size: int, zero_stage: int, state_ranks: int) -> None:
    """Mark the checkpoint complete: the DONE file records every file's size, checked on resume."""
    files = [model_path(out_dir, step)] + [state_path(out_dir, step, r) for r in range(state_ranks)]
    _fault_point("done", done_path(out_dir, step))
    record = {
        "step": step,
        "world_size": world_size,
        "zero_stage": zero_stage,
        "files": {os.path.basename(p): os.path.getsize(p) for p in files},
    }
    _write_atomic_bytes(done_path(out_dir, step), json.dumps(record).encode())
    _fsync_dir(out_dir)


def remove_unfinished(out_dir: str, step: int, rank: int) -> None:
    """After a failed checkpoint write: remove this rank's files of ``step`` (rank 0 also the model file),
    unless the step's DONE exists. Nothing named like a real checkpoint is left behind."""
    if os.path.exists(done_path(out_dir, step)):
        return
    paths = [state_path(out_dir, step, rank)] + ([model_path(out_dir, step)] if rank == 0 else [])
    for path in paths:
        _remove_quietly(path)
        _remove_quietly(path + ".tmp")


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
    from gpt2train.formats.llmc_model import read_llmc_header
    from gpt2train.formats.safetensors_model import read_safetensors_header

    path = model_path(out_dir, step)
    try:
        (read_safetensors_header if path.endswith(".safetensors") else read_llmc_header)(path)
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
                return str(_unreadable_state(path, e))
            if problem := state_tensors_problem(tensors):
                return str(_unreadable_state(path, problem))
    return None


def complete_steps(out_dir: str) -> list[int]:
    """Steps with a DONE marker, newest first."""
    if not out_dir or not os.path.isdir(out_dir):
        return []
    steps = [int(m.group(1)) for n in os.listdir(out_dir) if (m := _DONE_RE.match(n))]
    return sorted(steps, reverse=True)


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


def latest_usable_step(out_dir: str, warn=print) -> int | None:
    """The newest checkpoint whose files match its DONE record; damaged ones are reported and passed over."""
    for step in complete_steps(out_dir):
        problem = checkpoint_problem(out_dir, step)
        if problem is None:
            return step
        warn(f"warning: checkpoint at step {step} is unusable ({problem}); trying an older one")
    return None


def delete_checkpoint(out_dir: str, step: int) -> None:
    """DONE first, so a half-deleted checkpoint never looks complete."""
    paths = [done_path(out_dir, step), model_path(out_dir, step)]
    paths += [os.path.join(out_dir, n) for n in os.listdir(out_dir) if n.startswith(f"state_{step:08d}_")]
    for p in paths:
        try:
            os.remove(p)
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


def state_file_for(out_dir: str, step: int, rank: int, world_size: int, zero_stage: int) -> str:
    """The state file this rank resumes from. Replicated state (-z 0) lives in rank 0's file alone, so
    any world size can resume it; sharded state (-z 1) needs the world size that wrote it."""
    record = read_done_record(out_dir, step)
    saved_world = record.get("world_size", 1)
    saved_sharded = record.get("zero_stage", 0) >= 1 and saved_world > 1
    if saved_sharded or (zero_stage >= 1 and world_size > 1):
        if saved_world != world_size or saved_sharded != (zero_stage >= 1 and world_size > 1):
            raise UserError(
                f"cannot resume step {step}: it was written by {saved_world} processes with -z "
                f"{record.get('zero_stage', 0)}, and this run has {world_size} processes with -z {zero_stage}; "
                f"resume with {saved_world} processes and the same -z"
            )
        return state_path(out_dir, step, rank)
    return state_path(out_dir, step, 0)
