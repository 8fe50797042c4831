"""Adapters: what differs between kinds of training, around ONE loop (``rnnlab.training.loop``).

An adapter says how the model is called on a batch (``forward``), where train and test batches come from, what
is carried from one batch to the next, and which metrics only the end of a run computes. ``Adapter`` itself is
the plain case (classification, regression, tagging, language models on independent windows);
``rnnlab.training.tbptt.TBPTT`` carries the recurrent state across contiguous chunks and
``rnnlab.training.seq2seq.EncoderDecoder`` teacher-forces an encoder-decoder and decodes at the end.

Shapes: **K** seeds, **B** batch, **T** time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Adapter:
    """The plain case: independent batches, nothing carried, no end-of-run metrics.

    Attributes:
      model: the Flax module; called as ``model.apply(variables, inputs, lengths, train=..., rngs=...)``.
      features: (keyword only) batch keys passed on as a third argument ``{key: batch[key]}`` (a tagger's
        per-token features, ``TaskInfo.extra_inputs``); none by default.
    """

    model: Any
    features: tuple[str, ...] = dataclasses.field(
        default=(), kw_only=True
    )  # subclasses add positional fields

    def forward(self, params, batch, *, train: bool, rngs=None, carry=None) -> tuple[Any, Any]:
        """The model's outputs ``[B, C]`` or ``[B, T, C]`` for ``batch``, and ``carry`` unchanged."""
        extra = ({k: batch[k] for k in self.features},) if self.features else ()
        outputs = self.model.apply(
            {"params": params}, batch["inputs"], batch["lengths"], *extra, train=train, rngs=rngs
        )
        return outputs, carry

    def train_iterator(self, task, batch_size: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """One seed's endless, resumable stream of train batches (leaves ``[B, ...]``)."""
        return task.iterator("train", batch_size, seed)

    def initial_carry(self, batch_size: int, num_seeds: int) -> Any:
        """What the first batch starts from (leaves ``[K, B, ...]``); None: nothing is carried."""
        return None

    def eval_batches(self, task, batch_size: int, split: str = "test") -> Iterator[dict[str, np.ndarray]]:
        """``split`` once, in order, in batches of exactly ``batch_size`` (one compiled eval step): the last
        one is padded and its ``example_mask`` marks the real examples."""
        for batch in task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False):
            yield pad_batch(batch, batch_size)

    def final_metrics(self, task, params, batch_size: int) -> dict[str, float]:
        """Metrics computed once at the end of a run from one seed's ``params`` (no seed axis); none here."""
        return {}


def pad_batch(batch: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """A short final eval batch -> ``size`` examples with ``example_mask`` ``[B]`` marking the real ones."""
    n = len(batch["lengths"])
    out = {
        k: np.concatenate([v, np.repeat(v[:1], size - n, axis=0)]) if n < size else v
        for k, v in batch.items()
    }
    out["example_mask"] = (np.arange(size) < n).astype(np.float32)
    return out
