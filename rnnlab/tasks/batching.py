"""Seeded, resumable batching over random-access sources (TFDS array_record data sources, in-memory arrays).

The epoch order is a pure function of (seed, epoch): a Philox permutation, optionally length-bucketed, cut
into batches. The position is (epoch, batch), so `set_state` jumps to any batch without replaying earlier
ones.
Records of a prepared dataset are read through a `grain.MapDataset` (random access, no worker processes),
decoded per example, then padded together by a collate function; in-memory arrays are gathered directly.
Generated data (synthetic tasks) comes as `GeneratedBatches`: batch i is a pure function of (seed, i).

Shape legend: B batch, T time (padded to the batch max or a fixed `max_length`), D features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rnnlab.tasks.base import BatchIterator, philox

Example = dict[str, Any]
Batch = dict[str, np.ndarray]
TOKEN_FEATURES = ("chars", "case")  # optional per-token integer features of tagging examples (0 = padding)


# ------------------------------------------------------------------------------------------------ padding
def pad_to(seqs: Sequence[np.ndarray], length: int, pad_value, dtype) -> np.ndarray:
    """Stacks `seqs` (each `[L_i, ...]`) into `[N, length, ...]`, truncating or padding with `pad_value`."""
    trailing = np.asarray(seqs[0]).shape[1:] if len(seqs) else ()
    out = np.full((len(seqs), length, *trailing), pad_value, dtype=dtype)
    for i, s in enumerate(seqs):
        s = np.asarray(s)[:length]
        out[i, : len(s)] = s
    return out


def collate(
    examples: Sequence[Example], kind: str, *, max_length: int | None = None, pad_id: int = 0
) -> Batch:
    """Pads a list of examples into one batch.

    Each example has `inputs` (`[L]` int or `[L, D]` float) and `targets` (a scalar / `[k]` for
    classification and regression, `[L]` for tagging and lm, `[L']` for seq2seq, which also needs
    `decoder_inputs` `[L']`). An optional per-example `target_mask` `[L]` is padded with zeros, and so are
    the optional per-token features of tagging (`TOKEN_FEATURES`: `chars` `[L, Lc]`, `case` `[L]`).

    Args:
      kind: TaskInfo.kind.
      max_length: pad (and truncate) time to this length; None = the longest sequence in the batch.
      pad_id: pad value of int inputs and per-step targets (float inputs are padded with 0).

    Returns:
      batch with `inputs` `[B, T(, D)]`, `lengths` `[B]`, `targets`, and `target_mask` `[B, T]` for
      per-step kinds (and `chars` `[B, T, Lc]`, `case` `[B, T]` when the examples have them).
    """
    inputs = [np.asarray(e["inputs"]) for e in examples]
    lengths = np.array([len(x) for x in inputs], dtype=np.int32)
    T = int(max_length) if max_length is not None else int(lengths.max(initial=1))
    lengths = np.minimum(lengths, T)
    is_int = np.issubdtype(inputs[0].dtype, np.integer)
    batch = {
        "inputs": pad_to(inputs, T, pad_id if is_int else 0.0, np.int32 if is_int else np.float32),
        "lengths": lengths,
    }
    if kind in ("classification", "regression"):
        dtype = np.int32 if kind == "classification" else np.float32
        batch["targets"] = np.stack([np.asarray(e["targets"], dtype=dtype) for e in examples])
    elif kind in ("tagging", "lm"):
        batch["targets"] = pad_to([e["targets"] for e in examples], T, pad_id, np.int32)
        if "target_mask" in examples[0]:
            batch["target_mask"] = pad_to([e["target_mask"] for e in examples], T, 0.0, np.float32)
        else:
            batch["target_mask"] = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float32)
        for key in TOKEN_FEATURES:
            if key in examples[0]:
                batch[key] = pad_to([e[key] for e in examples], T, 0, np.int32)
    elif kind == "seq2seq":
        targets = [np.asarray(e["targets"]) for e in examples]
        tlen = np.array([len(t) for t in targets], dtype=np.int32)
        Tp = int(tlen.max(initial=1))
        batch["decoder_inputs"] = pad_to([e["decoder_inputs"] for e in examples], Tp, pad_id, np.int32)
        batch["targets"] = pad_to(targets, Tp, pad_id, np.int32)
        batch["target_lengths"] = tlen
        batch["target_mask"] = (np.arange(Tp)[None, :] < tlen[:, None]).astype(np.float32)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return batch


# ------------------------------------------------------------------------------------------------ sources
class ArraySource:
    """An in-memory random-access source: a dict of arrays with a common first axis N.

    `arrays[key][i]` is example i. Supports `len`, `source[i]` and `source.__getitems__(indices)`.
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        sizes = {len(v) for v in arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"arrays differ in length: { {k: len(v) for k, v in arrays.items()} }")
        self.arrays = arrays

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, i: int) -> Example:
        return {k: v[i] for k, v in self.arrays.items()}

    def __getitems__(self, indices: Sequence[int]) -> list[Example]:
        return [self[i] for i in indices]

    def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """All of `indices` at once: `{key: [len(indices), ...]}` (the fast path for fixed-shape data)."""
        return {k: v[indices] for k, v in self.arrays.items()}


