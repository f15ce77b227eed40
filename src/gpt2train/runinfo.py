"""Reading a run directory while it trains: main.log, progress.jsonl, config.json and checkpoints.

``load_run`` parses what the trainer (ours or llm.c's) has written so far; ``run_status`` turns it
into the summary that ``gpt2train status`` prints. Both tolerate files that are being appended to:
a half-written last line is skipped, and a resumed run (main.log appended after a restart from an
earlier checkpoint) keeps only the entries written after the restart for the steps it redid.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from gpt2train.config import ModelConfig, preset
from gpt2train.errors import UserError
from gpt2train.rundir import checkpoint_files

MAIN_LOG = "main.log"
PROGRESS = "progress.jsonl"
CONFIG = "config.json"

# llm.c's main.log lines: "s:%d trl:%.4f" (+ " lr:%.6f norm:%.2f" in newer versions), "s:%d tel:%.4f",
# "s:%d eval:%.4f". Numbers may be nan/inf when a run diverges.
_LINE_RE = re.compile(r"^s:(\d+) (trl|tel|eval):(\S+)(.*)$")
_EXTRA_RE = re.compile(r"(\w+):(\S+)")
_KINDS = {"trl": "train", "tel": "val", "eval": "hellaswag"}


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _append(series: list[tuple], entry: tuple) -> None:
    """Append (step, ...), first dropping entries at or after ``step``: a resumed run redoes them."""
    step = entry[0]
    if series and series[-1][0] >= step:
        while series and series[-1][0] >= step:
            series.pop()
    series.append(entry)


def parse_main_log(path: Path) -> dict:
    """main.log -> {"train": [(step, loss, lr, norm)], "val": [(step, loss)], "hellaswag": [(step, acc)]}.

    ``lr`` and ``norm`` are None in llm.c's older logs. Lines of other kinds are ignored.
    """
    out: dict[str, list] = {"train": [], "val": [], "hellaswag": []}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise UserError(f"{path}: cannot read the log ({e.strerror})") from None
    for line in text.splitlines():
        m = _LINE_RE.match(line.strip())
        if not m:
            continue
        value = _float(m.group(3))
        if value is None:
            continue  # a line cut short while the trainer writes it
        step, kind = int(m.group(1)), _KINDS[m.group(2)]
        if kind == "train":
            extra = {k: _float(v) for k, v in _EXTRA_RE.findall(m.group(4))}
            _append(out["train"], (step, value, extra.get("lr"), extra.get("norm")))
        else:
            _append(out[kind], (step, value))
    return out


def parse_progress(path: Path) -> list[dict]:
    """progress.jsonl -> one dict per step (the latest record for each step after a resume).

    Lines that are not JSON objects with an integer ``step`` are skipped (a partial last line).
    """
    records: list[tuple] = []
    try:
        fh = open(path, errors="replace")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    with fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), int):
                _append(records, (rec["step"], rec))
    return [r for _, r in records]


@dataclass
class RunData:
    """Everything parsed from one run directory (or one bare log file)."""

    name: str
    path: Path
    log_path: Path | None = None
    progress_path: Path | None = None
    config: dict | None = None
    train: list = field(default_factory=list)  # (step, loss, lr, norm)
    val: list = field(default_factory=list)  # (step, loss)
    hellaswag: list = field(default_factory=list)  # (step, acc_norm)
    progress: list = field(default_factory=list)  # dicts from progress.jsonl

    @property
    def directory(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    def model_config(self) -> ModelConfig | None:
        """The run's model shape from config.json, if it says."""
        return model_from_config(self.config) if self.config else None

    def tokens_per_step(self) -> int | None:
        """Tokens per optimizer step (config.json's total_batch_size), if known."""
        if not self.config:
            return None
        d = self.config.get("total_batch_size")
        if isinstance(d, int) and d > 0:
            return d
        b, t, w = (self.config.get(k) for k in ("batch_size", "seq_len", "world_size"))
        if all(isinstance(v, int) and v > 0 for v in (b, t)):
            return b * t * (w if isinstance(w, int) and w > 0 else 1)
        return None

    def max_steps(self) -> int | None:
        for rec in reversed(self.progress):
            if isinstance(rec.get("max_steps"), int) and rec["max_steps"] > 0:
                return rec["max_steps"]
        m = (self.config or {}).get("max_steps")
        return m if isinstance(m, int) and m > 0 else None


def model_from_config(cfg: dict) -> ModelConfig | None:
    """ModelConfig from a config.json: top-level n_layer/n_embd/..., a nested model dict, or a preset name."""
    keys = ("n_layer", "n_head", "n_embd", "vocab_size", "max_seq_len", "padded_vocab_size")
    for source in (cfg, cfg.get("model_config"), cfg.get("model")):
        if isinstance(source, dict) and isinstance(source.get("n_layer"), int) and source.get("n_embd"):
            kw = {k: source[k] for k in keys if isinstance(source.get(k), int)}
            kw.setdefault("n_head", 1)
            try:
                return ModelConfig(**kw)
            except (UserError, TypeError):
                return None
    name = cfg.get("model")
    if isinstance(name, str):
        try:
            return preset(name)
        except UserError:
            return None
    return None


