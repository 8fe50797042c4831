"""Experiments: the grid of training runs an experiment file describes, run one after another, then a report.

An experiment file (``experiments/<name>.py``) defines

* ``get_config(arg=None)``: the base config (``rnnlab.training.config`` schema), ``arg`` from ``FILE.py:ARG``;
* ``ARGS`` (optional; every file in ``experiments/`` has it): the arguments ``FILE.py:ARG`` accepts, e.g.
  ``("cpu", "<int>")``; ``<int>`` stands for any non-negative integer, and no argument is always accepted. An
  argument that matches none fails before anything runs, with the valid ones listed (without ``ARGS``, a
  ``get_config()`` that takes no argument accepts none);
* ``get_sweep(arg=None)`` (optional): a list of points, each a dict of dotted overrides plus an optional
  ``'name'`` (the run directory's name; derived from the overrides when absent);
* ``REPORT`` (optional): ``'training'`` (default: curves, diagnostics and a final-metrics table) or
  ``'gradient_flow'`` (gradient norm against distance at initialisation and after training, decay rates), or
  a study, not a grid of runs, measured in this process (``STUDIES``): ``'scaling'``: ``get_config(arg)``
  gives the measurement settings and ``get_sweep(arg)`` a list of ``rnnlab.scaling.Point`` (see
  ``rnnlab.scaling.run_study``); ``'depth_vs_time'``: ``get_config(arg)`` gives the study's settings (see
  ``rnnlab.analysis.depth.run_study``).

``run_experiments([spec, ...], workdir, jobs=N)`` validates every run of every file before running any of
them, runs each in ``workdir/<experiment>/<run>`` in its own process, up to N of a grid at once
(``rnnlab.training.isolation``: finished runs are skipped, unfinished ones resume, a run the watchdog stopped
is retried once; with N > 1 each output line starts with the run's name), and writes ``workdir/report.md``
with its plots. A table of every run (status: finished, skipped, resumed, retried, nonfinite or failed; wall
time; main validation metric) ends the output and is in the report; runs stopped by the non-finite guard,
retried after a hang, or failed are also listed in the report's notes.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rnnlab.analysis.report_tables import MAIN_METRICS
from rnnlab.training import config as config_lib
from rnnlab.training import train_and_evaluate
from rnnlab.training.isolation import run_many

STUDIES = ("scaling", "depth_vs_time")  # REPORT kinds that are not grids of training runs
REPORT_KINDS = ("training", "gradient_flow", *STUDIES)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``'file.py:arg'`` -> ``('file.py', 'arg')``; ``'file.py'`` -> ``('file.py', None)``."""
    path, sep, arg = spec.partition(".py:")
    return (path + ".py", arg or None) if sep else (spec, None)


def load_module(path: str):
    """Imports an experiment/config file (it must define ``get_config``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"config file {path!r} not found" + (" (it is a directory)" if os.path.isdir(path) else "")
        )
    if not path.endswith(".py"):
        raise ValueError(
            f"config file {path!r} is not a Python file: pass an experiment file, e.g. experiments/adding.py"
        )
    name = "rnnlab_experiment_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ by the user file
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} defines no get_config()")
    return module


PLACEHOLDERS = {"<int>": r"\d+"}  # what an ``ARGS`` entry may contain besides literal text


def _arg_pattern(form: str) -> re.Pattern:
    parts = re.split("(" + "|".join(map(re.escape, PLACEHOLDERS)) + ")", form)
    return re.compile("".join(PLACEHOLDERS.get(p, re.escape(p)) for p in parts))


def check_arg(module, path: str, arg: str | None) -> None:
    """Raises ValueError unless ``arg`` (from ``FILE.py:ARG``) is one ``module`` accepts (its ``ARGS``)."""
    if arg is None:
        return
    forms = getattr(module, "ARGS", None)
    if forms is None and inspect.signature(module.get_config).parameters:
        return  # the file checks its argument itself
    if not forms:
        raise ValueError(f"{path} takes no argument (got {path}:{arg}); use {path} alone")
    if not any(_arg_pattern(form).fullmatch(arg) for form in forms):
        raise ValueError(
            f"{path} has no argument {arg!r}; valid: (none), {', '.join(forms)} (e.g. {path}:{forms[0]})"
        )


def load_experiment(spec: str):
    """``FILE[:ARG]`` -> ``(module, arg)``, the argument checked against the file's ``ARGS``."""
    path, arg = split_spec(spec)
    module = load_module(path)
    check_arg(module, path, arg)
    return module, arg


def _call(fn, arg):
    return fn(arg) if arg is not None else fn()


def load_config(spec: str, overrides: Mapping[str, Any] | None = None):
    """``FILE[:ARG]`` + dotted overrides -> the resolved config (overrides checked, values not yet
    validated)."""
    module, arg = load_experiment(spec)
    config = _call(module.get_config, arg)
    return config_lib.apply_overrides(config_lib.resolve(config), dict(overrides or {}))


