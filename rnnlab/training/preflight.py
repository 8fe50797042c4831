"""Checks made before ``train_and_evaluate`` writes anything, so that a bad input fails at once with one
message and leaves the run directory untouched: the run directory itself, a config that differs from the one
saved there, and one abstract train step of the model on the task's first batch (``jax.eval_shape``: shapes
and dtypes only, nothing is compiled or run) — bad task parameters or cell options fail while the task and the
model are built, the ones that only show in the model's math (a head that does not fit the task, a backend
the cell lacks) fail here.

Shapes: **K** seeds, **B** batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import jax
import numpy as np

from rnnlab.training import config as config_lib


def check_workdir(workdir: str) -> None:
    """Raises ``NotADirectoryError`` when ``workdir`` or one of its parents is a file (it could not be
    created), and ``ValueError`` when it is empty."""
    if not str(workdir).strip():
        raise ValueError("workdir is empty: pass a run directory, e.g. --workdir runs/adding")
    path = os.path.abspath(workdir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        what = "is a file" if path == os.path.abspath(workdir) else f"is inside the file {path}"
        raise NotADirectoryError(
            f"workdir {workdir!r} {what}, not a directory: pass a new or existing run directory"
        )


def check_saved_config(workdir: str, config_file: str, config) -> None:
    """Raises ``ValueError`` when ``workdir`` holds a run whose saved config differs from ``config`` (apart
    from ``config_lib.RESUMABLE_CHANGES``)."""
    path = os.path.join(workdir, config_file)
    if not os.path.exists(path):
        return
    with open(path) as f:
        diffs = config_lib.config_diff(json.load(f), config)
    if diffs:
        raise ValueError(
            f"{workdir} holds a run with a different config ({'; '.join(diffs)}); use another "
            "--workdir, or delete this one to start over"
        )


def check_splits(task) -> None:
    """Raises ``ValueError`` unless ``task`` has the splits a run reads: 'train', 'validation' (evaluations
    during training, model selection) and 'test' (once, at the end)."""
    missing = [s for s in ("train", "validation", "test") if s not in task.splits]
    if missing:
        raise ValueError(
            f"task {task.info.name!r} has no {' or '.join(map(repr, missing))} split (it has "
            f"{', '.join(task.splits)}): a run trains on 'train', selects on 'validation' and tests on 'test'"
        )


def peek(iterator) -> dict[str, np.ndarray]:
    """The next batch of a resumable iterator, which is left where it was."""
    position = iterator.get_state()
    batch = next(iterator)
    iterator.set_state(position)
    return batch


def check_train_step(step, abstract_state, batch: Mapping[str, np.ndarray], task_name: str) -> None:
    """Traces ``step(state, batch)`` on shapes only; a ``ValueError`` raised while tracing (the model's or the
    loss's own checks) becomes a config error naming the task.

    Args:
      step: the pure train step (``rnnlab.training.steps.TrainStep``).
      abstract_state: ``jax.ShapeDtypeStruct`` leaves ``[K, ...]`` of the initial state.
      batch: a train batch (leaves ``[K, B, ...]``).
      task_name: for the message.
    """
    shapes = {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype) for k, v in batch.items()}
    try:
        jax.eval_shape(step, abstract_state, shapes)
    except ValueError as e:
        raise ValueError(f"invalid config:\n  - the model does not fit task {task_name!r}: {e}") from e