def _read_config(directory: Path) -> dict | None:
    path = directory / CONFIG
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a config being rewritten right now: run without it
    return cfg if isinstance(cfg, dict) else None


def load_run(path: str | os.PathLike) -> RunData:
    """Parse a run directory (main.log and/or progress.jsonl, config.json) or a bare log file.

    Raises UserError when the path is missing, holds no log, or the log has no llm.c lines.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such run directory or log file")
    if p.is_dir():
        log, prog = p / MAIN_LOG, p / PROGRESS
        log = log if log.is_file() else None
        prog = prog if prog.is_file() else None
        if log is None and prog is None:
            raise UserError(f"{p}: not a run directory (no {MAIN_LOG} or {PROGRESS} in it)")
        run = RunData(name=p.resolve().name, path=p, log_path=log, progress_path=prog, config=_read_config(p))
    else:
        is_jsonl = p.suffix == ".jsonl"
        name = p.parent.resolve().name if p.name in (MAIN_LOG, PROGRESS) else p.stem
        run = RunData(
            name=name,
            path=p,
            log_path=None if is_jsonl else p,
            progress_path=p if is_jsonl else None,
            config=_read_config(p.parent),
        )
    if run.log_path is not None:
        parsed = parse_main_log(run.log_path)
        run.train, run.val, run.hellaswag = parsed["train"], parsed["val"], parsed["hellaswag"]
    if run.progress_path is not None:
        run.progress = parse_progress(run.progress_path)
        if not run.train:  # no main.log (or an empty one): take the losses from progress.jsonl
            run.train = [(r["step"], r.get("loss"), r.get("lr"), r.get("norm")) for r in run.progress]
            run.train = [e for e in run.train if isinstance(e[1], (int, float))]
        if not run.val:
            run.val = [(r["step"], r["val_loss"]) for r in run.progress if "val_loss" in r]
    if not (run.train or run.val or run.hellaswag or run.progress):
        where = run.log_path or run.progress_path
        raise UserError(
            f"{where}: no training log lines in it (expected llm.c's 's:N trl:LOSS', 's:N tel:LOSS', "
            f"'s:N eval:ACC' or progress.jsonl records)"
        )
    return run


# ---------------------------------------------------------------------------------------------
# status


def list_checkpoints(directory: Path) -> list[dict]:
    """Checkpoints in a run dir by step: files present and whether the DONE marker makes it complete."""
    out = []
    for step, names in sorted(checkpoint_files(directory).items()):
        size = 0
        for name in names:
            try:
                size += (directory / name).stat().st_size
            except OSError:
                pass  # deleted by checkpoint rotation between listdir and stat
        out.append({
            "step": step,
            "complete": f"DONE_{step:08d}" in names,
            "model_file": any(n.startswith("model_") for n in names),
            "state_files": sum(n.startswith("state_") for n in names),
            "bytes": size,
        })  # fmt: skip
    return out


def _step_times(progress: list[dict]) -> list[float]:
    """Seconds between consecutive progress records, dropping the gaps where the run was stopped."""
    times = [(r["step"], r["time"]) for r in progress if isinstance(r.get("time"), (int, float))]
    gaps = [t2 - t1 for (s1, t1), (s2, t2) in zip(times, times[1:]) if s2 > s1 and t2 >= t1]
    if not gaps:
        return []
    # a gap far longer than a normal step (a restart, a long stall) is not training time
    limit = max(600.0, 20 * statistics.median(gaps))
    return [g for g in gaps if g <= limit]


def run_status(path: str | os.PathLike, now: float | None = None) -> dict:
    """Summary of a run directory: progress, losses, speed, elapsed and ETA, checkpoints, state.

    Timing comes from progress.jsonl when present; otherwise it is estimated from main.log's
    modification time and config.json's (the run's start), and marked ``approximate``.
    """
    run = load_run(path)
    now = time.time() if now is None else now
    directory = run.directory
    last_train = run.train[-1] if run.train else None
    last_prog = run.progress[-1] if run.progress else None
    # the last trained step (a val-only record after the last step does not count)
    steps = [e[0] for e in run.train] + [r["step"] for r in run.progress if r.get("loss") is not None]
    last_step = max(steps) if steps else None
    max_steps = run.max_steps()
    tps = run.tokens_per_step()

    tok_s = ms = mfu = elapsed = sec_per_step = last_update = None
    approximate = False
    if run.progress:
        recent = run.progress[-20:]
        vals = [r["tok_s"] for r in recent if isinstance(r.get("tok_s"), (int, float))]
        tok_s = statistics.median(vals) if vals else None
        vals = [r["ms"] for r in recent if isinstance(r.get("ms"), (int, float))]
        ms = statistics.median(vals) if vals else None
        vals = [r["mfu"] for r in recent if isinstance(r.get("mfu"), (int, float))]
        mfu = statistics.median(vals) if vals else None
        gaps = _step_times(run.progress)
        first_ms = run.progress[0].get("ms")
        if gaps or isinstance(first_ms, (int, float)):
            elapsed = sum(gaps) + (first_ms / 1000 if isinstance(first_ms, (int, float)) else 0.0)
        if gaps:
            # mean, not median: val, sampling and checkpoint pauses belong in the ETA
            sec_per_step = sum(gaps[-50:]) / len(gaps[-50:])
        elif ms:
            sec_per_step = ms / 1000
        if isinstance(last_prog.get("time"), (int, float)):
            last_update = last_prog["time"]
    if last_update is None and run.log_path is not None:
        last_update = run.log_path.stat().st_mtime
    if elapsed is None and run.log_path is not None and run.train:
        start = (directory / CONFIG).stat().st_mtime if (directory / CONFIG).is_file() else None
        done_steps = run.train[-1][0] + 1
        if start is not None and last_update > start:
            approximate = True
            elapsed = last_update - start
            sec_per_step = elapsed / done_steps
            if tps:
                tok_s = tps * done_steps / elapsed
    if tok_s is None and tps and sec_per_step:
        tok_s = tps / sec_per_step

    finished = max_steps is not None and last_step is not None and last_step + 1 >= max_steps
    eta = None
    if not finished and max_steps is not None and last_step is not None and sec_per_step:
        eta = (max_steps - last_step - 1) * sec_per_step
    age = None if last_update is None else max(0.0, now - last_update)
    if finished:
        state = "finished"
    elif age is not None and age < max(300.0, 10 * (sec_per_step or 0)):
        state = "running"
    else:
        state = "stopped"

    def last(series):
        return {"step": series[-1][0], "value": series[-1][1]} if series else None

    return {
        "run": run.name,
        "path": str(directory),
        "state": state,
        "last_step": last_step,
        "max_steps": max_steps,
        "train_loss": None if last_train is None else {"step": last_train[0], "value": last_train[1]},
        "lr": None if last_train is None else last_train[2],
        "norm": None if last_train is None else last_train[3],
        "val_loss": last(run.val),
        "hellaswag": last(run.hellaswag),
        "tokens_per_step": tps,
        "tok_s": tok_s,
        "ms_per_step": ms,
        "mfu": mfu,
        "elapsed_s": elapsed,
        "eta_s": eta,
        "seconds_since_update": age,
        "timing_approximate": approximate,
        "checkpoints": list_checkpoints(directory),
    }


def to_jsonable(obj):
    """``obj`` with NaN/inf floats replaced by None, so that ``json.dumps`` gives strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h:02d}h{m:02d}m"
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_status(st: dict) -> str:
    """The human-readable report of ``run_status``."""
    lines = [f"run          {st['run']} ({st['path']}): {st['state']}"]
    if st["seconds_since_update"] is not None:
        lines[0] += f", last update {_duration(st['seconds_since_update'])} ago"
    if st["last_step"] is not None:
        total = st["max_steps"]
        pct = f" ({100 * (st['last_step'] + 1) / total:.1f}%)" if total else ""
        lines.append(f"step         {st['last_step']} / {total if total else '?'}{pct}")
    for key, label, fmt in (
        ("train_loss", "train loss", "{:.4f}"),
        ("val_loss", "val loss", "{:.4f}"),
        ("hellaswag", "hellaswag", "{:.4f}"),
    ):
        v = st[key]
        if v is not None:
            lines.append(f"{label:<12} {fmt.format(v['value'])} (step {v['step']})")
    speed = []
    if st["tok_s"] is not None:
        speed.append(f"{st['tok_s']:,.0f} tok/s")
    if st["ms_per_step"] is not None:
        speed.append(f"{st['ms_per_step']:.0f} ms/step")
    if st["mfu"] is not None:
        speed.append(f"MFU {100 * st['mfu']:.1f}%")
    if speed:
        lines.append("speed        " + ", ".join(speed))
    approx = " (approximate: from file times)" if st["timing_approximate"] else ""
    eta = "done" if st["state"] == "finished" else _duration(st["eta_s"])
    lines.append(f"elapsed      {_duration(st['elapsed_s'])}, ETA {eta}{approx}")
    cks = st["checkpoints"]
    if cks:
        parts = [f"{c['step']}" + ("" if c["complete"] else " (incomplete: no DONE)") for c in cks]
        lines.append("checkpoints  " + ", ".join(parts))
    else:
        lines.append("checkpoints  none")
    return "\n".join(lines)
