"""Reports: ``report.md`` with plots and tables from run directories (``rnnlab report RUN_DIR... --out DIR``).

Reads run directories only (``rnnlab.analysis.report_runs``), never the training code. ``main(run_dirs,
out_dir)`` writes ``report.md`` with PNG plots (``report_plots``), a table of final metrics (mean ± std over
seeds, ``report_tables``), the runs' provenance (``report_provenance``) and a "Published results" section to
compare against. ``rnnlab experiment`` builds its report from ``training_sections``,
``gradient_flow_sections`` and ``provenance_sections``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnlab.analysis.report_plots import (
    gate_saturation_curves,
    plot_gate_saturation,
    plot_grad_norm_vs_distance,
    plot_loss_curves,
)
from rnnlab.analysis.report_provenance import provenance_table
from rnnlab.analysis.report_runs import Run, last_list, list_at_step, read_runs, scalar_at_step, series
from rnnlab.analysis.report_tables import MAIN_METRICS, final_rows, marginals_table, results_table

REPORT_FILE = "report.md"
FIGURES = "figures"  # a run directory's example figures (rnnlab.apps.figures writes them)

#: (citation, finding): what the literature reports, stated qualitatively where exact numbers are not certain.
PUBLISHED = (
    (
        "Hochreiter & Schmidhuber (1997), *Long Short-Term Memory*",
        (
            "Introduced the LSTM: a memory cell with a self-connection of weight 1 (the constant error "
            "carousel) guarded by multiplicative input and output gates, so error can flow back over long "
            "lags without vanishing. They report learning tasks with minimal time lags of more than 1000 "
            "steps that plain recurrent nets trained by BPTT or RTRL could not learn. (The forget gate came "
            "later, Gers et al. 2000.)"
        ),
    ),
    (
        "Pascanu, Mikolov & Bengio (2013), *On the difficulty of training recurrent neural networks*",
        (
            "Analysed vanishing and exploding gradients: for h_t = W act(h_{t-1}) + ... with |act'| <= "
            "gamma, sigma_max(W_hh) < 1/gamma (gamma = 1 for tanh, 1/4 for the sigmoid) is sufficient for "
            "the gradients to vanish, and sigma_max > 1/gamma is necessary for them to explode. Proposed "
            "clipping the gradient norm against explosion and a regulariser that keeps the backpropagated "
            "norm from shrinking."
        ),
    ),
    (
        "Le, Jaitly & Hinton (2015), *A simple way to initialize recurrent networks of rectified linear "
        "units*",
        (
            "The IRNN (ReLU units, recurrent weights initialised to the identity, zero biases) was reported "
            "to solve the adding problem for sequence lengths up to 400, comparable to their LSTM baseline, "
            "while their tanh RNN struggled as the sequences got longer; on pixel-by-pixel MNIST it was "
            "comparable to or better than the LSTM."
        ),
    ),
    (
        "Arjovsky, Shah & Bengio (2016), *Unitary evolution recurrent neural networks*",
        (
            "A recurrent matrix kept unitary (all eigenvalues of modulus 1) neither shrinks nor grows the "
            "backpropagated signal. The uRNN solved the adding problem for T up to 750; on the copy-memory "
            "problem it learned long delays while their LSTM, within the training budget of the paper, "
            "stayed at the memoryless baseline for delays beyond roughly T = 100."
        ),
    ),
    (
        "Tallec & Ollivier (2018), *Can recurrent neural networks warp time?*",
        (
            "Derived gating from invariance to time warping: the forget gate sets a characteristic "
            "forgetting time of about 1/(1 - f) steps. Proposed chrono initialisation (b_f ~ log U[1, T_max "
            "- 1], b_i = -b_f) so the initial time constants cover the expected dependency range, and "
            "reported that it speeds up learning long-term dependencies (e.g. copy and adding tasks) "
            "compared with the standard initialisation."
        ),
    ),
)


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


def training_sections(runs: Sequence[Run], out_dir: str, *, title: str = "") -> list[Section]:
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
    norms = plot_loss_curves(runs, png("grad_norm.png"), key="grad_norm", splits=("train",))
    if norms:
        sections.append(
            Section(
                pre + "gradient norm",
                "Global gradient norm before clipping against training step (a run stopped by the "
                "non-finite guard ends at its last finite record).",
                [(norms, "gradient norm curves")],
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
    examples = [
        (os.path.join(r.path, FIGURES, f), f"{r.name}: {os.path.splitext(f)[0]}")
        for r in runs
        if os.path.isdir(os.path.join(r.path, FIGURES))
        for f in sorted(os.listdir(os.path.join(r.path, FIGURES)))
        if f.endswith(".png")
    ]
    if examples:
        sections.append(
            Section(
                pre + "examples",
                "What the trained models do on test examples (each run's `figures/`, written by "
                "`rnnlab.apps.figures`: generated captions, attention weights of translations).",
                examples,
            )
        )
    rows = final_rows(runs)
    sections.append(
        Section(
            pre + "final metrics",
            "Last logged value per seed, mean ± sample std over seeds ('eval': the validation split, which "
            "selected the checkpoint; 'test': that checkpoint on the test split, evaluated once).\n\n"
            + results_table(rows),
        )
    )
    metric = next((f"test {m}" for m in MAIN_METRICS if any(f"test {m}" in r for r in rows)), None)
    effects = metric and marginals_table(rows, metric)
    if effects:
        sections.append(
            Section(
                pre + "main effects",
                "A factorial grid (runs named factor=level,...): each factor level's points, averaged over "
                "the other factors (each point first averaged over its seeds).\n\n" + effects,
            )
        )
    return sections


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
            for split in ("eval", "test"):
                vals = scalar_at_step(r, f"{split}/{m}", None) or [
                    v for s in series(r, m, split).values() for v in s[1][-1:]
                ]
                if vals:
                    row[f"{split} {m}"] = float(np.mean(vals))
        rows.append(row)
    body = (
        "Each variant's gradient ‖dL/dh_t‖ (from zero probes added to the carry, one backward pass, averaged "
        "over the batch) and Jacobian-product norm ‖dh_T/dh_t‖ (one sequence), against the distance T - t. "
        "The table gives the least-squares slope of log-norm against distance: the natural log of the factor "
        "by which the gradient shrinks per step (0 = no vanishing; -0.1 = a factor e^-0.1 = 0.90 per "
        "step).\n\n" + results_table(rows, group_by=["variant"])
    )
    return [Section(title, body, figs)]


def provenance_sections(runs: Sequence[Run]) -> list[Section]:
    """ "Provenance": versions, commit, machine and times of the runs that recorded them (else nothing)."""
    table = provenance_table(runs)
    if not table:
        return []
    return [
        Section(
            "provenance",
            "What produced these runs (`provenance.json`; a resumed run has one session per invocation).\n\n"
            + table,
        )
    ]


def main(run_dirs: Sequence[str], out_dir: str) -> str:
    """Build ``out_dir/report.md`` (and its PNGs) from ``run_dirs``; returns the report's path."""
    runs = read_runs(run_dirs)
    os.makedirs(out_dir, exist_ok=True)
    missing = [r.path for r in runs if not r.records]
    intro = f"Generated from {len(runs)} run(s): " + ", ".join(f"`{r.path}`" for r in runs) + "."
    if missing:
        intro += "\n\nNo metrics found in: " + ", ".join(f"`{m}`" for m in missing) + "."
    return write_report(out_dir, *training_sections(runs, out_dir), *provenance_sections(runs), intro=intro)
