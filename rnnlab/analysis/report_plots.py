"""Report plots: matplotlib's object API on an Agg canvas (no pyplot state, no display needed)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnlab.analysis.report_runs import Run, mean_over_seeds, read_run, series, to_float

SPLITS = ("train", "eval")


def _figure(width: float = 6.4, height: float = 4.0):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, ax, path: str) -> str:
    handles = ax.get_legend_handles_labels()[0]
    if len(handles) > 6:  # many curves: the legend goes to the right of the axes, not over the data
        fig.set_figwidth(fig.get_figwidth() + 3.5)
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    elif handles:
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_loss_curves(
    runs: Sequence[Run | str], path: str, *, key: str = "loss", splits: Sequence[str] = SPLITS
) -> str | None:
    """``key`` against training step for every run and split: mean over seeds, shaded ± std.

    Log-scale y when every value is positive. Returns ``path``, or None (nothing written) when no run has
    ``key``.
    """
    runs = [read_run(r) if isinstance(r, str) else r for r in runs]
    fig, ax = _figure()
    positive, plotted = True, False
    for i, run in enumerate(runs):
        color = f"C{i % 10}"  # one colour per run; train solid, eval dashed
        for split in splits:
            steps, mean, std = mean_over_seeds(series(run, key, split))
            if not len(steps):
                continue
            label = run.name if split == "train" or not series(run, key, "train") else None
            ax.plot(steps, mean, "-" if split == "train" else "--", color=color, label=label)
            ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
            finite = mean[np.isfinite(mean)]
            positive = positive and bool(np.all(finite > 0))
            plotted = True
    if not plotted:
        return None
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(key)
    ax.set_title(f"{key}: train solid, eval dashed (mean ± std over seeds)")
    return _save(fig, ax, path)


def plot_grad_norm_vs_distance(
    curves: Mapping[str, Sequence[float]], path: str, *, fit: bool = True, ylabel: str = "||dL/dh_t||"
) -> str | None:
    """Gradient norm against distance T - t (log-scale y): the vanishing-gradient picture.

    Args:
      curves: ``{label: [T] norms in time order}`` (the last entry is distance 0), e.g. ``grad_norm_t``.
      path: the PNG to write.
      fit: add the fitted per-step factor (least squares of log norm against distance) to each label.

    Returns ``path``, or None when no curve has a positive finite value.
    """
    fig, ax = _figure()
    plotted = False
    for label, values in curves.items():
        y = np.array([to_float(v) if to_float(v) is not None else np.nan for v in values], float)
        ok = np.isfinite(y) & (y > 0)
        if not ok.any():
            continue
        distance = np.arange(len(y) - 1, -1, -1)
        text = label
        if fit and ok.sum() >= 2:
            slope = np.polyfit(distance[ok], np.log(y[ok]), 1)[0]
            text = f"{label} (x{math.exp(slope):.3g}/step)"
        ax.plot(distance[ok], y[ok], label=text)
        plotted = True
    if not plotted:
        return None
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (steps back from the loss)")
    ax.set_ylabel(ylabel)
    ax.set_title("gradient norm vs distance")
    return _save(fig, ax, path)


def gate_saturation_curves(runs: Sequence[Run]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{'<run label> gate <g>': (steps, saturated fraction)}`` for every ``gate_<g>_saturated`` key."""
    out = {}
    for run in runs:
        keys = sorted({k for rec in run.records for k in rec if re.fullmatch(r"gate_.+_saturated", k)})
        for key in keys:
            steps, mean, _ = mean_over_seeds(series(run, key))
            if len(steps):
                out[f"{run.label()} gate {key[5:-10]}"] = (steps, mean)
    return out


def plot_gate_saturation(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str
) -> str | None:
    """Saturated fraction (sigma < 0.05 or > 0.95) of each gate against training step.

    ``curves``: ``{label: (steps, fractions)}`` (see :func:`gate_saturation_curves`). Returns ``path`` or
    None.
    """
    fig, ax = _figure()
    plotted = False
    for label, (steps, values) in curves.items():
        if len(steps):
            ax.plot(steps, values, marker=".", label=label)
            plotted = True
    if not plotted:
        return None
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel("saturated fraction")
    ax.set_title("gate saturation (mean over seeds)")
    return _save(fig, ax, path)
