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
  ``'gradient_flow'`` (gradient norm against distance at initialisation and after training, decay rates).

``run_experiments([spec, ...], workdir)`` validates every run of every file before running any of them, runs
each in ``workdir/<experiment>/<run>`` (finished runs are skipped, unfinished ones resume), and writes
``workdir/report.md`` with its plots.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rnnlab.analysis import report, report_runs
from rnnlab.training import NonFiniteError, train_and_evaluate
from rnnlab.training import config as config_lib

REPORT_KINDS = ("training", "gradient_flow")


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
    spec.loader.exec_module(module)
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
    log=print,
) -> str:
    """Runs every grid of ``specs`` and writes ``workdir/report.md``; returns the report's path."""
    plans = [(experiment_name(spec), report_kind(spec), grid(spec, overrides, seeds)) for spec in specs]
    validate_all([(f"{exp}/{name}", cfg) for exp, _, runs in plans for name, cfg in runs])
    sections, timings, failures = [], [], []
    for exp, kind, runs in plans:
        run_dirs = []
        start = time.perf_counter()
        for i, (name, cfg) in enumerate(runs):
            run_dir = os.path.join(workdir, exp, name)
            run_dirs.append(run_dir)
            log(f"[{exp} {i + 1}/{len(runs)}] {name}")
            try:
                result = train_and_evaluate(cfg, run_dir)
            except NonFiniteError as e:  # a result too (e.g. an exploding IRNN): report it, go on
                failures.append(f"`{exp}/{name}`: {e}")
                log(f"  stopped: {e}")
                continue
            shown = {
                k: v for k, v in result.items() if k.startswith(("eval/", "test/")) and isinstance(v, float)
            }
            log("  " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        timings.append((exp, time.perf_counter() - start))
        out_dir = os.path.join(workdir, exp)
        runs_loaded = report_runs.read_runs(run_dirs)
        if kind == "gradient_flow":
            sections.extend(report.gradient_flow_sections(runs_loaded, out_dir, title=exp))
        else:
            sections.extend(report.training_sections(runs_loaded, out_dir, title=exp))
    intro = (
        f"Experiments: {', '.join(f'`{s}`' for s in specs)}. Wall time on this machine: "
        + ", ".join(f"{exp} {sec / 60:.1f} min" for exp, sec in timings)
        + "."
    )
    if failures:
        intro += (
            "\n\nRuns stopped by the non-finite guard (their metrics up to the last good step are "
            "included):\n" + "\n".join(f"- {f}" for f in failures)
        )
    return report.write_report(workdir, *sections, title="rnnlab experiment report", intro=intro)
