"""Tasks that label a whole sequence or each of its steps: text and sequence classification, tagging.

Vocabularies are built from the train split and cached as JSON in the prepared dataset's directory.
Shape legend: B batch, T time, D features, C classes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnlab.tasks.base import TaskInfo, philox
from rnnlab.tasks.dataset_task import DatasetTask, as_str, majority_accuracy
from rnnlab.tasks.token_features import CASE_CLASSES, CHAR_MIN_COUNT, case_classes, char_ids
from rnnlab.tasks.vocab import Vocabulary, load_or_build


class TextClassificationTask(DatasetTask):
    """Text -> class: inputs int32 `[B, T]` word ids, targets int32 `[B]`. Baseline: majority-class
    accuracy."""

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
        self.vocab = load_or_build(
            self.data_path / f"vocab_{level}_min{min_count}{'_lower' if lowercase else ''}.json",
            lambda: (as_str(r[text_key]) for r in self.records("train")),
            level,
            min_count=min_count,
            lowercase=lowercase,
        )

    def decode(self, record):
        return {
            "inputs": self.vocab.encode(as_str(record[self.text_key])),
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
    Baseline: accuracy of always predicting the most frequent train tag.

    Optional per-token features (`token_features`), named with their sizes in `TaskInfo.extra_inputs`:
    `chars=True` adds `chars` int32 `[B, T, max_token_chars]` (character ids of the original-case token from a
    train character vocabulary, 0 = padding, 1 = unknown); `case=True` adds `case` int32 `[B, T]` (a
    `CASE_CLASSES` id, 0 = padding). The word ids do not change.
    """

    kind = "tagging"

    def __init__(
        self,
        name,
        dataset,
        *,
        tokens_key="tokens",
        tags_key="tags",
        lowercase=True,
        min_count=2,
        chars=False,
        case=False,
        max_token_chars=20,
        **kwargs,
    ):
        super().__init__(name, dataset, **kwargs)
        self.tokens_key, self.tags_key = tokens_key, tags_key
        self.vocab = load_or_build(
            self.data_path / f"vocab_tokens_min{min_count}{'_lower' if lowercase else ''}.json",
            lambda: ([as_str(t) for t in r[tokens_key]] for r in self.records("train")),
            "space",
            min_count=min_count,
            lowercase=lowercase,
        )
        self.char_vocab = None
        if chars:  # case-sensitive: capitals are what the lower-cased word ids lose
            self.char_vocab = load_or_build(
                self.data_path / f"vocab_chars_min{CHAR_MIN_COUNT}.json",
                lambda: (list("".join(as_str(t) for t in r[tokens_key])) for r in self.records("train")),
                "char",
                min_count=CHAR_MIN_COUNT,
            )
        self.case, self.max_token_chars = bool(case), int(max_token_chars)

    def decode(self, record):
        example = tag_example(record[self.tokens_key], record[self.tags_key], self.vocab)
        tokens = [as_str(t) for t in list(record[self.tokens_key])[: len(example["targets"])]]
        if self.char_vocab is not None:
            example["chars"] = char_ids(tokens, self.char_vocab, self.max_token_chars)
        if self.case:
            example["case"] = case_classes(tokens)
        return example

    def _info(self):
        tags = {
            s: np.concatenate([np.asarray(r[self.tags_key], np.int64) for r in self.records(s)])
            for s in ("train", "test")
        }
        feature = self.builder.info.features[self.tags_key]
        names = getattr(feature, "feature", feature).names
        extra = {"chars": len(self.char_vocab)} if self.char_vocab is not None else {}
        if self.case:
            extra["case"] = len(CASE_CLASSES)
        return TaskInfo(
            self.name,
            self.kind,
            None,
            len(self.vocab),
            len(names),
            majority_accuracy(tags["train"], tags["test"]),
            "accuracy",
            extra_inputs=extra,
            label_names=tuple(names),
        )


def tag_example(tokens, tags, vocab: Vocabulary) -> dict:
    """(tokens `[L]` str/bytes, tags `[L]` int) -> {'inputs': ids `[L]`, 'targets': tags `[L]`} (both cut to
    the shorter length, which only differs in TFDS mock data)."""
    n = min(len(tokens), len(tags))
    return {
        "inputs": vocab.encode([as_str(t) for t in list(tokens)[:n]]),
        "targets": np.asarray(tags, dtype=np.int32)[:n],
    }


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
