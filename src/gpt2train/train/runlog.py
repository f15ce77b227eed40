"""What a run writes about itself: llm.c's main.log (byte-compatible), progress.jsonl, console lines.

main.log holds only llm.c's line kinds, so llm.c's notebook and ours read it:
``s:%d trl:%.4f lr:%.6f norm:%.2f``, ``s:%d tel:%.4f`` (val loss), ``s:%d eval:%.4f`` (HellaSwag).
Anything more goes to progress.jsonl, one JSON object per line.
"""

from __future__ import annotations

import json
import os
import re
import time

_LINE_RE = re.compile(r"^s:(\d+) (trl|tel|eval):")


class RunLog:
    """Appends to main.log and progress.jsonl in ``output_dir`` (rank 0 only; a no-op without a dir)."""

    def __init__(self, output_dir: str | None, active: bool = True):
        self.active = bool(output_dir) and active
        self.main_log = os.path.join(output_dir, "main.log") if output_dir else None
        self.progress = os.path.join(output_dir, "progress.jsonl") if output_dir else None

    def start_fresh(self) -> None:
        """A new run wipes main.log and progress.jsonl, as llm.c does without -y 1."""
        if self.active:
            for path in (self.main_log, self.progress):
                open(path, "w").close()

    def trim_after(self, step: int) -> None:
        """On resume from the checkpoint after ``step`` updates, drop lines a killed run wrote past it.

        Kept: everything before ``step`` and the tel/eval lines of ``step`` itself (they describe the
        checkpointed model). So the log continues exactly as an uninterrupted run's would.
        """
        if not self.active:
            return
        for path, parse in ((self.main_log, _main_log_key), (self.progress, _progress_key)):
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
            # a last line without its newline was cut short by a crash: drop it, the resumed step rewrites it
            whole = lines[:-1] if lines and not lines[-1].endswith("\n") else lines
            kept = [ln for ln in whole if _keep(parse(ln), step)]
            if kept != lines:
                tmp = path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(kept)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)

    def _append(self, path: str, text: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)

    def train(self, step: int, loss: float, lr: float, norm: float, extra: dict) -> None:
        if self.active:
            self._append(self.main_log, f"s:{step} trl:{loss:.4f} lr:{lr:.6f} norm:{norm:.2f}\n")
            rec = {
                "step": step,
                "kind": "train",
                "loss": loss,
                "lr": lr,
                "norm": norm,
                "time": time.time(),
                **extra,
            }
            self._append(self.progress, json.dumps(rec) + "\n")

    def val(self, step: int, val_loss: float) -> None:
        if self.active:
            self._append(self.main_log, f"s:{step} tel:{val_loss:.4f}\n")
            rec = {"step": step, "kind": "val", "val_loss": val_loss, "time": time.time()}
            self._append(self.progress, json.dumps(rec) + "\n")

    def eval(self, step: int, acc_norm: float, extra: dict | None = None) -> None:
        if self.active:
            self._append(self.main_log, f"s:{step} eval:{acc_norm:.4f}\n")
            rec = {
                "step": step,
                "kind": "eval",
                "hellaswag_acc_norm": acc_norm,
                "time": time.time(),
                **(extra or {}),
            }
            self._append(self.progress, json.dumps(rec) + "\n")

    def event(self, step: int, kind: str, **fields) -> None:
        """Anything else worth keeping (skipped updates, epoch ends, checkpoints) goes to progress.jsonl."""
        if self.active:
            self._append(self.progress, json.dumps({"step": step, "kind": kind, "time": time.time(), **fields}) + "\n")


def _main_log_key(line: str):
    m = _LINE_RE.match(line)
    return (int(m.group(1)), m.group(2)) if m else None


def _progress_key(line: str):
    try:
        rec = json.loads(line)
        return int(rec["step"]), rec.get("kind", "train").replace("train", "trl")
    except (ValueError, KeyError, TypeError):
        return None


def _keep(key, step: int) -> bool:
    if key is None:
        return True
    s, kind = key
    return s < step or (s == step and kind != "trl")


def format_duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
