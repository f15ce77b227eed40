"""Checkpoints in the output dir, readable by llm.c where llm.c has a format.

A checkpoint after N updates is:
- ``model_%08d.bin``: the model in llm.c's format (rank 0); a modern-architecture model (formats/safetensors_model.py),
  which llm.c's format cannot hold, is ``model_%08d.safetensors`` instead;
- ``state_%08d_%05d.safetensors``: one per rank: optimizer moments (this rank's shard under ZeRO-1),
  parameters when the model file cannot hold them exactly, RNG states as tensors, and a JSON
  ``meta`` entry (step, data loader position, outlier detectors, world size, config);
- ``DONE_%08d``: written last, by rank 0, holding the sizes of the files above; resume takes the
  newest step whose DONE exists and whose files match it.
The names, the DONE record and the checks of which checkpoint is usable are rundir.py's; this module writes
checkpoints and restores a run from one. Every file is written to a temp name, fsynced and renamed, so a crash
at any moment leaves the previous checkpoint usable. Loading executes no code from the files (safetensors, raw
arrays, JSON).
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
from gpt2train.rundir import (
    checkpoint_problem,
    complete_steps,
    done_path,
    done_record,
    latest_usable_step,
    model_ext,
    model_path,
    prune,
    read_done_record,
    state_path,
    step_of,
)
from gpt2train.train.accelerate import training_buffers

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


def save_state(path: str, optimizer, meta: dict, params: dict[str, torch.Tensor] | None = None,
               buffers: dict[str, torch.Tensor] | None = None) -> None:  # fmt: skip
    """One rank's resumable state as a safetensors file (atomic); ``buffers``: the model's training-state buffers
    outside its state dict (accelerate.training_buffers: delayed scaling's amax histories)."""
    tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors["rng/cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    for kind, named in (("param", params), ("buffer", buffers)):
        for name, t in (named or {}).items():
            tensors[f"{kind}/{name}"] = t.detach().to("cpu", copy=True).contiguous()
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
        if not os.path.exists(done_path(out_dir, step_of(path))):
            _remove_quietly(model_path(out_dir, step_of(path)))
        raise write_failed(path, e) from None


def read_state_meta(path: str) -> dict:
    """The metadata of a state file, without reading its tensors, checked (:func:`state_meta_problem`) before
    anything trusts it; a damaged or tampered file is a UserError naming it."""
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RecursionError) as e:
        raise unreadable_state(path, e) from None
    problem = state_meta_problem(meta, step_of(path))
    if problem:
        raise unreadable_state(path, problem)
    return meta


def unreadable_state(path: str, e: Exception | str) -> UserError:
    return UserError(f"checkpoint state {path} is unreadable or corrupt ({e}); delete that step's DONE file "
                     "to resume from the one before")  # fmt: skip


def load_state(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, tensors) of a state file, both checked; a damaged or tampered file is a UserError naming it."""
    meta = read_state_meta(path)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise unreadable_state(path, e) from None
    problem = state_tensors_problem(tensors)
    if problem:
        raise unreadable_state(path, problem)
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
    """What is wrong with a state file's tensors, or None: names of the four kinds, RNG states as the bytes
    torch.set_rng_state takes (not floats, not another length). Only the ``rng/*`` tensors are looked at (the
    others may be None: the checkpoint check reads names only)."""
    for name in tensors:
        kind = name.split("/", 1)[0]
        known = kind in ("rng", "param", "buffer") or (kind == "optim" and re.fullmatch(r"optim/\d+/[^/]+", name))
        if not known:
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


def _named(tensors: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """A state file's tensors of one kind (``param``, ``buffer``) by the model's name for them."""
    return {k[len(kind) + 1 :]: v for k, v in tensors.items() if k.startswith(kind + "/")}


def restore_params(model, tensors: dict[str, torch.Tensor], path: str) -> None:
    """The exact parameters a state file keeps (``param/<name>``, when the model file cannot hold them), copied
    into ``model``; a set that does not match the model's parameters is a UserError naming the file."""
    params = _named(tensors, "param")
    if not params:
        return
    named = dict(model.named_parameters())
    if set(params) != set(named) or any(params[n].shape != p.shape for n, p in named.items()):
        raise unreadable_state(path, "its parameters do not match the model's names and shapes")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(params[name].to(p.dtype))


def restore_buffers(model, tensors: dict[str, torch.Tensor], path: str) -> None:
    """The training-state buffers a state file keeps (``buffer/<name>``) copied into ``model``'s buffers of those
    names; the model's others stay as built (a run resumed with delayed scaling newly on records afresh), and a
    saved buffer the model does not have is dropped (resumed with it off). A shape that differs is a UserError."""
    named = dict(model.named_buffers())
    with torch.no_grad():
        for name, saved in _named(tensors, "buffer").items():
            if name not in named:
                continue
            if saved.shape != named[name].shape:
                raise unreadable_state(path, f"its buffer {name} is {tuple(saved.shape)}, the model's "
                                             f"{tuple(named[name].shape)}")  # fmt: skip
            named[name].copy_(saved)


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng/cpu"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])


def write_done(out_dir: str, step: int, world_size: int, zero_stage: int, state_ranks: int) -> None:
    """Mark the checkpoint complete: the DONE file records every file's size, checked on resume."""
    _fault_point("done", done_path(out_dir, step))
    record = done_record(out_dir, step, world_size, zero_stage, state_ranks)
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


# -- a run's checkpoints: write, restore, roll back ----------------------------------------------------------
# ``run`` is train/build.py's Run, ``rc`` the run's ResolvedConfig.

# settings that change the numbers of a resumed run (so it would no longer equal an uninterrupted one)
EXACTNESS_KEYS = ("lr", "warmup_steps", "final_lr_frac", "weight_decay", "lr_schedule", "max_steps",
                  "total_batch_size", "seq_len", "batch_size", "seed", "beta1", "beta2", "eps", "grad_clip",
                  "master_weights", "bf16_params", "dtype", "shuffle", "optimizer", "recipe", "muon_lr",
                  "muon_momentum", "head_lr", "embed_lr", "deterministic", "fp8", "fp8_impl", "fp8_bf16",
                  "fp8_cast_kernel", "fp8_scaling", "fp8_grad", "fp8_classifier", "fp8_gelu_cast",
                  "fp8_qkv_cast", "fp8_norm_cast")  # fmt: skip
# what a checkpoint that does not record a setting ran with, where that is not today's default, and the setting
# without which it changes nothing (the gradients' format matters only with FP8 on, then or now)
_DEFAULT_BEFORE = {
    "fp8_grad": ("e5m2", "fp8"),  # e4m3 since issue 21's fifth session
    "fp8_scaling": ("dynamic", "fp8"),  # auto (delayed in one process) since its ninth
    "fp8_classifier": (0, None),  # auto (2 in one process on a Hopper GPU) since its ninth
    "fp8_gelu_cast": (0, "fp8"),  # auto (1 with delayed scaling and the cast kernel) since its eleventh
}
# what a checkpoint written before config.resolve() recorded for a setting it left to the run ("auto"/-1/None)
_RECORDED_AUTO = ("auto", -1, None)


def changed_settings(saved: dict, rc) -> list[str]:
    """The EXACTNESS_KEYS whose value in a checkpoint's recorded config differs from this run's. A key missing
    from an older checkpoint had its default then; a recorded auto setting (older checkpoints kept the word, not
    what it became) is taken as unchanged where this run resolves that setting."""
    from gpt2train.config import AUTO_FIELDS, TrainConfig

    defaults = TrainConfig()
    changed = []
    for key in EXACTNESS_KEYS:
        before, needs = _DEFAULT_BEFORE.get(key, (getattr(defaults, key), None))
        if needs and not (saved.get(needs) in (1, 2) or getattr(rc, needs)):
            continue
        value = saved.get(key, before)
        if value in _RECORDED_AUTO and key in AUTO_FIELDS:
            continue
        if value != getattr(rc, key):
            changed.append(key)
    return changed


def _write_files(run, rc, step: int, sharded: bool) -> None:
    """This rank's files of the checkpoint at ``step``: the model (rank 0) and its state file."""
    out, main = rc.output_dir, run.rank == 0
    if main:
        save_model(model_path(out, step, model_ext(rc.model_config)), run.raw_model.state_dict(), rc.model_config,
                   rc.model_file_dtype)  # fmt: skip
    if main or sharded:
        # an fp32 file holds fp32 or bf16 weights exactly; a bf16 file only bf16 ones
        exact_in_model_file = rc.model_file_dtype == "fp32" or all(
            p.dtype == torch.bfloat16 for p in run.raw_model.parameters()
        )
        params = None if exact_in_model_file or not main else dict(run.raw_model.named_parameters())
        meta = {
            "step": step,
            "loader": run.train_batches.state_dict(),
            "detectors": {"loss": run.loss_detector.state_dict(), "grad": run.grad_detector.state_dict()},
            "world_size": run.world_size,
            "zero_stage": rc.zero_stage if run.world_size > 1 else 0,
            "config": rc.to_dict(),
            "model_config": rc.model_config.to_dict(),
            "determinism": run.determinism,
        }
        save_state(state_path(out, step, run.rank), run.optimizer, meta, params, training_buffers(run.raw_model))


def _agree(run, rc, step: int, failure: Exception | None) -> None:
    """Collective after each phase of a checkpoint write: when any rank failed (full disk...), every rank
    removes its files of this step (no DONE is written, the previous checkpoint stays the newest) and
    stops with the same one line naming the failing rank and file, instead of waiting for the timeout."""
    from gpt2train.train import distributed

    message = None
    if failure is not None:
        message = str(failure) if isinstance(failure, UserError) else f"{type(failure).__name__}: {failure}"
    failed = distributed.first_failure(message, run.device)
    if failed is None:
        return
    remove_unfinished(rc.output_dir, step, run.rank)
    if failure is not None and not isinstance(failure, UserError):
        raise failure  # not an I/O error but a bug: keep its traceback where it happened
    rank, text = failed
    raise UserError(f"rank {rank} of {run.world_size}: {text}" if run.world_size > 1 else text)


def write_checkpoint(run, rc, step: int) -> None:
    """The checkpoint at ``step``, written by every rank (DONE last, by rank 0), then -nk/-nm retention."""
    import time

    out, main, several = rc.output_dir, run.rank == 0, run.world_size > 1
    t0 = time.perf_counter()
    sharded = rc.zero_stage >= 1 and several
    failure = None
    try:
        _write_files(run, rc, step, sharded)
    except Exception as e:  # every rank must hear of it, or the others would wait at the next collective
        failure = e
    _agree(run, rc, step, failure)  # also the barrier: every file is in place before DONE
    if main:
        try:
            write_done(out, step, run.world_size, rc.zero_stage if several else 0, run.world_size if sharded else 1)
        except Exception as e:
            failure = e
    _agree(run, rc, step, failure)
    if main:
        deleted = prune(out, rc.checkpoints_keep, rc.major_checkpoint_every)
        run.runlog.event(step, "checkpoint", seconds=round(time.perf_counter() - t0, 3), deleted=deleted)
    run.console(f"wrote checkpoint at step {step} in {time.perf_counter() - t0:.2f} s")


def restore(run, rc, step: int) -> None:
    """Resume the run from the checkpoint at ``step``: exact parameters (where the state file keeps them),
    optimizer, RNG, loader position, outlier detectors and the loop's step."""
    path = state_file_for(rc.output_dir, step, run.rank, run.world_size, rc.zero_stage)
    meta, tensors = load_state(path)
    saved_bf16_params = meta["config"].get("bf16_params", 0)
    if saved_bf16_params != rc.bf16_params:  # the optimizer state holds the master copy, or does not
        raise UserError(f"cannot resume step {step} from {path}: it was written with --bf16-params "
                        f"{saved_bf16_params}, this run has --bf16-params {rc.bf16_params}; resume with "
                        f"--bf16-params {saved_bf16_params}")  # fmt: skip
    restore_params(run.raw_model, tensors, path)
    restore_buffers(run.raw_model, tensors, path)
    try:
        restore_optimizer(run.optimizer, meta, tensors)
    except (ValueError, KeyError) as e:  # e.g. a Muon checkpoint resumed with AdamW, or the reverse
        saved = meta["config"].get("optimizer") or meta["config"].get("recipe", "classic")
        raise UserError(f"cannot resume step {step} from {path}: its optimizer state ({saved}) does not fit "
                        f"this run's optimizer ({rc.optimizer}): {e}") from None  # fmt: skip
    restore_rng(tensors)
    run.train_batches.load_state_dict(meta["loader"])
    run.loss_detector.load_state_dict(meta["detectors"]["loss"])
    run.grad_detector.load_state_dict(meta["detectors"]["grad"])
    run.state.step = meta["step"]
    changed = changed_settings(meta["config"], rc)
    if meta.get("world_size") != run.world_size:
        changed.append(f"world size {meta.get('world_size')} -> {run.world_size}")
    if changed:
        run.console(f"warning: resuming with changed settings ({', '.join(changed)}): "
                    "losses will not equal an uninterrupted run's")  # fmt: skip
    run.console(f"resumed from checkpoint at step {step} ({path})")


def rollback(run, rc, step: int) -> int:
    """--on-max-skips rollback: reload the newest complete checkpoint in this process (model, optimizer,
    loader, detectors) and arrange for the loader to go past the batches of the skipped steps, so they
    are never replayed. Returns the step to go on from."""
    state, bad = run.state, run.state.skipped
    first_bad = bad[0][0]
    what = f"{len(bad)} updates in a row were skipped (steps {first_bad}..{step}, last: {bad[-1][1]})"
    if state.rollbacks >= rc.max_rollbacks:
        raise UserError(f"{what} after {state.rollbacks} rollback(s); stopping: check the train data near these "
                        "steps, lower -l, or raise --max-rollbacks")  # fmt: skip
    target = latest_usable_step(rc.output_dir, warn=run.console)
    if target is None:
        raise UserError(f"{what} and -o {rc.output_dir} holds no complete checkpoint to roll back to yet; "
                        "use a smaller -n, or resume with -y 1 and a lower -l")  # fmt: skip
    state.rollbacks += 1
    from gpt2train.formats.load import load_pretrained

    run.raw_model.load_state_dict(load_pretrained(model_path(rc.output_dir, target))[1])
    restore(run, rc, target)  # exact parameters (if kept in the state file), optimizer, loader, detectors, RNG
    # the checkpoint's loader has served the batches of steps < target; the bad ones still ahead are
    # steps max(target, first_bad)..step: drop them when the run gets there (now, if that is target)
    resume_at, count = max(target, first_bad), step - max(target, first_bad) + 1
    if resume_at == target:
        for _ in range(count):
            run.train_batches.next_step()
    else:
        state.drop_before[resume_at] = state.drop_before.get(resume_at, 0) + count
    run.runlog.trim_after(target)  # main.log reads as a run that never saw those batches
    run.runlog.event(target, "rollback", from_step=step, to_step=target, dropped_steps=[first_bad, step],
                     reasons=[r for _, r in bad], rollback=state.rollbacks)  # fmt: skip
    run.console(f"rollback {state.rollbacks}/{rc.max_rollbacks}: {what}; rolled back to the checkpoint at step "
                f"{target}, dropping the batches of steps {first_bad}..{step}")  # fmt: skip
    state.skips_in_a_row, state.skipped = 0, []
    return target
