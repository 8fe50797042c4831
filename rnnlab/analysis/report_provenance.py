"""The provenance section of a report: what code, packages and machine produced the runs (``provenance.json``,
written by ``rnnlab.training.provenance``: one session per invocation, resumptions included).

Values shared by every session of every run are listed once; values that differ (between runs, or between
the sessions of one resumed run: 'a -> b') become columns of the per-run table, so a run resumed under another
jax version, or a grid split over two machines, is visible at a glance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rnnlab.analysis.report_runs import Run


def _commit(s: dict) -> str:
    git = s.get("rnnlab", {})
    commit = str(git.get("commit", "unknown"))
    short = commit[:10] if commit != "unknown" else commit
    return short + (" (dirty)" if git.get("dirty") else "")


def _devices(s: dict) -> str:
    d = s.get("devices", {})
    kinds = ", ".join(d.get("kinds", [])) or "?"
    return f"{d.get('count', '?')} x {kinds}, {d.get('processes', 1)} process(es)"


def _package(name: str) -> Callable[[dict], str]:
    return lambda s: str(s.get("packages", {}).get(name, "?"))


#: (label, value of a session) for everything that can change a result.
ENVIRONMENT: tuple[tuple[str, Callable[[dict], str]], ...] = (
    ("rnnlab", lambda s: str(s.get("rnnlab", {}).get("version", "?"))),
    ("git commit", _commit),
    *(
        (name, _package(name))
        for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")
    ),
    ("python", lambda s: str(s.get("python", "?"))),
    ("backend", lambda s: str(s.get("backend", "?"))),
    ("devices", _devices),
    ("XLA_FLAGS", lambda s: f"`{s.get('xla_flags')}`" if s.get("xla_flags") else "(none)"),
    ("host", lambda s: str(s.get("host", "?"))),
)


def _sessions(run: Run) -> list[dict]:
    return [s for s in run.provenance.get("sessions", []) if isinstance(s, dict)]


def _changes(values: Sequence[str]) -> str:
    """'a', or 'a -> b' when a resumed run's sessions differ."""
    out = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    return " -> ".join(out)


def provenance_table(runs: Sequence[Run]) -> str:
    """Markdown: the shared environment as a list, then one row per run with its own values."""
    runs = [r for r in runs if _sessions(r)]
    if not runs:
        return ""
    shared, varying = [], []
    for label, get in ENVIRONMENT:
        values = {get(s) for r in runs for s in _sessions(r)}
        (shared if len(values) == 1 else varying).append((label, get, values))
    lines = [f"- **{label}**: {next(iter(values))}" for label, _, values in shared]
    header = ["run", "parameters", "sessions", "started", "ended", "status", *[v[0] for v in varying]]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in runs:
        sessions = _sessions(r)
        params = r.provenance.get("param_count")
        row: list[Any] = [
            r.name,
            f"{params:,}" if isinstance(params, int) else "?",
            len(sessions),
            sessions[0].get("started") or "?",
            sessions[-1].get("ended") or "–",
            str(sessions[-1].get("status", "?")).split(":")[0],
            *[_changes([get(s) for s in sessions]) for _, get, _ in varying],
        ]
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    commands = {" ".join(map(str, s.get("command", []))) for r in runs for s in _sessions(r)}
    if len(commands) == 1:
        lines += ["", f"Command: `{commands.pop()}`"]
    return "\n".join(lines) + "\n"
