"""The task contract shared by every task: `TaskInfo`, `Task`, `BatchIterator`, and small helpers.

Shape legend: **B** batch, **T** time, **D** input features, **V** vocabulary, **C** classes / outputs.

A batch is a `dict` of NumPy arrays:

- `inputs`: float32 `[B, T, D]` or int32 token ids `[B, T]`
- `lengths`: int32 `[B]` (steps `>= lengths[b]` are padding)
- `targets`: int32 `[B]` (classification), float32 `[B]` / `[B, k]` (regression),
  int32 `[B, T]` (tagging, lm) or `[B, T']` (seq2seq)
- `target_mask` (optional): float32 `[B, T]`, which steps count in a per-step loss
- seq2seq adds `decoder_inputs` int32 `[B, T']` and `target_lengths` int32 `[B]`.

Every task has the splits 'train', 'validation' and 'test': model selection (early stopping, sweeps) reads
'validation' only, so the test split stays unseen until the final report.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("classification", "regression", "tagging", "lm", "seq2seq")
TOKEN_UNITS = ("char", "word")
SPLITS = ("train", "validation", "test")


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
      token_unit: what one predicted token is, for lm and seq2seq: 'char' (report bits per character) or
        'word' (report perplexity and bits per word); None for tasks that predict no text.
    """

    name: str
    kind: str
    input_size: int | None
    vocab_size: int | None
    num_outputs: int
    baseline: float | None
    baseline_metric: str
    pad_id: int = 0
    token_unit: str | None = None

    def __post_init__(self):
        check_choice("kind", self.kind, KINDS)
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError(f"{self.name}: exactly one of input_size / vocab_size must be set")
        if self.token_unit is not None:
            check_choice("token_unit", self.token_unit, TOKEN_UNITS, context=self.name)


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
    splits: tuple[str, ...] = SPLITS

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
