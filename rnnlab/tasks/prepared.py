"""Tasks over prepared TFDS datasets (offline builders and the TFDS catalog), one class per task kind.

Each task opens its splits with `datasets.open_split` (clear errors for missing / corrupt data), decodes records
into examples (`inputs`, `targets`, ...) inside a grain map, and pads them in batches with `pipeline.collate`.
Vocabularies are built from the train split and cached as JSON in the prepared dataset's directory.
Baselines are computed from the data on first access of `info` (train statistics, scored on 'test').

Shape legend: B batch, T time, D features, V vocabulary, C classes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnnlab.tasks import text as textlib
from rnnlab.tasks.base import BatchIterator, Task, TaskInfo, philox
from rnnlab.tasks.datasets import make_builder, open_split
from rnnlab.tasks.pipeline import ArraySource, Loader, collate, read_all


def _str(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


class DatasetTask(Task):
    """Base: a prepared dataset `dataset` ('NAME' or 'NAME/CONFIG') read from `data_dir`.

    'train' iterators drop a last partial batch (every training batch has B rows, so a jitted step compiles
    once per shape); other splits yield every example exactly once per epoch.

    Subclasses define `kind`, `decode(record) -> example` and `_info()`.

    Args:
      max_length: pad/truncate time to this length (default: the longest sequence in each batch).
      bucket_batches: > 1 groups examples of similar length into batches (see `pipeline.epoch_plan`).
    """

    kind = ""

    def __init__(
        self,
        name: str,
        dataset: str,
        *,
        data_dir=None,
        max_length: int | None = None,
        bucket_batches: int = 0,
    ):
        self.name, self.dataset, self.data_dir = name, dataset, data_dir
        self.max_length, self.bucket_batches = max_length, int(bucket_batches)
        self.builder = make_builder(dataset, data_dir)
        self._sources, self._records = {}, {}
        train = self.source("train")  # fails early, and clearly, when the data is not prepared
        del train
        self.splits = tuple(self.builder.info.splits.keys()) or ("train", "test")

    @property
    def data_path(self) -> Path:
        return Path(self.builder.data_dir)

    def source(self, split: str):
        if split not in self._sources:
            self._sources[split] = open_split(self.builder, None, split)
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


# ------------------------------------------------------------------------------------------------ text
class TextClassificationTask(DatasetTask):
    """Text -> class. inputs int32 `[B, T]` word ids, targets int32 `[B]`. Baseline: majority-class accuracy."""

    kind = "classification"

    def __init__(
        self,
        name,
        dataset,
        *,
        text_key="text",
        label_key="label",
        level="word",
        lowercase=True,
        min_count=2,
        **kwargs,
    ):
        super().__init__(name, dataset, **kwargs)
        self.text_key, self.label_key = text_key, label_key
        self.vocab = textlib.load_or_build(
            self.data_path / f"vocab_{level}_min{min_count}{'_lower' if lowercase else ''}.json",
            lambda: (_str(r[text_key]) for r in self.records("train")),
            level,
            min_count=min_count,
            lowercase=lowercase,
        )

    def decode(self, record):
        return {
            "inputs": self.vocab.encode(_str(record[self.text_key])),
            "targets": int(record[self.label_key]),
        }

    def _info(self):
        labels = {s: [int(r[self.label_key]) for r in self.records(s)] for s in ("train", "test")}
        n = self.builder.info.features[self.label_key].num_classes
        return TaskInfo(
            self.name,
            self.kind,
            None,
            len(self.vocab),
            n,
            majority_accuracy(labels["train"], labels["test"]),
            "accuracy",
        )


class TaggingTask(DatasetTask):
    """Tokens -> one tag per token. inputs int32 `[B, T]`, targets int32 `[B, T]`, target_mask = valid steps.
    Baseline: accuracy of always predicting the most frequent train tag."""

    kind = "tagging"

    def __init__(
        self, name, dataset, *, tokens_key="tokens", tags_key="tags", lowercase=True, min_count=2, **kwargs
    ):
        super().__init__(name, dataset, **kwargs)
        self.tokens_key, self.tags_key = tokens_key, tags_key
        self.vocab = textlib.load_or_build(
            self.data_path / f"vocab_tokens_min{min_count}{'_lower' if lowercase else ''}.json",
            lambda: ([_str(t) for t in r[tokens_key]] for r in self.records("train")),
            "space",
            min_count=min_count,
            lowercase=lowercase,
        )

    def decode(self, record):
        return tag_example(record[self.tokens_key], record[self.tags_key], self.vocab)

    def _info(self):
        tags = {
            s: np.concatenate([np.asarray(r[self.tags_key], np.int64) for r in self.records(s)])
            for s in ("train", "test")
        }
        feature = self.builder.info.features[self.tags_key]
        n = getattr(feature, "feature", feature).num_classes
        return TaskInfo(
            self.name,
            self.kind,
            None,
            len(self.vocab),
            n,
            majority_accuracy(tags["train"], tags["test"]),
            "accuracy",
        )


def tag_example(tokens, tags, vocab: textlib.Vocabulary) -> dict:
    """(tokens `[L]` str/bytes, tags `[L]` int) -> {'inputs': ids `[L]`, 'targets': tags `[L]`} (both cut to the
    shorter length, which only differs in TFDS mock data)."""
    n = min(len(tokens), len(tags))
    return {
        "inputs": vocab.encode([_str(t) for t in list(tokens)[:n]]),
        "targets": np.asarray(tags, dtype=np.int32)[:n],
    }


class LanguageModelTask(DatasetTask):
    """Next-token prediction on a split's concatenated text, cut into windows of `length` (+1) tokens.

    inputs int32 `[B, length]`, targets = inputs shifted by one. Records are chunks ordered by `index_key`
    (TFDS stores them shuffled) or, without one, in stored order. Baseline: unigram cross-entropy (nats/token).
    """

    kind = "lm"

    def __init__(
        self,
        name,
        dataset,
        *,
        length=128,
        level="char",
        text_key="text",
        index_key="index",
        separator="",
        **kwargs,
    ):
        self.length, self.level, self.text_key, self.index_key = int(length), level, text_key, index_key
        self.separator = separator  # appended to every record (e.g. ' <eos> ' between PTB sentences)
        super().__init__(name, dataset, **kwargs)
        self.vocab = textlib.load_or_build(
            self.data_path / f"vocab_{level}.json", lambda: [self.text("train")], level
        )
        self._ids = {}

    def text(self, split: str) -> str:
        recs = self.records(split)
        if self.index_key and recs and self.index_key in recs[0]:
            recs = sorted(recs, key=lambda r: int(r[self.index_key]))
        return "".join(_str(r[self.text_key]) + self.separator for r in recs)

    def ids(self, split: str) -> np.ndarray:
        if split not in self._ids:
            self._ids[split] = self.vocab.encode(self.text(split))
        return self._ids[split]

    def windows(self, split: str) -> ArraySource:
        ids = self.ids(split)
        n = max(0, (len(ids) - 1) // self.length)
        if n == 0:
            raise ValueError(
                f"{self.name} {split}: {len(ids)} tokens is shorter than one window of {self.length}"
            )
        x = ids[: n * self.length].reshape(n, self.length)
        y = ids[1 : n * self.length + 1].reshape(n, self.length)
        return ArraySource({"inputs": x, "targets": y})

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True, stream=False):
        """Shuffled windows, or with `stream=True` consecutive chunks of B contiguous streams for truncated
        BPTT (`StreamChunks`)."""
        self.check_split(split)
        if stream:
            return StreamChunks(
                self.ids(split),
                batch_size,
                self.length,
                seed,
                num_epochs=num_epochs,
                shuffle=shuffle,
                drop_remainder=split == "train",
            )
        src = self.windows(split)

        def gather(idx):
            b = src.gather(idx)
            B = len(idx)
            return {
                **b,
                "lengths": np.full(B, self.length, np.int32),
                "target_mask": np.ones((B, self.length), np.float32),
            }

        return Loader(
            src,
            batch_size,
            seed,
            gather_fn=gather,
            num_epochs=num_epochs,
            shuffle=shuffle,
            drop_remainder=split == "train",
        )

    def _info(self):
        V = len(self.vocab)
        return TaskInfo(
            self.name, self.kind, None, V, V, unigram_loss(self.ids("train"), self.ids("test"), V), "loss"
        )


class StreamChunks(BatchIterator):
    """Batches for truncated BPTT: the token stream `ids` is cut into B contiguous rows and batch i holds chunk i
    of every row, so row b of batch i + 1 continues row b of batch i (carry the RNN state across batches).

    Each batch: inputs, targets int32 `[B, length]` (targets = the next tokens), lengths int32 `[B]`,
    target_mask float32 `[B, length]`, reset int32 `[B]` (1 on an epoch's first chunk: the carry restarts from
    zero there). With `shuffle`, epoch e starts the stream at a Philox(seed, e) offset in [0, length), so chunk
    boundaries move between epochs. `drop_remainder` (train) drops a last partial chunk; otherwise it is padded
    (lengths and target_mask mark its valid steps). Position = (epoch, chunk): resumes exactly.
    """

    def __init__(
        self,
        ids,
        batch_size: int,
        length: int,
        seed: int,
        *,
        num_epochs=None,
        shuffle=True,
        drop_remainder=True,
    ):
        self.ids, self.batch_size, self.length = np.asarray(ids, np.int32), int(batch_size), int(length)
        self.seed, self.num_epochs, self.shuffle, self.drop_remainder = (
            int(seed),
            num_epochs,
            shuffle,
            drop_remainder,
        )
        self.epoch, self.chunk = 0, 0
        if self._per_row(0) < (self.length if drop_remainder else 1):
            raise ValueError(
                f"{len(self.ids)} tokens cannot fill {self.batch_size} streams of at least "
                f"{self.length if drop_remainder else 1} steps; use a smaller batch or length"
            )

    def _offset(self, epoch: int) -> int:
        return int(philox(self.seed, epoch, 0x57EA).integers(self.length)) if self.shuffle else 0

    def _per_row(self, epoch: int) -> int:
        return (len(self.ids) - self._offset(epoch) - 1) // self.batch_size

    def chunks_per_epoch(self, epoch: int = 0) -> int:
        n = self._per_row(epoch)
        return n // self.length if self.drop_remainder else -(-n // self.length)

    def __next__(self):
        if self.chunk >= self.chunks_per_epoch(self.epoch):
            self.epoch, self.chunk = self.epoch + 1, 0
        if self.num_epochs is not None and self.epoch >= self.num_epochs:
            raise StopIteration
        B, L, off, n = self.batch_size, self.length, self._offset(self.epoch), self._per_row(self.epoch)
        rows = self.ids[off : off + B * n + 1]
        start, stop = self.chunk * L, min((self.chunk + 1) * L, n)
        x = rows[:-1].reshape(B, n)[:, start:stop]
        y = rows[1:].reshape(B, n)[:, start:stop]
        valid = stop - start
        pad = ((0, 0), (0, L - valid))
        batch = {
            "inputs": np.pad(x, pad),
            "targets": np.pad(y, pad),
            "lengths": np.full(B, valid, np.int32),
            "target_mask": np.pad(np.ones((B, valid), np.float32), pad),
            "reset": np.full(B, int(self.chunk == 0), np.int32),
        }
        self.chunk += 1
        return batch

    def _config(self) -> dict:
        return {
            "n": len(self.ids),
            "batch_size": self.batch_size,
            "length": self.length,
            "seed": self.seed,
            "shuffle": bool(self.shuffle),
            "drop_remainder": bool(self.drop_remainder),
        }

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "chunk": self.chunk, "config": self._config()}

    def set_state(self, state: dict) -> None:
        if state.get("config", self._config()) != self._config():
            raise ValueError(
                f"stream state was recorded for a different stream: {state['config']} != {self._config()}"
            )
        self.epoch, self.chunk = int(state["epoch"]), int(state["chunk"])


# ------------------------------------------------------------------------------------------------ numeric
class SequenceClassificationTask(DatasetTask):
    """Float sequences -> class: inputs float32 `[B, T, D]` from `to_inputs(record)`, targets int32 `[B]`.
    Baseline: majority-class accuracy."""

    kind = "classification"

    def __init__(
        self,
        name,
        dataset,
        *,
        to_inputs: Callable[[dict], np.ndarray],
        input_size: int,
        label_key="label",
        **kwargs,
    ):
        super().__init__(name, dataset, **kwargs)
        self.to_inputs, self.input_size, self.label_key = to_inputs, input_size, label_key

    def decode(self, record):
        return {"inputs": self.to_inputs(record), "targets": int(record[self.label_key])}

    def _info(self):
        labels = {s: [int(r[self.label_key]) for r in self.records(s)] for s in ("train", "test")}
        n = self.builder.info.features[self.label_key].num_classes
        return TaskInfo(
            self.name,
            self.kind,
            self.input_size,
            None,
            n,
            majority_accuracy(labels["train"], labels["test"]),
            "accuracy",
        )


def pixel_sequence(pixels: np.ndarray, *, pixels_per_step: int = 1, permutation: np.ndarray | None = None):
    """uint8 image (any shape, 784 values) -> float32 `[784 / pixels_per_step, pixels_per_step]` in [0, 1],
    in raster order or permuted by `permutation`."""
    x = np.asarray(pixels, dtype=np.float32).reshape(-1) / 255.0
    if permutation is not None:
        x = x[permutation]
    return x.reshape(-1, pixels_per_step)


def mnist_permutation(seed: int = 0, size: int = 784) -> np.ndarray:
    """The fixed pixel permutation of permuted sequential MNIST (the same for every run with `seed`)."""
    return philox(seed, 0x9E5).permutation(size)


class ForecastTask(DatasetTask):
    """Forecasting the next `horizon` values of a univariate series: inputs float32 `[B, window, 1]` (values
    standardised with the train mean / std), targets float32 `[B]` (horizon 1: the next value) or `[B, k]`
    (horizon k: the next k values; num_outputs = k). A window belongs to the split holding all its targets
    (its inputs may reach back into the previous split). `relative=True` subtracts each window's last value
    from its inputs and targets (the model forecasts changes, so a trending series needs no extrapolation of
    levels; errors are unchanged: predictions and targets shift together). Baseline: MSE of the naive forecast
    (the last value repeated), or of the seasonal-naive one (the value one `season` earlier) when `season` is
    set and fits in the window; both are in `baseline_forecasts`."""

    kind = "regression"

    def __init__(
        self,
        name,
        dataset,
        *,
        window=20,
        season: int | None = None,
        horizon: int = 1,
        relative: bool = False,
        **kwargs,
    ):
        super().__init__(name, dataset, **kwargs)
        self.window, self.season, self.horizon = int(window), season, int(horizon)
        self.relative = bool(relative)
        if self.horizon < 1:
            raise ValueError(f"{name}: horizon must be >= 1, got {horizon}")
        parts = {s: sorted((int(r["t"]), float(r["value"])) for r in self.records(s)) for s in self.splits}
        train = np.array([v for _, v in parts["train"]])
        self.mean, self.std = float(train.mean()), float(train.std() or 1.0)
        allv = sorted(p for s in self.splits for p in parts[s])
        self.series = (np.array([v for _, v in allv], np.float32) - self.mean) / self.std
        self.targets_of = {}  # split -> first target index t of each window (targets t .. t + horizon - 1)
        for s in self.splits:
            ts = {t for t, _ in parts[s]}
            self.targets_of[s] = np.array(
                [t for t, _ in parts[s] if t >= self.window and t + self.horizon - 1 in ts], np.int64
            )

    def _shape(self, t, y):
        """`[N, k]` forecasts of the targets of windows `t` -> the task's target layout (relative, `[N]` if k=1)."""
        if self.relative:
            y = y - self.series[t - 1][:, None]
        return (y[:, 0] if self.horizon == 1 else y).astype(np.float32)

    def windows(self, split):
        t = self.targets_of[split]
        if len(t) == 0:
            raise ValueError(
                f"{self.name} {split}: no window of {self.window} values followed by "
                f"{self.horizon} target(s) in this split"
            )
        x = self.series[t[:, None] + np.arange(-self.window, 0)[None, :]]
        if self.relative:
            x = x - x[:, -1:]
        return ArraySource(
            {
                "inputs": x[..., None],
                "targets": self._shape(t, self.series[t[:, None] + np.arange(self.horizon)[None, :]]),
            }
        )

    def baseline_forecasts(self, split="test", season: int | None = None) -> dict[str, np.ndarray]:
        """Trivial forecasts of `split`'s targets (same shape as them): 'naive' (the last input value) and, with
        a season m (`season` or the task's), 'seasonal_naive' (y[t+j] ~ y[t+j-m*(j//m+1)], the same point of
        the last observed season, which may lie before the window)."""
        t = self.targets_of[split]
        j = np.arange(self.horizon)[None, :]
        out = {"naive": np.repeat(self.series[t - 1][:, None], self.horizon, axis=1)}
        m = season or self.season
        if m:
            idx = t[:, None] + j - m * (j // m + 1)
            out["seasonal_naive"] = np.where(idx >= 0, self.series[np.maximum(idx, 0)], np.nan)
        return {k: self._shape(t, v) for k, v in out.items()}

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True):
        self.check_split(split)
        src = self.windows(split)

        def gather(idx):
            b = src.gather(idx)
            return {**b, "lengths": np.full(len(idx), self.window, np.int32)}

        return Loader(
            src,
            batch_size,
            seed,
            gather_fn=gather,
            num_epochs=num_epochs,
            shuffle=shuffle,
            drop_remainder=split == "train",
        )

    def _info(self):
        targets = self.windows("test").arrays["targets"]
        preds = self.baseline_forecasts("test")
        pred = preds["seasonal_naive"] if self.season and self.season <= self.window else preds["naive"]
        return TaskInfo(
            self.name, self.kind, 1, None, self.horizon, float(np.mean((pred - targets) ** 2)), "mse"
        )


