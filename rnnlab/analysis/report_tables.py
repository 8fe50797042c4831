"""Report tables: mean ± std over seeds in Markdown, and the final metrics of runs as rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rnnlab.analysis.report_runs import Run, series, to_float

TASK_METRICS = (
    "loss",
    "mse",
    "mse_over_baseline",
    "accuracy",
    "bits_per_char",
    "bits_per_word",
    "perplexity",
)
# metric prefixes in metrics.jsonl: 'test' once at the end (the selected checkpoint), 'eval' the validation
# split during training, 'train' the train batches
SPLITS = ("test", "eval", "train")
# The metric a run is summarised by (the experiment runner's status table, unless ``train.best_metric`` is
# set; a factorial grid's main effects): the first of these that the run reports (task scores before losses).
MAIN_METRICS = (
    "entity_f1",
    "exact_match",
    "label_error_rate",
    "bits_per_char",
    "perplexity",
    "accuracy",
    "mse_over_baseline",
    "mse",
    "loss",
)
DIAGNOSTIC_METRICS = ("decay_rate", "jac_decay_rate", "spectral_radius", "forget_time_constant_mean")


def _fmt(values: list[float], digits: int) -> str:
    finite = [v for v in values if math.isfinite(v)]
    bad = len(values) - len(finite)
    if not finite:
        return "–" if not values else f"non-finite ({bad})"
    mean = float(np.mean(finite))
    text = f"{mean:.{digits}g}"
    if len(finite) > 1:
        text += f" ± {float(np.std(finite, ddof=1)):.2g}"
    if bad:
        text += f" ({bad} non-finite)"
    return text


def results_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    group_by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    digits: int = 3,
) -> str:
    """A Markdown table of mean ± std (sample std over seeds) per group.

    Args:
      rows: one dict per run and seed, e.g. ``{'cell': 'lstm', 'T': 100, 'seed': 0, 'eval mse': 0.01}``.
      group_by: the columns identifying a group; default: every key whose values are not floats
        (strings, ints, bools), except ``seed`` and ``step``.
      metrics: the value columns; default: every key with float values.
      digits: significant digits of the mean.

    Returns the table (a column ``n`` counts the rows of each group; a group with one row shows no ± ;
    non-finite values are left out of the mean and counted).
    """
    if not rows:
        return "_no results_\n"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    floats = {k for k in keys if any(isinstance(r.get(k), (float, np.floating)) for r in rows)}
    if group_by is None:
        group_by = [k for k in keys if k not in floats and k not in ("seed", "step")]
    if metrics is None:
        metrics = [k for k in keys if k in floats and k not in group_by]
    groups: dict[tuple, list[Mapping]] = {}
    for r in rows:
        groups.setdefault(tuple(str(r.get(k, "")) for k in group_by), []).append(r)
    header = [*group_by, "n", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for gkey, members in groups.items():
        cells = list(gkey) + [str(len(members))]
        for m in metrics:
            vals = [to_float(r.get(m)) for r in members]
            cells.append(_fmt([v for v in vals if v is not None], digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def final_rows(
    runs: Sequence[Run],
    metrics: Sequence[str] = TASK_METRICS,
    diagnostics: Sequence[str] = DIAGNOSTIC_METRICS,
) -> list[dict[str, Any]]:
    """One row per run and seed: run, cell, task, length (from the config) and the last logged value of each
    metric per split (``'test accuracy'``, ``'eval accuracy'`` (validation), ``'train loss'``) and of each
    diagnostic (``'decay_rate'``)."""
    rows = []
    for run in runs:
        params = run.config_get("task.params", {}) or {}
        base = {
            "run": run.name,
            "cell": run.config_get("model.cell", ""),
            "task": run.config_get("task.name", ""),
        }
        length = next((params[k] for k in ("length", "seq_len", "T", "delay") if k in params), None)
        if length is not None:
            base["T"] = str(length)
        seeds = sorted({rec.get("seed", 0) for rec in run.records}, key=str)
        for seed in seeds:
            row = dict(base, seed=seed)
            for split in SPLITS:
                for m in metrics:
                    per = series(run, m, split).get(seed)
                    if per is not None and len(per[1]):
                        row[f"{split} {m}"] = float(per[1][-1])
            for d in diagnostics:
                per = series(run, d).get(seed)
                if per is not None and len(per[1]):
                    row[d] = float(per[1][-1])
            if len(row) > len(base) + 1:
                rows.append(row)
    return rows


def factor_levels(run_name: str) -> dict[str, str] | None:
    """``{'clip': 'none', 'opt': 'sgd'}`` from a grid point named ``'clip=none,opt=sgd'``; None for any other
    name."""
    pairs = [part.split("=", 1) for part in run_name.split(",")]
    if not all(len(p) == 2 and p[0] and p[1] for p in pairs):
        return None
    return dict(pairs)


def marginals_table(rows: Sequence[Mapping[str, Any]], metric: str, digits: int = 3) -> str | None:
    """Main effects of a factorial grid: for each factor and level, the mean ± std over the grid points at
    that level of each point's mean over seeds of ``metric``, with the number of points and the best point
    (lowest value, or highest for accuracy-like metrics). ``rows``: ``final_rows`` of runs named
    ``'factor=level,...'``. None unless every run is named so, with >= 2 factors and a factor of >= 2 levels.
    """
    per_point: dict[str, list[float]] = {}
    for r in rows:
        value = to_float(r.get(metric))
        if value is not None and math.isfinite(value):
            per_point.setdefault(str(r["run"]), []).append(value)
    levels = {name: factor_levels(name) for name in per_point}
    if not levels or any(v is None for v in levels.values()):
        return None
    factors = list(dict.fromkeys(f for v in levels.values() for f in v))
    if len(factors) < 2 or all(len({v.get(f) for v in levels.values()}) < 2 for f in factors):
        return None
    means = {name: float(np.mean(vals)) for name, vals in per_point.items()}
    higher_is_better = any(k in metric for k in ("accuracy", "f1", "exact_match"))
    pick = max if higher_is_better else min
    lines = [
        f"| factor | level | points | {metric} (mean ± std over points) | best point |",
        "|---|---|---|---|---|",
    ]
    for f in factors:
        for level in dict.fromkeys(v[f] for v in levels.values() if f in v):
            names = [n for n, v in levels.items() if v.get(f) == level]
            best = pick(names, key=means.__getitem__)
            lines.append(
                f"| {f} | {level} | {len(names)} | {_fmt([means[n] for n in names], digits)} | "
                f"{best} ({means[best]:.{digits}g}) |"
            )
    return "\n".join(lines) + "\n"
