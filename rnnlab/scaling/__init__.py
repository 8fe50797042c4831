"""Scaling studies: how a training step's time and memory grow with T, H, B, layers, K seeds and devices,
per time-loop backend, with fitted exponents and crossovers (``rnnlab experiment experiments/scaling.py``).

Shape legend: K seeds, B batch, T time, H hidden size.

* :mod:`~rnnlab.scaling.points`: what one measurement is (:class:`Point`) and the backends' loop options;
* :mod:`~rnnlab.scaling.step`: the real training step of a point, compiled with XLA's memory plan;
* :mod:`~rnnlab.scaling.measure`: a group of points compiled, checked against a memory budget and timed in
  interleaved rounds beside a 1024^3 matmul (the matmul-FLOP floor);
* :mod:`~rnnlab.scaling.runner`: a sweep, one worker process per device count, resumable records;
* :mod:`~rnnlab.scaling.fits` and :mod:`~rnnlab.scaling.report`: power laws, crossovers, plots and tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from rnnlab.scaling import report
from rnnlab.scaling.points import BACKENDS, PARALLEL, Point, expand
from rnnlab.scaling.runner import run_sweep
from rnnlab.scan import default_platform

__all__ = ["BACKENDS", "PARALLEL", "Point", "expand", "run_study", "run_sweep"]


def run_study(
    config: Mapping, points: Sequence[Point], workdir: str, *, title: str, log: Callable[[str], None] = print
) -> list:
    """Measures ``points`` (resuming ``workdir/records.jsonl``) and returns the report sections.

    Args:
      config: ``rounds``, ``budget_mb`` (points whose XLA memory plan exceeds it are not run), ``min_seconds``
        (timed per point and round) and ``timeout_s`` (per worker process; 0: none), as an experiment file's
        ``get_config()`` returns them.
    """
    budget = config["budget_mb"] * 2**20 if config["budget_mb"] else float("inf")
    records = run_sweep(
        points,
        workdir,
        platform=default_platform(),
        rounds=config["rounds"],
        budget_bytes=budget,
        min_seconds=config["min_seconds"],
        timeout=config["timeout_s"] or None,
        log=log,
    )
    return report.sections(records, os.path.join(workdir, "plots"), budget_bytes=budget, title=title)