# ------------------------------------------------------------------------------------------------ epoch plan
def epoch_plan(
    n: int,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    shuffle: bool = True,
    drop_remainder: bool = False,
    lengths: np.ndarray | None = None,
    bucket_batches: int = 0,
) -> list[np.ndarray]:
    """The batches of one epoch as index arrays; a pure function of its arguments.

    Args:
      n: number of examples.
      seed, epoch: key the Philox permutation (a different order every epoch).
      shuffle: permute examples (and, with bucketing, the batch order).
      drop_remainder: drop a last batch smaller than `batch_size`.
      lengths: `[n]` example lengths, needed for bucketing.
      bucket_batches: if > 1, sort each pool of `bucket_batches * batch_size` consecutive (shuffled) examples
        by length before cutting batches, so a batch holds similar lengths and pads less.
    """
    if n == 0:
        return []
    order = philox(seed, epoch, 0x5EED).permutation(n) if shuffle else np.arange(n)
    if bucket_batches > 1:
        if lengths is None:
            raise ValueError("length bucketing needs the example lengths")
        pool = bucket_batches * batch_size
        order = np.concatenate(
            [c[np.argsort(lengths[c], kind="stable")] for c in np.array_split(order, range(pool, n, pool))]
        )
    stop = n - n % batch_size if drop_remainder else n
    batches = [order[i : i + batch_size] for i in range(0, stop, batch_size)]
    if bucket_batches > 1 and shuffle:
        batches = [batches[i] for i in philox(seed, epoch, 0xB0C4).permutation(len(batches))]
    return batches


class _BatchedReads:
    """Exposes a source's `__getitems__` (TFDS data sources have it) as the `_getitems` grain looks for."""

    def __init__(self, source):
        self.source = source
        self.batched = hasattr(source, "__getitems__")

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        return self.source[i]

    def _getitems(self, indices):
        if self.batched:
            try:
                return list(self.source.__getitems__(indices))
            except TypeError:  # tfds.testing.mock_data's source has a broken __getitems__
                self.batched = False
        return [self.source[i] for i in indices]


def read_all(source, chunk: int = 4096) -> list:
    """Every record of `source`, read in batches (much faster than one by one for array_record)."""
    reader = _BatchedReads(source)
    return [
        r
        for i in range(0, len(source), chunk)
        for r in reader._getitems(list(range(i, min(i + chunk, len(source)))))
    ]


