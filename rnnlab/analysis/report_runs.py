"""Reading run directories for reports: ``config.json``, ``metrics.jsonl`` and ``provenance.json``,
tolerantly.

A run directory holds ``config.json`` (the resolved config) and ``metrics.jsonl``: one JSON object per line
with ``step``, optional ``seed``, and values either prefixed by their split (``train/loss``,
``eval/accuracy``: what ``rnnlab.training`` writes) or unprefixed with an optional ``split`` key
(``{"split": "eval", "loss": ...}``); diagnostics (``rnnlab.analysis.diagnostics.record``) are unprefixed:
``grad_norm_t`` (a list over t), ``decay_rate``, ``gate_<g>_saturated``... Missing files, keys, malformed
lines and ``"nan"`` strings are skipped, never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass
class Run:
    """One run directory: ``name`` (its base name), ``config`` (``{}`` if absent), ``records`` (dicts),
    ``provenance`` (``{}`` if absent; see ``rnnlab.analysis.report_provenance``)."""

    path: str
    name: str
    config: dict
    records: list[dict]
    provenance: dict = dataclasses.field(default_factory=dict)

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


def read_run(run_dir: str) -> Run:
    """Read ``config.json``, ``metrics.jsonl`` and ``provenance.json`` of ``run_dir`` (any may be missing)."""
    run_dir = os.path.normpath(run_dir)
    return Run(
        run_dir,
        os.path.basename(run_dir),
        _read_json(os.path.join(run_dir, "config.json")),
        _read_jsonl(os.path.join(run_dir, "metrics.jsonl")),
        _read_json(os.path.join(run_dir, "provenance.json")),
    )


def read_runs(run_dirs: Iterable[str]) -> list[Run]:
    return [read_run(d) for d in run_dirs]


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
    """``{seed: (steps [N], values [N])}`` of a scalar metric (non-numbers skipped; steps sorted, last
    wins)."""
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
