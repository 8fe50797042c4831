"""Reports: tables and plots from run directories (``rnnlab report RUN_DIR... --out DIR``).

A run directory holds ``config.json`` (the resolved config) and ``metrics.jsonl``: one JSON object per line with
``step``, optional ``seed``, and values either prefixed by their split (``train/loss``, ``eval/accuracy``: what
``rnnlab.train`` writes) or unprefixed with an optional ``split`` key (``{"split": "eval", "loss": ...}``);
diagnostics (``rnnlab.diagnostics.record``) are unprefixed: ``grad_norm_t`` (a list over t), ``decay_rate``,
``gate_<g>_saturated``... The reader is tolerant: missing files, keys, malformed lines and ``"nan"`` strings are
skipped, never fatal.

``main(run_dirs, out_dir)`` writes ``report.md`` with PNG plots (matplotlib's Agg canvas, no display), a table of
final metrics (mean ± std over seeds) and a "Published results" section to compare against.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

REPORT_FILE = "report.md"
SPLITS = ("train", "eval")
TASK_METRICS = ("loss", "mse", "mse_over_baseline", "accuracy", "bits_per_char", "perplexity")
DIAGNOSTIC_METRICS = ("decay_rate", "jac_decay_rate", "spectral_radius", "forget_time_constant_mean")

#: (citation, finding): what the literature reports, stated qualitatively where exact numbers are not certain.
PUBLISHED = (
    (
        "Hochreiter & Schmidhuber (1997), *Long Short-Term Memory*",
        (
            "Introduced the LSTM: a memory cell with a self-connection of weight 1 (the constant error carousel) "
            "guarded by multiplicative input and output gates, so error can flow back over long lags without "
            "vanishing. They report learning tasks with minimal time lags of more than 1000 steps that plain "
            "recurrent nets trained by BPTT or RTRL could not learn. (The forget gate came later, Gers et al. 2000.)"
        ),
    ),
    (
        "Pascanu, Mikolov & Bengio (2013), *On the difficulty of training recurrent neural networks*",
        (
            "Analysed vanishing and exploding gradients: for h_t = W act(h_{t-1}) + ... with |act'| <= gamma, "
            "sigma_max(W_hh) < 1/gamma (gamma = 1 for tanh, 1/4 for the sigmoid) is sufficient for the gradients "
            "to vanish, and sigma_max > 1/gamma is necessary for them to explode. Proposed clipping the gradient "
            "norm against explosion and a regulariser that keeps the backpropagated norm from shrinking."
        ),
    ),
    (
        "Le, Jaitly & Hinton (2015), *A simple way to initialize recurrent networks of rectified linear units*",
        (
            "The IRNN (ReLU units, recurrent weights initialised to the identity, zero biases) was reported to solve "
            "the adding problem for sequence lengths up to 400, comparable to their LSTM baseline, while their "
            "tanh RNN struggled as the sequences got longer; on pixel-by-pixel MNIST it was comparable to or "
            "better than the LSTM."
        ),
    ),
    (
        "Arjovsky, Shah & Bengio (2016), *Unitary evolution recurrent neural networks*",
        (
            "A recurrent matrix kept unitary (all eigenvalues of modulus 1) neither shrinks nor grows the "
            "backpropagated signal. The uRNN solved the adding problem for T up to 750; on the copy-memory "
            "problem it learned long delays while their LSTM, within the training budget of the paper, stayed at "
            "the memoryless baseline for delays beyond roughly T = 100."
        ),
    ),
    (
        "Tallec & Ollivier (2018), *Can recurrent neural networks warp time?*",
        (
            "Derived gating from invariance to time warping: the forget gate sets a characteristic forgetting time "
            "of about 1/(1 - f) steps. Proposed chrono initialisation (b_f ~ log U[1, T_max - 1], b_i = -b_f) so "
            "the initial time constants cover the expected dependency range, and reported that it speeds up "
            "learning long-term dependencies (e.g. copy and adding tasks) compared with the standard initialisation."
        ),
    ),
)


# ------------------------------------------------------------------------------------------------------------
# Reading runs


@dataclasses.dataclass
class Run:
    """One run directory: ``name`` (its base name), ``config`` (``{}`` if absent), ``records`` (dicts)."""

    path: str
    name: str
    config: dict
    records: list[dict]

    def config_get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def label(self) -> str:
        cell = self.config_get("model.cell")
        task = self.config_get("task.name")
        params = self.config_get("task.params", {}) or {}
        length = next((params[k] for k in ("length", "seq_len", "T", "delay") if k in params), None)
        bits = [b for b in (cell, task, None if length is None else f"T={length}") if b is not None]
        return f"{self.name} ({' '.join(map(str, bits))})" if bits else self.name


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _read_jsonl(path: str) -> list[dict]:
    records = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a half-written last line of a killed run, a stray message...
                if isinstance(rec, dict):
                    records.append(rec)
    except OSError:
        pass
    return records


def load_run(run_dir: str) -> Run:
    """Read ``config.json`` and ``metrics.jsonl`` of ``run_dir`` (either may be missing)."""
    run_dir = os.path.normpath(run_dir)
    return Run(
        run_dir,
        os.path.basename(run_dir),
        _read_json(os.path.join(run_dir, "config.json")),
        _read_jsonl(os.path.join(run_dir, "metrics.jsonl")),
    )


def load_runs(run_dirs: Iterable[str]) -> list[Run]:
    return [load_run(d) for d in run_dirs]


def to_float(value: Any) -> float | None:
    """A number (``"nan"``/``"inf"`` strings included) as float; None for anything else (bools included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def metric_value(record: Mapping[str, Any], key: str, split: str | None = None) -> Any:
    """``record``'s value of ``key`` in ``split`` (``'train/loss'``, or ``'loss'`` with ``split: 'train'``;
    unsplit records count as train); ``split=None``: the bare key. None when absent."""
    if split is None:
        return record.get(key)
    if f"{split}/{key}" in record:
        return record[f"{split}/{key}"]
    if key in record and record.get("split", "train") == split:
        return record[key]
    return None


def series(run: Run, key: str, split: str | None = None) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
    """``{seed: (steps [N], values [N])}`` of a scalar metric (non-numbers skipped; steps sorted, last wins)."""
    by_seed: dict[Any, dict[int, float]] = {}
    for rec in run.records:
        v = to_float(metric_value(rec, key, split))
        step = to_float(rec.get("step"))
        if v is None or step is None:
            continue
        by_seed.setdefault(rec.get("seed", 0), {})[int(step)] = v
    return {seed: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for seed, d in by_seed.items()}


def mean_over_seeds(per_seed: Mapping[Any, tuple[np.ndarray, np.ndarray]]):
    """``(steps, mean, std)`` over seeds at the steps every seed logged (nan-aware)."""
    if not per_seed:
        return np.array([]), np.array([]), np.array([])
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in per_seed.values())))
    if not common:
        return np.array([]), np.array([]), np.array([])
    stacked = np.stack([v[np.searchsorted(s, common)] for s, v in per_seed.values()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.array(common), np.nanmean(stacked, 0), np.nanstd(stacked, 0)


def last_list(run: Run, key: str) -> list[float] | None:
    """The per-seed last value of a list-valued key (e.g. ``grad_norm_t``), averaged over seeds elementwise
    (lists of different lengths are right-aligned: the last entry is distance 0)."""
    last: dict[Any, tuple[int, list]] = {}
    for rec in run.records:
        v = rec.get(key)
        if isinstance(v, list) and v:
            step = to_float(rec.get("step")) or 0.0
            seed = rec.get("seed", 0)
            if seed not in last or step >= last[seed][0]:
                last[seed] = (step, v)
    if not last:
        return None
    n = min(len(v) for _, v in last.values())
    rows = np.array(
        [[to_float(x) if to_float(x) is not None else np.nan for x in v[-n:]] for _, v in last.values()],
        dtype=float,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(rows, 0).tolist()


# ------------------------------------------------------------------------------------------------------------
# Plots (matplotlib's object API on an Agg canvas: no pyplot state, no display needed)


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

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
    runs = [load_run(r) if isinstance(r, str) else r for r in runs]
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

    ``curves``: ``{label: (steps, fractions)}`` (see :func:`gate_saturation_curves`). Returns ``path`` or None.
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


# ------------------------------------------------------------------------------------------------------------
# Tables


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
    metric per split (``'eval accuracy'``, ``'train loss'``) and of each diagnostic (``'decay_rate'``)."""
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
            for split in ("eval", "train"):
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


# ------------------------------------------------------------------------------------------------------------
# The report


@dataclasses.dataclass
class Section:
    """A report section: a heading, Markdown text, and figures (PNG paths, shown if the file exists)."""

    heading: str
    body: str = ""
    figures: Sequence[tuple[str, str]] | Sequence[str] = ()


def published_results() -> str:
    """The "Published results" section body: one bullet per paper (:data:`PUBLISHED`)."""
    return "\n".join(f"- **{cite}.** {finding}" for cite, finding in PUBLISHED) + "\n"


def write_report(
    out_dir: str,
    *sections: Section | tuple[str, str],
    title: str = "rnnlab report",
    intro: str = "",
    published: bool = True,
) -> str:
    """Write ``out_dir/report.md``: ``title``, ``intro``, the ``sections`` in order (figures as relative image
    links, only those whose file exists), then "Published results" (:data:`PUBLISHED`). Returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    parts = [f"# {title}\n"]
    if intro:
        parts.append(intro.strip() + "\n")
    for sec in sections:
        sec = sec if isinstance(sec, Section) else Section(*sec)
        parts.append(f"## {sec.heading}\n")
        if sec.body:
            parts.append(sec.body.strip() + "\n")
        for fig in sec.figures:
            fig_path, caption = (
                (fig, os.path.splitext(os.path.basename(fig))[0]) if isinstance(fig, str) else fig
            )
            if fig_path and os.path.exists(fig_path):
                rel = os.path.relpath(os.path.abspath(fig_path), os.path.abspath(out_dir))
                parts.append(f"![{caption}]({rel})\n")
    if published:
        parts.append("## Published results\n")
        parts.append(
            "What the literature reports, to compare the runs above against (stated qualitatively "
            "where we are not sure of exact numbers; budgets and set-ups differ from ours).\n"
        )
        parts.append(published_results())
    path = os.path.join(out_dir, REPORT_FILE)
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path


def build_sections(runs: Sequence[Run], out_dir: str, *, title: str = "") -> list[Section]:
    """Plots and tables for training ``runs``, written into ``out_dir``; headings prefixed by ``title``."""

    def png(name):
        return os.path.join(out_dir, name)

    pre = f"{title}: " if title else ""
    sections = []
    loss = plot_loss_curves(runs, png("loss_curves.png"))
    if loss:
        sections.append(
            Section(
                pre + "training curves",
                "Loss against training step (solid: train, dashed: eval).",
                [(loss, "loss curves")],
            )
        )
    grads = {r.label(): c for r in runs if (c := last_list(r, "grad_norm_t"))}
    jacs = {r.label(): c for r in runs if (c := last_list(r, "jac_norm_t"))}
    figs = [
        (p, cap)
        for p, cap in (
            (
                grads and plot_grad_norm_vs_distance(grads, png("grad_norm_vs_distance.png")),
                "gradient norm vs distance",
            ),
            (
                jacs
                and plot_grad_norm_vs_distance(
                    jacs, png("jacobian_norm_vs_distance.png"), ylabel="||dh_T/dh_t||"
                ),
                "Jacobian product norm vs distance",
            ),
        )
        if p
    ]
    if figs:
        sections.append(
            Section(
                pre + "vanishing gradients",
                "‖dL/dh_t‖ (probes, one backward pass) and ‖dh_T/dh_t‖ (Jacobian products) at the last "
                "diagnostics step, against the distance T - t; the legend gives the fitted factor per step "
                "(< 1: the gradient shrinks geometrically with distance).",
                figs,
            )
        )
    gates = gate_saturation_curves(runs)
    sat = gates and plot_gate_saturation(gates, png("gate_saturation.png"))
    if sat:
        sections.append(
            Section(
                pre + "gate saturation",
                "Fraction of gate values below 0.05 or above 0.95.",
                [(sat, "gate saturation")],
            )
        )
    sections.append(
        Section(
            pre + "final metrics",
            "Last logged value per seed, mean ± sample std over seeds.\n\n" + results_table(final_rows(runs)),
        )
    )
    return sections


training_sections = build_sections


def list_at_step(run: Run, key: str, step: int | None) -> list[float] | None:
    """A list-valued key (e.g. ``grad_norm_t``) at ``step`` (None: the last step), averaged over seeds."""
    steps = [int(to_float(r.get("step")) or 0) for r in run.records if isinstance(r.get(key), list)]
    if not steps:
        return None
    want = max(steps) if step is None else step
    rows = [
        r[key]
        for r in run.records
        if isinstance(r.get(key), list) and int(to_float(r.get("step")) or 0) == want
    ]
    if not rows:
        return None
    n = min(len(v) for v in rows)
    arr = np.array(
        [[to_float(x) if to_float(x) is not None else np.nan for x in v[-n:]] for v in rows], float
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(arr, 0).tolist()


def scalar_at_step(run: Run, key: str, step: int | None) -> list[float]:
    """Per-seed values of a scalar key at ``step`` (None: each seed's last logged value)."""
    out = []
    for steps, values in series(run, key).values():
        if not len(steps):
            continue
        if step is None:
            out.append(float(values[-1]))
        elif step in steps:
            out.append(float(values[list(steps).index(step)]))
    return out


def gradient_flow_sections(
    runs: Sequence[Run], out_dir: str, *, title: str = "gradient flow"
) -> list[Section]:
    """The vanishing-gradient comparison: ‖dL/dh_t‖ and ‖dh_T/dh_t‖ against T - t at initialisation (step 0)
    and after training (last diagnostics step), and a table of fitted per-step decay rates."""
    os.makedirs(out_dir, exist_ok=True)
    figs = []
    for key, ylabel, what in (
        ("grad_norm_t", "||dL/dh_t||", "grad_norm"),
        ("jac_norm_t", "||dh_T/dh_t||", "jacobian"),
    ):
        for step, when in ((0, "init"), (None, "trained")):
            curves = {r.name: c for r in runs if (c := list_at_step(r, key, step))}
            path = curves and plot_grad_norm_vs_distance(
                curves, os.path.join(out_dir, f"{what}_{when}.png"), ylabel=ylabel
            )
            if path:
                figs.append(
                    (path, f"{ylabel} vs distance, {'at initialisation' if step == 0 else 'after training'}")
                )
    rows = []
    for r in runs:
        row: dict[str, Any] = {"variant": r.name}
        for key, col in (
            ("log_decay_rate", "log rate/step (probe)"),
            ("jac_log_decay_rate", "log rate/step (Jacobian)"),
            ("forget_time_constant_mean", "LSTM tau = 1/(1-f)"),
            ("spectral_radius", "spectral radius"),
        ):
            for step, when in ((0, "init"), (None, "trained")):
                vals = [v for v in scalar_at_step(r, key, step) if math.isfinite(v)]
                if vals:
                    row[f"{col}, {when}"] = float(np.mean(vals))
        for m in ("mse_over_baseline", "accuracy"):
            vals = scalar_at_step(r, f"eval/{m}", None) or [
                v for s in series(r, m, "eval").values() for v in s[1][-1:]
            ]
            if vals:
                row[f"eval {m}"] = float(np.mean(vals))
        rows.append(row)
    body = (
        "Each variant's gradient ‖dL/dh_t‖ (from zero probes added to the carry, one backward pass, averaged "
        "over the batch) and Jacobian-product norm ‖dh_T/dh_t‖ (one sequence), against the distance T - t. "
        "The table gives the least-squares slope of log-norm against distance: the natural log of the factor "
        "by which the gradient shrinks per step (0 = no vanishing; -0.1 = a factor e^-0.1 = 0.90 per step).\n\n"
        + results_table(rows, group_by=["variant"])
    )
    return [Section(title, body, figs)]


def main(run_dirs: Sequence[str], out_dir: str) -> str:
    """Build ``out_dir/report.md`` (and its PNGs) from ``run_dirs``; returns the report's path."""
    runs = load_runs(run_dirs)
    os.makedirs(out_dir, exist_ok=True)
    missing = [r.path for r in runs if not r.records]
    intro = f"Generated from {len(runs)} run(s): " + ", ".join(f"`{r.path}`" for r in runs) + "."
    if missing:
        intro += "\n\nNo metrics found in: " + ", ".join(f"`{m}`" for m in missing) + "."
    return write_report(out_dir, *build_sections(runs, out_dir), intro=intro)
