"""The task contract shared by every task: `TaskInfo`, `Task`, `BatchIterator`, and small helpers.

Shape legend: **B** batch, **T** time, **D** input features, **V** vocabulary, **C** classes / outputs,
**T'** target steps, **N** label steps, **Lc** characters per token, **h x W** an image, **H x W** a frame.

A batch is a `dict` of NumPy arrays. Every kind has `inputs` and `lengths` (int32 `[B]`; steps
`>= lengths[b]` are padding); the other keys depend on `TaskInfo.kind`:

- 'classification': inputs float32 `[B, T, D]`, int32 token ids `[B, T]`, or video frames float32
  `[B, T, H, W]` (`TaskInfo.input_shape` = (T, H, W)); targets int32 `[B]`.
- 'regression': inputs float32 `[B, T, D]`; targets float32 `[B]` or `[B, k]`.
- 'tagging', 'lm': targets int32 `[B, T]`, target_mask float32 `[B, T]` (which steps count in the loss).
  A tagging task may add per-token integer features named in `TaskInfo.extra_inputs`, e.g. `chars` int32
  `[B, T, Lc]` (character ids, 0 = padding) and `case` int32 `[B, T]` (a case class, 0 = padding).
- 'seq2seq': inputs int32 `[B, T]`; decoder_inputs int32 `[B, T']` (<bos> + target), targets int32
  `[B, T']` (target + <eos>), target_lengths int32 `[B]`, target_mask float32 `[B, T']`.
- 'captioning': inputs float32 images `[B, h, W]` (`TaskInfo.input_shape` = (h, W)), lengths = the image
  widths in columns; decoder_inputs, targets, target_lengths, target_mask as for 'seq2seq'.
- 'ctc': inputs float32 frames `[B, T, D]`; targets int32 `[B, N]` labels in 1..C-1 (0 is the CTC blank,
  also used as padding), target_lengths int32 `[B]`.

Every task has the splits 'train', 'validation' and 'test': model selection (early stopping, sweeps) reads
'validation' only, so the test split stays unseen until the final report.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


class DataError(RuntimeError):
    """A dataset cannot be fetched, prepared or read (no network, missing or corrupt files); the message says
    what to do. A user's problem, not a bug: the CLI prints it as one line."""


KINDS = ("classification", "regression", "tagging", "lm", "seq2seq", "captioning", "ctc")
TOKEN_UNITS = ("char", "word")
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a model and a loss need to know about a task.

    Attributes:
      name: registry name.
      kind: one of `KINDS` (the module docstring lists each kind's batch keys and shapes).
      input_size: D when inputs are float `[B, T, D]`, else None.
      vocab_size: V when inputs are int32 token ids `[B, T]`, else None.
      num_outputs: C classes (classification / tagging / lm), output vocabulary (seq2seq / captioning), labels
        plus the blank (ctc), or regression dims.
      baseline: value of `baseline_metric` reached by a trivial predictor (see each task's docstring).
      baseline_metric: 'mse', 'loss' (cross-entropy, nats per counted step), 'accuracy', 'exact_match' or
        'label_error_rate' (edits per reference label, lower is better).
      pad_id: id used for padding token inputs and per-step targets.
      token_unit: what one predicted token is, for lm, seq2seq and captioning: 'char' (report bits per
        character) or 'word' (report perplexity and bits per word); None for tasks that predict no text.
      input_shape: the shape of one example's float `inputs` (without B) when they are images or video, not
        vectors: (h, W) for an image `[B, h, W]`, (T, H, W) for clips `[B, T, H, W]` (T = the padded number of
        frames; `lengths` holds the valid ones); else None.
      extra_inputs: integer batch keys a model may read besides `inputs`, each with its number of ids
        (embedding rows, padding id 0 included), e.g. {'chars': 90, 'case': 11}; empty for most tasks.
      label_names: the names of the C classes / tags (index = id) when the task has names, e.g. BIO tags
        ('O', 'B-person', ...), which a tagger's loss turns into entity scores; empty otherwise.
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
    input_shape: tuple[int, ...] | None = None
    # hash=False: a dict is unhashable, and the other fields already identify a task
    extra_inputs: Mapping[str, int] = dataclasses.field(default_factory=dict, hash=False)
    label_names: tuple[str, ...] = ()

    def __post_init__(self):
        check_choice("kind", self.kind, KINDS)
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
        given = [x is not None for x in (self.input_size, self.vocab_size, self.input_shape)]
        if sum(given) != 1:
            raise ValueError(f"{self.name}: exactly one of input_size / vocab_size / input_shape must be set")
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
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
