"""The base of tasks over prepared datasets (our builders and the TFDS catalog), and their trivial baselines.

A `DatasetTask` opens its dataset with `store.open_dataset` (prepared on first use), reads splits with
`store.open_split` (clear errors for missing / corrupt data; 'validation' carved from 'train' when the dataset
has none), decodes records into examples (`inputs`, `targets`, ...) inside a grain map, and pads them in
batches with `batching.collate`. Subclasses (one per task kind) define `kind`, `decode` and `_info`.
Baselines are computed from the data on first access of `info` (train statistics, scored on 'test').

Shape legend: B batch, T time, D features, V vocabulary, C classes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnnlab.tasks.base import Task, TaskInfo
from rnnlab.tasks.batching import Loader, collate, read_all
from rnnlab.tasks.splits import Subset
from rnnlab.tasks.store import DatasetSpec, open_dataset, open_split


def as_str(x) -> str:
    """A TFDS Text value (bytes without TensorFlow) as str."""
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


class DatasetTask(Task):
    """Base: the prepared dataset `dataset` (a `store.DatasetSpec`, config `config`) read from `data_dir`.

    'train' iterators drop a last partial batch (every training batch has B rows, so a jitted step compiles
    once per shape); other splits yield every example exactly once per epoch.

    Args:
      download: prepare the dataset on first use when it is not prepared yet (else: a RuntimeError saying
        how to prepare it).
      max_length: pad/truncate time to this length (default: the longest sequence in each batch).
      bucket_batches: > 1 groups examples of similar length into batches (see `batching.epoch_plan`).
      keep: `record -> bool`, the examples of the dataset that belong to the task (e.g. a length filter);
        None keeps every one without reading the split first.
    """

    kind = ""

    def __init__(
        self,
        name: str,
        dataset: DatasetSpec,
        *,
        config: str | None = None,
        data_dir=None,
        download: bool = True,
        max_length: int | None = None,
        bucket_batches: int = 0,
        keep: Callable[[dict], bool] | None = None,
    ):
        self.keep = keep
        self.name, self.dataset, self.config = name, dataset, dataset.config(config)
        self.data_dir, self.max_length, self.bucket_batches = data_dir, max_length, int(bucket_batches)
        self.builder = open_dataset(dataset, self.config, data_dir, download=download)
        self.splits = dataset.split_names
        self._sources, self._records = {}, {}
        self.source("train")  # fails early, and clearly, when the data cannot be read

    @property
    def data_path(self) -> Path:
        return Path(self.builder.data_dir)

    def source(self, split: str):
        """`split` as a random-access source of TFDS records (those `keep` accepts)."""
        if split not in self._sources:
            source = open_split(self.dataset, self.builder, split)
            if self.keep is not None:
                source = Subset(source, [i for i, r in enumerate(read_all(source)) if self.keep(r)])
            self._sources[split] = source
        return self._sources[split]

    def records(self, split: str) -> list[dict]:
        """All records of `split`, decoded by TFDS (cached: used for vocabularies and baselines)."""
        if split not in self._records:
            self._records[split] = read_all(self.source(split))
        return self._records[split]

    @functools.cached_property
    def info(self) -> TaskInfo:
        return self._info()

    def decode(self, record: dict) -> dict:
        raise NotImplementedError

    def _info(self) -> TaskInfo:
        raise NotImplementedError

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True):
        self.check_split(split)
        src = self.source(split)
        lengths = None
        if self.bucket_batches > 1:
            lengths = np.array([len(self.decode(r)["inputs"]) for r in self.records(split)])
        return Loader(
            src,
            batch_size,
            seed,
            decode=self.decode,
            collate_fn=functools.partial(collate, kind=self.kind, max_length=self.max_length, pad_id=0),
            num_epochs=num_epochs,
            shuffle=shuffle,
            drop_remainder=split == "train",
            lengths=lengths,
            bucket_batches=self.bucket_batches,
        )


def majority_accuracy(train_labels, test_labels) -> float:
    """Accuracy on `test_labels` of always predicting the most frequent train label."""
    train_labels, test_labels = np.asarray(train_labels).ravel(), np.asarray(test_labels).ravel()
    majority = np.bincount(train_labels).argmax()
    return float(np.mean(test_labels == majority)) if len(test_labels) else float("nan")


def unigram_loss(train_ids, test_ids, vocab_size: int) -> float:
    """Cross-entropy (nats per token) on `test_ids` of add-one-smoothed train unigram frequencies."""
    counts = np.bincount(np.asarray(train_ids).ravel(), minlength=vocab_size)[:vocab_size] + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.asarray(test_ids).ravel()].mean())
