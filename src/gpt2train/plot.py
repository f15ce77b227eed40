"""Loss curves of one or more runs, as llm.c's notebook draws them: val loss and HellaSwag vs step.

Each panel gets horizontal lines for the OpenAI checkpoints of the run's size (chosen from the run's
config.json, or ``model=`` for a bare llm.c main.log), so a run can be read against GPT-2 / GPT-3.
Optional panels: train loss (raw and smoothed), learning rate, throughput (from progress.jsonl).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpt2train.config import GPT2_DEPTHS, preset
from gpt2train.errors import UserError
from gpt2train.runinfo import RunData, load_run


@dataclass(frozen=True)
class Baseline:
    """Scores of the OpenAI checkpoints of one GPT-2 size."""

    label: str
    val_loss: float  # GPT-2 checkpoint's loss on the FineWeb val split (llm.c's figure)
    hellaswag_gpt2: float  # acc_norm
    hellaswag_gpt3: float  # the GPT-3 paper's model of the same size


# keyed by depth: d12 = 124M, d24 = 350M, d36 = 774M, d48 = 1558M
BASELINES = {
    12: Baseline("124M", 3.4250, 0.2945, 0.337),
    24: Baseline("350M", 3.0831, 0.3752, 0.436),
    36: Baseline("774M", 3.0006, 0.4320, 0.510),
    48: Baseline("1558M", 2.8313, 0.4889, 0.547),
}

PANELS = ("val", "hellaswag", "train", "lr", "throughput")
DEFAULT_PANELS = ("val", "hellaswag")
FORMATS = (".png", ".svg", ".pdf")


def baseline_for(n_layer: int, n_embd: int) -> Baseline | None:
    """The GPT-2 size with exactly this shape, or None (no baseline for other shapes)."""
    if n_layer in BASELINES and GPT2_DEPTHS.get(n_layer, (None,))[0] == n_embd:
        return BASELINES[n_layer]
    return None


def _run_baseline(run: RunData, model: str | None) -> Baseline | None:
    cfg = preset(model) if model else run.model_config()
    if model and cfg is None:
        raise UserError(f"--model {model}: expected a preset name such as d12 or d48")
    return baseline_for(cfg.n_layer, cfg.n_embd) if cfg else None


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points (shorter at the start); window <= 1: unchanged."""
    if window <= 1:
        return list(values)
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def parse_panels(text: str) -> tuple[str, ...]:
    """``val,hellaswag,train`` -> a tuple of panel names, or a UserError naming --panels."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in names if p not in PANELS]
    if bad or not names:
        raise UserError(f"--panels {text!r}: choose from {','.join(PANELS)}")
    return names


def plot_runs(
    paths: list[str],
    output: str,
    *,
    x: str = "step",
    smooth_window: int = 0,
    panels: tuple[str, ...] = DEFAULT_PANELS,
    model: str | None = None,
    total_batch_size: int | None = None,
) -> Path:
    """Draw the chosen panels for every run in ``paths`` (run dirs or log files) into ``output``.

    ``x`` is ``step`` or ``tokens`` (step * tokens per step, from config.json or ``total_batch_size``).
    ``model`` (e.g. ``d12``) picks the baselines for runs whose config.json is missing.
    Returns the path written.
    """
    out = Path(output)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"-o {output}: the file name must end in {', '.join(FORMATS)}")
    if not out.parent.is_dir():
        raise UserError(f"-o {output}: directory {out.parent} does not exist")
    if x not in ("step", "tokens"):
        raise UserError(f"--x {x}: must be step or tokens")
    for p in panels:
        if p not in PANELS:
            raise UserError(f"--panels: unknown panel {p!r}; choose from {','.join(PANELS)}")
    if not paths:
        raise UserError("plot: give at least one run directory or log file")
    runs = [load_run(p) for p in paths]

    scales = []
    for run in runs:
        if x == "tokens":
            tps = total_batch_size or run.tokens_per_step()
            if not tps:
                raise UserError(
                    f"{run.path}: tokens per step unknown (no config.json with total_batch_size); "
                    f"pass -d/--total-batch-size or use --x step"
                )
            scales.append(tps)
        else:
            scales.append(1)
    baselines = {}
    for run in runs:
        b = _run_baseline(run, model)
        if b is not None:
            baselines[b.label] = b

    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    ncols = min(2, len(panels))  # the notebook's two panels side by side; more go on further rows
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(8 * ncols, 5 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    xlabel = "step" if x == "step" else "tokens"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes.flat, panels):
        has_data = False
        for i, (run, scale) in enumerate(zip(runs, scales)):
            color = colors[i % len(colors)]
            xs, ys = _series(run, panel)
            if not xs:
                continue
            has_data = True
            xs = [s * scale for s in xs]
            if panel == "train" and smooth_window > 1:
                ax.plot(xs, ys, color=color, alpha=0.25, linewidth=0.8)
                ax.plot(xs, smooth(ys, smooth_window), color=color, label=f"{run.name} (avg {smooth_window})")
            else:
                ax.plot(xs, ys, color=color, label=run.name)
        _draw_baselines(ax, panel, baselines.values())
        if not has_data:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
        ax.set_xlabel(xlabel)
        ax.set_title(_TITLES[panel])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=100)
    except OSError as e:
        raise UserError(f"-o {output}: cannot write ({e.strerror})") from None
    finally:
        plt.close(fig)
    if not out.is_file() or os.path.getsize(out) == 0:
        raise UserError(f"-o {output}: nothing was written")
    return out


_TITLES = {
    "val": "val loss",
    "hellaswag": "HellaSwag acc_norm",
    "train": "train loss",
    "lr": "learning rate",
    "throughput": "throughput (tok/s)",
}


def _series(run: RunData, panel: str) -> tuple[list, list]:
    """(steps, values) of one panel for one run; NaN/inf points are dropped."""
    if panel == "val":
        pts = [(s, v) for s, v in run.val]
    elif panel == "hellaswag":
        pts = [(s, v) for s, v in run.hellaswag]
    elif panel == "train":
        pts = [(e[0], e[1]) for e in run.train]
    elif panel == "lr":
        pts = [(e[0], e[2]) for e in run.train if e[2] is not None]
        if not pts:
            pts = [(r["step"], r.get("lr")) for r in run.progress]
    else:
        pts = [(r["step"], r.get("tok_s")) for r in run.progress]
    pts = [(s, float(v)) for s, v in pts if isinstance(v, (int, float)) and abs(v) != float("inf") and v == v]
    return [p[0] for p in pts], [p[1] for p in pts]


def _draw_baselines(ax, panel: str, baselines) -> None:
    for b in baselines:
        if panel == "val":
            ax.axhline(b.val_loss, color="r", linestyle="--", linewidth=1, label=f"OpenAI GPT-2 ({b.label})")
        elif panel == "hellaswag":
            ax.axhline(b.hellaswag_gpt2, color="r", linestyle="--", linewidth=1, label=f"OpenAI GPT-2 ({b.label})")
            ax.axhline(b.hellaswag_gpt3, color="g", linestyle="--", linewidth=1, label=f"OpenAI GPT-3 ({b.label})")
