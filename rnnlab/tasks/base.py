"""Task contract shared by every task: `TaskInfo`, `Task`, `BatchIterator`, and the task registry.

Shape legend: **B** batch, **T** time, **D** input features, **V** vocabulary, **C** classes / outputs.

A batch is a `dict` of NumPy arrays:

- `inputs`: float32 `[B, T, D]` or int32 token ids `[B, T]`
- `lengths`: int32 `[B]` (steps `>= lengths[b]` are padding)
- `targets`: int32 `[B]` (classification), float32 `[B]` / `[B, k]` (regression),
  int32 `[B, T]` (tagging, lm) or `[B, T']` (seq2seq)
- `target_mask` (optional): float32 `[B, T]`, which steps count in a per-step loss
- seq2seq adds `decoder_inputs` int32 `[B, T']` and `target_lengths` int32 `[B]`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("classification", "regression", "tagging", "lm", "seq2seq")


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a model and a loss need to know about a task.

    Attributes:
      name: registry name.
      kind: one of `KINDS`.
      input_size: D when inputs are float `[B, T, D]`, else None.
      vocab_size: V when inputs are int32 token ids `[B, T]`, else None.
      num_outputs: C classes (classification / tagging / lm / seq2seq) or regression dims.
      baseline: value of `baseline_metric` reached by a trivial predictor (see each task's docstring).
      baseline_metric: 'mse', 'loss' (cross-entropy, nats per counted step) or 'accuracy'.
      pad_id: id used for padding token inputs and per-step targets.
    """

    name: str
    kind: str
    input_size: int | None
    vocab_size: int | None
    num_outputs: int
    baseline: float | None
    baseline_metric: str
    pad_id: int = 0

    def __post_init__(self):
        check_choice("kind", self.kind, KINDS)
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError(f"{self.name}: exactly one of input_size / vocab_size must be set")


class BatchIterator:
    """A Python iterator of batches with a resumable position.

    Subclasses implement `__next__`, `get_state` and `set_state`; `set_state(get_state())` resumes at
    exactly the batch that would have come next.
    """

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def get_state(self) -> dict:
        raise NotImplementedError

    def set_state(self, state: dict) -> None:
        raise NotImplementedError


class Task:
    """A task: a `TaskInfo` and seeded, resumable batch iterators for its splits."""

    info: TaskInfo
    splits: tuple[str, ...] = ("train", "test")

    def iterator(
        self, split: str, batch_size: int, seed: int, *, num_epochs: int | None = None, shuffle: bool = True
    ) -> BatchIterator:
        """Returns an iterator of batches of `split`.

        Args:
          split: one of `self.splits`.
          batch_size: B.
          seed: seeds shuffling (and generation for synthetic tasks).
          num_epochs: passes over the split; None = endless.
          shuffle: shuffle the example order (each epoch differently).
        """
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        check_choice("split", split, self.splits, context=self.info.name)


def check_choice(what: str, value: Any, valid: Iterable, context: str = "") -> None:
    """Raises ValueError naming the valid choices when `value` is not one of them."""
    valid = list(valid)
    if value not in valid:
        where = f" for {context}" if context else ""
        raise ValueError(f"unknown {what} {value!r}{where}; valid: {', '.join(map(str, valid))}")


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir`, else `$RNNLAB_DATA_DIR`, else `~/.cache/rnnlab/data`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("RNNLAB_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnlab" / "data"


def philox(seed: int, *stream: int) -> np.random.Generator:
    """A NumPy Philox generator keyed by (seed, *stream), e.g. (seed, batch index): streams are
    independent and need no sequential state, so resuming a stream only needs its index."""
    entropy = [int(x) & 0xFFFFFFFFFFFFFFFF for x in (seed, *stream)]
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(entropy)))


# ---------------------------------------------------------------------------------------------------------
# Registry: name -> factory(**params) -> Task.  Factories declare their parameters by keyword; get_task
# checks them against the signature so that a typo fails loudly instead of being ignored.

_REGISTRY: dict[str, tuple[Callable[..., Task], str]] = {}


def register_task(name: str, description: str):
    def wrap(factory):
        _REGISTRY[name] = (factory, description)
        return factory

    return wrap


def _task_params(factory) -> list[str]:
    import inspect

    return [
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def get_task(name: str, **params) -> Task:
    """Builds the task `name` with `params`; unknown names or parameters raise ValueError listing valid ones."""
    _ensure_registered()
    check_choice("task", name, sorted(_REGISTRY))
    factory, _ = _REGISTRY[name]
    valid = _task_params(factory)
    for key in params:
        check_choice("parameter", key, valid, context=f"task {name!r}")
    return factory(**params)


def list_tasks() -> list[str]:
    """Sorted names accepted by `get_task`."""
    _ensure_registered()
    return sorted(_REGISTRY)


def task_description(name: str) -> str:
    _ensure_registered()
    return _REGISTRY[name][1]


def _ensure_registered():
    # Importing the modules runs their @register_task decorators.
    from rnnlab.tasks import catalog, offline, synthetic  # noqa: F401