class Loader(BatchIterator):
    """Resumable batches over a random-access `source` (TFDS data source, `ArraySource`, any sequence).

    Position = (epoch, batch index within the epoch); `get_state()` records it (plus the configuration,
    checked on `set_state` so a state is never applied to a different pipeline).

    Args:
      source: supports `len(source)` and `source[i]`.
      batch_size: B.
      seed: shuffling seed.
      decode: example -> example with numpy `inputs` / `targets` (runs inside a grain map).
      collate_fn: list of decoded examples -> batch. Ignored when `gather_fn` is given.
      gather_fn: optional fast path `(indices [B]) -> batch` for in-memory fixed-shape data.
      num_epochs: None = endless.
      lengths: `[n]` example lengths, for bucketing.
      bucket_batches: see `epoch_plan`.
    """

    def __init__(
        self,
        source,
        batch_size: int,
        seed: int,
        *,
        decode: Callable[[Example], Example] | None = None,
        collate_fn: Callable[[list[Example]], Batch] | None = None,
        gather_fn: Callable[[np.ndarray], Batch] | None = None,
        num_epochs: int | None = None,
        shuffle: bool = True,
        drop_remainder: bool = False,
        lengths: np.ndarray | None = None,
        bucket_batches: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n = len(source)
        if self.n == 0:
            raise ValueError("the source is empty")
        self._ds = None
        if gather_fn is None:
            import grain  # ~2.5 s to import: only loaders that decode records need it

            ds = grain.MapDataset.source(_BatchedReads(source))
            self._ds = ds.map(decode) if decode is not None else ds
        self.collate_fn, self.gather_fn = collate_fn, gather_fn
        self.batch_size, self.seed, self.num_epochs = int(batch_size), int(seed), num_epochs
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        self.lengths, self.bucket_batches = lengths, int(bucket_batches)
        self.epoch, self.batch = 0, 0
        self._plan_epoch, self._plan = None, []

    def _config(self) -> dict:
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "drop_remainder": self.drop_remainder,
            "bucket_batches": self.bucket_batches,
        }

    def _plan_for(self, epoch: int) -> list[np.ndarray]:
        if self._plan_epoch != epoch:
            self._plan = epoch_plan(
                self.n,
                self.batch_size,
                self.seed,
                epoch,
                shuffle=self.shuffle,
                drop_remainder=self.drop_remainder,
                lengths=self.lengths,
                bucket_batches=self.bucket_batches,
            )
            self._plan_epoch = epoch
        return self._plan

    def batches_per_epoch(self) -> int:
        return len(self._plan_for(self.epoch))

    def __next__(self) -> Batch:
        while True:
            if self.num_epochs is not None and self.epoch >= self.num_epochs:
                raise StopIteration
            plan = self._plan_for(self.epoch)
            if self.batch < len(plan):
                break
            if not plan:  # drop_remainder with n < batch_size: nothing to yield, ever
                raise StopIteration
            self.epoch, self.batch = self.epoch + 1, 0
        idx = plan[self.batch]
        self.batch += 1
        if self.gather_fn is not None:
            return self.gather_fn(idx)
        # MapDataset._getitems reads a whole batch in one call when the source supports it (array_record)
        return self.collate_fn(list(self._ds._getitems([int(i) for i in idx])))

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "config": self._config()}

    def set_state(self, state: dict) -> None:
        if state.get("config", self._config()) != self._config():
            raise ValueError(
                f"iterator state was recorded for a different pipeline: {state['config']} != {self._config()}"
            )
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])


class GeneratedBatches(BatchIterator):
    """Endless generated batches; batch i is `generate(philox(seed, i), batch_size)`.

    Resuming sets the batch counter: nothing is replayed.
    """

    def __init__(self, generate: Callable[[np.random.Generator, int], Batch], batch_size: int, seed: int):
        self.generate, self.batch_size, self.seed = generate, int(batch_size), int(seed)
        self.index = 0

    def __next__(self) -> Batch:
        batch = self.generate(philox(self.seed, self.index), self.batch_size)
        self.index += 1
        return batch

    def get_state(self) -> dict:
        return {"batch": self.index, "seed": self.seed, "batch_size": self.batch_size}

    def set_state(self, state: dict) -> None:
        if (state.get("seed", self.seed), state.get("batch_size", self.batch_size)) != (
            self.seed,
            self.batch_size,
        ):
            raise ValueError(f"generator state {state} was recorded with another seed / batch size")
        self.index = int(state["batch"])