def run_name(overrides: Mapping[str, Any], seed: int | None = None) -> str:
    """A readable, filesystem-safe directory name for one point of a grid."""
    parts = [f"{k}={v}" for k, v in sorted(overrides.items())] + ([] if seed is None else [f"seed={seed}"])
    return re.sub(r"[^\w.=,+-]", "_", ",".join(parts)) or "default"


def grid(spec: str, overrides: Mapping[str, Any] | None = None, seeds: Sequence[int] | None = None):
    """``[(name, config)]``: every point of the file's ``get_sweep()`` (x ``seeds`` if given).

    Each point's overrides apply to a copy of the base config, so values tied to others by a FieldReference
    follow (e.g. a point setting ``task.params.length`` also sets a chrono ``T_max`` tied to it).

    Raises:
      ValueError: points with unknown keys or values of the wrong type (every point's problems listed).
    """
    module, arg = load_experiment(spec)
    points = _call(module.get_sweep, arg) if hasattr(module, "get_sweep") else [{}]
    base = load_config(spec, overrides)
    runs, problems = [], []
    for point in points:
        point = dict(point)
        name = point.pop("name", None)
        for seed in seeds if seeds is not None else [None]:
            changes = point if seed is None else {**point, "seed": seed}
            label = (name if seed is None or name is None else f"{name},seed={seed}") or run_name(point, seed)
            try:
                runs.append((label, config_lib.apply_overrides(base, changes)))
            except ValueError as e:
                problems.append(f"{label}: {e}")
    if problems:
        raise ValueError("invalid sweep:\n" + "\n".join(problems))
    names = [n for n, _ in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"{spec}: two sweep points have the same name; names: {names}")
    return runs


def validate_all(runs) -> None:
    """Validates every config of a grid; one ``ValueError`` lists every problem of every run."""
    problems = []
    for name, cfg in runs:
        try:
            config_lib.validate(cfg)
        except ValueError as e:
            problems.append(f"{name}: {e}")
    if problems:
        raise ValueError("invalid sweep:\n" + "\n".join(problems))


def report_kind(spec: str) -> str:
    kind = getattr(load_module(split_spec(spec)[0]), "REPORT", "training")
    if kind not in REPORT_KINDS:
        raise ValueError(f"{spec}: REPORT = {kind!r}; valid: {', '.join(REPORT_KINDS)}")
    return kind


def experiment_name(spec: str) -> str:
    path, arg = split_spec(spec)
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem if arg is None else stem + "_" + re.sub(r"[^\w.-]", "_", arg)


def run_experiments(
    specs: Sequence[str],
    workdir: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
    jobs: int = 1,
    log=print,
    train_fn=train_and_evaluate,
) -> str:
    """Runs every grid of ``specs`` and writes ``workdir/report.md``; returns the report's path.

    ``jobs``: how many points of a grid train at once, each in its own process (the results do not depend
    on it). ``train_fn``: as in ``rnnlab.training.isolation.run_isolated`` (tests).

    Raises:
      RuntimeError: after the report is written, when a run failed or hung twice (the message lists them;
        the same command resumes them).
    """
    # the report's modules (matplotlib, the studies) are imported here, not by `rnnlab train`'s load_config:
    # every CLI run and every isolated point's process would pay ~1 s for them
    from rnnlab.analysis import report, report_runs  # pylint: disable=import-outside-toplevel
    from rnnlab.apps import figures  # pylint: disable=import-outside-toplevel

    if jobs < 1:
        raise ValueError(f"jobs (--jobs) must be at least 1; got {jobs}")
    plans = [(spec, experiment_name(spec), report_kind(spec)) for spec in specs]
    plans = [(s, e, k, [] if k in STUDIES else grid(s, overrides, seeds)) for s, e, k in plans]
    validate_all([(f"{exp}/{name}", cfg) for _, exp, _, runs in plans for name, cfg in runs])
    studies = sorted({kind for *_, kind, _ in plans if kind in STUDIES})
    if studies and (overrides or seeds):
        raise ValueError(
            f"{' and '.join(studies)} studies take no --config.* overrides or --seeds: edit the file's "
            "get_config"
        )
    sections, timings, all_runs, rows = [], [], [], []
    notes: dict[str, list[str]] = {key: [] for key in _NOTES}
    for spec, exp, kind, runs in plans:
        start = time.perf_counter()
        if kind in STUDIES:
            sections.extend(_study_sections(kind, spec, os.path.join(workdir, exp), exp, log))
            timings.append((exp, time.perf_counter() - start))
            continue
        run_dirs = [os.path.join(workdir, exp, name) for name, _ in runs]
        points = [(f"{exp}/{name}", cfg, d) for (name, cfg), d in zip(runs, run_dirs, strict=True)]
        outcomes = run_many(
            points, jobs=jobs, log=log, done=lambda i, out, say: say(_status_line(out)), train_fn=train_fn
        )
        for (label, cfg, run_dir), out in zip(points, outcomes, strict=True):
            _note(out, f"`{label}`", notes)
            rows.append((label, out.summary, out.wall_s, _main_metric(cfg, out.result)))
            if out.status == "finished":  # captions / attention maps of the trained model, for the report
                figures.write_figures(run_dir)
        timings.append((exp, time.perf_counter() - start))
        out_dir = os.path.join(workdir, exp)
        runs_loaded = report_runs.read_runs(run_dirs)
        all_runs.extend(runs_loaded)
        if kind == "gradient_flow":
            sections.extend(report.gradient_flow_sections(runs_loaded, out_dir, title=exp))
        else:
            sections.extend(report.training_sections(runs_loaded, out_dir, title=exp))
    intro = (
        f"Experiments: {', '.join(f'`{s}`' for s in specs)}. Wall time on this machine: "
        + ", ".join(f"{exp} {sec / 60:.1f} min" for exp, sec in timings)
        + (f" ({jobs} runs at a time)." if jobs > 1 else ".")
    )
    for key, heading in _NOTES.items():
        if notes[key]:
            intro += f"\n\n{heading}:\n" + "\n".join(f"- {line}" for line in notes[key])
    if rows:
        sections.append(report.Section("runs", _STATUS_TEXT + "\n\n" + status_table(rows)))
        log("\n" + status_table(rows))
    sections.extend(report.provenance_sections(all_runs))
    published = any(kind not in STUDIES for *_, kind, _ in plans)  # the literature is about training results
    path = report.write_report(
        workdir, *sections, title="rnnlab experiment report", intro=intro, published=published
    )
    if notes["failed"]:
        raise RuntimeError(
            f"{len(notes['failed'])} run(s) did not finish: {'; '.join(notes['failed'])}. The report "
            f"({path}) lists them; run the same command again to resume them."
        )
    return path