# ------------------------------------------------------------------------------------------------ seq2seq
BOS, EOS = "<bos>", "<eos>"


class Seq2SeqTask(DatasetTask):
    """Source text -> target text, word level, one vocabulary per side (built on train).

    inputs int32 `[B, T]` source ids; decoder_inputs `[B, T']` = <bos> + target; targets `[B, T']` = target +
    <eos>; target_lengths `[B]`. Baseline: unigram cross-entropy of the targets (nats per target token).
    """

    kind = "seq2seq"

    def __init__(self, name, dataset, *, source_key, target_key, **kwargs):
        super().__init__(name, dataset, **kwargs)
        self.source_key, self.target_key = source_key, target_key
        self.vocabs = {
            key: textlib.load_or_build(
                self.data_path / f"vocab_{key}.json",
                lambda key=key: (_str(r[key]) for r in self.records("train")),
                "word",
                lowercase=True,
                extra_specials=(BOS, EOS),
            )
            for key in (source_key, target_key)
        }

    @property
    def vocab(self):
        return self.vocabs[self.source_key]

    def decode(self, record):
        tv = self.vocabs[self.target_key]
        tgt = tv.encode(_str(record[self.target_key]))
        bos, eos = np.int32(tv.id(BOS)), np.int32(tv.id(EOS))
        return {
            "inputs": self.vocabs[self.source_key].encode(_str(record[self.source_key])),
            "decoder_inputs": np.concatenate([[bos], tgt]).astype(np.int32),
            "targets": np.concatenate([tgt, [eos]]).astype(np.int32),
        }

    def _info(self):
        tv = self.vocabs[self.target_key]
        ids = {
            s: np.concatenate([self.decode(r)["targets"] for r in self.records(s)]) for s in ("train", "test")
        }
        V = len(self.vocab)
        return TaskInfo(
            self.name, self.kind, None, V, len(tv), unigram_loss(ids["train"], ids["test"], len(tv)), "loss"
        )
