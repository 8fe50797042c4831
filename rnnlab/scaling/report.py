"""The scaling report: per study a log-log plot (step time and XLA memory against the varied axis, one line
per backend) and a table; fitted exponents per backend; the crossovers; data-parallel efficiency.

Shape legend: K seeds, B batch, T time, H hidden size, L layers, n devices.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnlab.analysis.report import Section
from rnnlab.scaling import fits

VARIED = ("length", "hidden", "batch", "layers", "seeds", "devices")
LABELS = {"length": "T", "hidden": "H", "batch": "B", "layers": "L", "seeds": "K", "devices": "n"}
MIB = 2**20


def _fmt(value, spec: str = ".3g") -> str:
    return "—" if value is None else format(value, spec)


def varied_axis(records: Sequence[dict]) -> str | None:
    """The first of :data:`VARIED` that takes several values among ``records``."""
    return next((a for a in VARIED if len({r[a] for r in records}) > 1), None)


def _line_label(r: dict, axis: str, records: Sequence[dict]) -> str:
    """The backend, plus whatever else varies among ``records`` besides ``axis``."""
    extra = [a for a in ("cell", "parallel", *VARIED) if a != axis and len({x[a] for x in records}) > 1]
    return " ".join([r["backend"], *(f"{LABELS.get(a, a)}={r[a]}" for a in extra)])


def plot_study(records: Sequence[dict], axis: str, path: str, budget_bytes: float | None) -> str | None:
    """Step time and XLA memory (temp + arguments + outputs) against ``axis``, log-log; returns ``path``."""
    lines: dict[str, list[dict]] = {}
    for r in records:
        lines.setdefault(_line_label(r, axis, records), []).append(r)
    fig = Figure(figsize=(11, 4))  # matplotlib's object API on an Agg canvas: no pyplot state, no display
    FigureCanvasAgg(fig)
    ax_t, ax_m = fig.subplots(1, 2)
    drawn = False
    for label, rs in sorted(lines.items()):
        rs = sorted(rs, key=lambda r: r[axis])
        timed = [r for r in rs if r.get("step_s")]
        if timed:
            ax_t.plot([r[axis] for r in timed], [1e3 * r["step_s"] for r in timed], "o-", label=label)
            drawn = True
        mem = [r for r in rs if fits.total_bytes(r)]
        if mem:
            ax_m.plot([r[axis] for r in mem], [fits.total_bytes(r) / MIB for r in mem], "o-", label=label)
            drawn = True
    if not drawn:
        return None
    if budget_bytes and budget_bytes != float("inf"):
        ax_m.axhline(budget_bytes / MIB, color="k", ls="--", lw=1, label="budget")
    for ax, ylabel in ((ax_t, "ms per training step"), (ax_m, "XLA memory per device (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(LABELS[axis])
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def table(records: Sequence[dict]) -> str:
    """Every record as a Markdown row."""
    head = (
        "| cell | backend | T | H | B | L | K | n | parallel | status | ms/step | tokens/s | % floor "
        "| temp MiB | total MiB | params |"
    )
    rows = [head, "|---|---|" + "---:|" * 6 + "---|---|" + "---:|" * 6]
    for r in records:
        mem, temp = fits.total_bytes(r), r.get("temp_bytes")
        status = r["status"] if not r.get("note") else f"{r['status']}: {r['note'][:80]}"
        rows.append(
            f"| {r['cell']} | {r['backend']} | {r['length']} | {r['hidden']} | {r['batch']} | {r['layers']} "
            f"| {r['seeds']} | {r['devices']} | {r['parallel']} | {status} "
            f"| {_fmt(r.get('step_s') and 1e3 * r['step_s'])} | {_fmt(r.get('tokens_per_s'), '.3g')} "
            f"| {_fmt(r.get('floor_pct'), '.0f')} | {_fmt(temp and temp / MIB, '.1f')} "
            f"| {_fmt(mem and mem / MIB, '.1f')} | {_fmt(r.get('params'), 'd')} |"
        )
    return "\n".join(rows)


def fits_table(records: Sequence[dict]) -> str:
    """Step time ~ T^a H^b B^c per (cell, backend), over the one-device, one-layer, one-seed records."""
    single = [
        r for r in records if r.get("step_s") and r["devices"] == 1 and r["layers"] == 1 and r["seeds"] == 1
    ]
    rows = ["| cell | backend | a (T) | b (H) | c (B) | R² | points |", "|---|---|---:|---:|---:|---:|---:|"]
    for cell, backend in sorted({(r["cell"], r["backend"]) for r in single}):
        fit = fits.fit_power_law([r for r in single if (r["cell"], r["backend"]) == (cell, backend)])
        if fit is None:
            continue
        e = fit.exponents
        rows.append(
            f"| {cell} | {backend} | {_fmt(e.get('length'), '.2f')} | {_fmt(e.get('hidden'), '.2f')} "
            f"| {_fmt(e.get('batch'), '.2f')} | {fit.r2:.3f} | {fit.n} |"
        )
    return "\n".join(rows) if len(rows) > 2 else ""


def crossover_text(records: Sequence[dict], budget_bytes: float) -> str:
    """The associative-vs-sequential and plain-vs-chunked-remat crossovers, in words."""
    out = []
    for cell in sorted({r["cell"] for r in records if r["backend"] == "associative"}):
        ratios, at = fits.speed_crossover([r for r in records if r["cell"] == cell], "associative", "xla")
        if ratios:
            listed = ", ".join(f"T={r['length']}: ×{q:.2f}" for r, q in ratios)
            faster = [r["length"] for r, q in ratios if q < 1]
            if at:
                verdict = f"associative is faster from T = {at} on"
            elif faster:
                verdict = f"associative is faster only at T = {', '.join(map(str, faster))}"
            else:
                verdict = "associative is never faster"
            out.append(f"- **{cell}, associative vs sequential** (time ratio): {listed}; {verdict}.")
    for remat, plain in fits.paired(records, "remat", "xla"):
        out.append(
            f"- **{remat['cell']} T={remat['length']} H={remat['hidden']} B={remat['batch']}, chunked remat "
            f"(chunk {min(remat['remat_chunk'], remat['length'])}) vs plain BPTT**: XLA temp "
            f"{remat['temp_bytes'] / MIB:.0f} MiB vs {plain['temp_bytes'] / MIB:.0f} MiB, step time "
            f"×{remat['step_s'] / plain['step_s']:.2f}."
        )
    if budget_bytes == float("inf"):
        return "\n".join(out)
    analysed = [r for r in records if r["backend"] in ("xla", "remat") and fits.total_bytes(r)]
    others = ("cell", "hidden", "batch", "layers", "seeds", "devices", "parallel")
    for shape in sorted({tuple(r[k] for k in others) for r in analysed}):
        rs = [r for r in analysed if tuple(r[k] for k in others) == shape]
        if any(len({r["length"] for r in rs if r["backend"] == b}) < 2 for b in ("xla", "remat")):
            continue
        m = fits.memory_crossover(rs, budget_bytes)
        seen = (
            f"from T = {m.measured} on among the analysed lengths"
            if m.measured
            else "at none of the analysed lengths"
        )
        slope = lambda fit: _fmt(fit and fit.exponents.get("length"), ".2f")
        out.append(
            f"- **{shape[0]} H={shape[1]} B={shape[2]}, memory budget {budget_bytes / MIB:.0f} MiB**: plain "
            f"BPTT no longer fits while chunked remat does {seen}. Fitted memory ~ T^{slope(m.plain_fit)} "
            f"(plain) and T^{slope(m.lean_fit)} (remat) reach the budget at T ≈ {_fmt(m.plain_limit, '.3g')} "
            f"and T ≈ {_fmt(m.lean_limit, '.3g')}."
        )
    return "\n".join(out)


def efficiency_table(records: Sequence[dict]) -> str:
    rows = ["| parallel | devices | tokens/s | speed-up | efficiency |", "|---|---:|---:|---:|---:|"]
    for e in fits.efficiency(records):
        rows.append(
            f"| {e['parallel']} | {e['devices']} | {e['tokens_per_s']:.3g} | {_fmt(e['speedup'], '.2f')} "
            f"| {_fmt(e['efficiency'], '.2f')} |"
        )
    return "\n".join(rows)


def sections(
    records: Sequence[dict], out_dir: str, *, budget_bytes: float, title: str = "scaling"
) -> list[Section]:
    """The report sections of a sweep's ``records``; plots are written into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    out = []
    for study in dict.fromkeys(r.get("study") or "points" for r in records):
        rs = [r for r in records if (r.get("study") or "points") == study]
        axis = varied_axis(rs)
        figure = axis and plot_study(rs, axis, os.path.join(out_dir, f"{study}.png"), budget_bytes)
        body = table(rs)
        if axis == "devices":
            body += "\n\nData-parallel scaling (speed-up over one device at the same global batch):\n\n"
            body += efficiency_table(rs)
        figures = [(figure, f"{study}: time and memory vs {LABELS[axis]}")] if figure else []
        out.append(Section(f"{title}: {study}", body, figures))
    fitted = fits_table(records)
    if fitted:
        out.append(
            Section(
                f"{title}: fitted exponents",
                "Least squares on logs, step time ~ T^a H^b B^c, over the one-device, one-layer, one-seed "
                "timed points of each backend (— : the axis does not vary in the data).\n\n" + fitted,
            )
        )
    text = crossover_text(records, budget_bytes)
    if text:
        out.append(Section(f"{title}: crossovers", text))
    return out