_NOTES = {
    "nonfinite": "Runs stopped by the non-finite guard (their metrics up to the last good step are included)",
    "retried": "Runs the watchdog stopped for making no progress, retried from their last checkpoint",
    "failed": "Runs that did not finish (re-run the same command to resume them)",
}


def _status_line(out) -> str:
    """What a point's log says when it ends."""
    if out.status in ("finished", "skipped"):
        shown = {k: v for k, v in out.result.items() if k.startswith("eval/") and isinstance(v, float)}
        done = "finished, skipped: " if out.status == "skipped" else ""
        return "  " + done + ", ".join(f"{k}={v:.4g}" for k, v in shown.items())
    if out.status == "nonfinite":
        return f"  stopped: {out.message}"
    return f"  FAILED: {_why(out)}"


def _why(out) -> str:
    return f"hung {out.hangs} times ({out.message})" if out.status == "hung" else out.message


def _note(out, label: str, notes: dict[str, list[str]]) -> None:
    """A point's entry in the report's notes, if it needs one."""
    if out.hangs and out.status != "hung":
        notes["retried"].append(f"{label}: stopped {out.hangs} time(s), then {out.status}")
    if out.status == "nonfinite":  # a result too (e.g. an exploding IRNN): report it, go on
        notes["nonfinite"].append(f"{label}: {out.message}")
    elif out.status not in ("finished", "skipped"):
        notes["failed"].append(f"{label}: {_why(out)}")


def _study_sections(kind: str, spec: str, out_dir: str, title: str, log) -> list:
    """Measures a study (``REPORT`` in ``STUDIES``) in ``out_dir``; its report sections."""
    path, arg = split_spec(spec)
    module = load_module(path)
    config = _call(module.get_config, arg)
    from rnnlab import scaling  # pylint: disable=import-outside-toplevel
    from rnnlab.analysis import depth  # pylint: disable=import-outside-toplevel

    if kind == "depth_vs_time":
        return depth.run_study(config, out_dir, title=title, log=log)
    return scaling.run_study(config, _call(module.get_sweep, arg), out_dir, title=title, log=log)


_STATUS_TEXT = (
    "Every run of the grids: finished (trained now), skipped (finished before), resumed (from a checkpoint "
    "an earlier command left), retried (after the watchdog stopped it), nonfinite (stopped by the non-finite "
    "guard), failed; its wall time (0 when skipped), and its main validation metric (`train.best_metric`, "
    "else the first of " + ", ".join(MAIN_METRICS) + " it reports)."
)


def _main_metric(config, result: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """``(name, value)`` of the validation metric that summarises a run, or None without a result."""
    if not result:
        return None
    names = [config.train.best_metric] if config.train.best_metric else []
    names += [f"eval/{m}" for m in MAIN_METRICS] + sorted(k for k in result if k.startswith("eval/"))
    return next(((n, result[n]) for n in names if isinstance(result.get(n), float)), None)


def status_table(rows: Sequence[tuple[str, str, float, tuple[str, float] | None]]) -> str:
    """A Markdown table of ``(run, status, wall seconds, (metric, value) or None)`` rows."""
    lines = ["| run | status | wall time | main metric |", "|---|---|---|---|"]
    for label, status, wall_s, metric in rows:
        shown = f"{metric[0]} = {metric[1]:.4g}" if metric else "-"
        lines.append(f"| {label} | {status} | {_duration(wall_s)} | {shown} |")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"
