"""Tasks over sequences of real digit images (the mnist5k digits): image captioning, CTC transcription and
video classification, built with `digit_sequences` (strips of digits, their columns as frames, moving
digits).

Shape legend: B batch, K = max_digits, h x w = 28 x 28 a digit, W = K w + (K - 1) max_gap a strip's padded
width, T frames, H x W' the canvas of a clip.

Every split draws its digit images from its own split of mnist5k (prepared on first use): train strips from
the train digits, validation strips from the 10% of train carved for validation, test strips from the test
digits, so test examples show digit images no model has seen. As for the synthetic tasks, 'train' is
endless (batch i is a pure function of (seed, i)) and 'validation' and 'test' are fixed sets of `num_eval`
examples, example j a pure function of (split, j) rendered when its batch is read (a set of clips would not
fit in memory).

Batches (all float pixels in [0, 1]):

- `digit_captions` ('captioning'): inputs float32 `[B, h, W]`, lengths int32 `[B]` (the strip widths),
  decoder_inputs int32 `[B, K+1]` (<bos> + words), targets int32 `[B, K+1]` (words + <eos>), target_lengths
  int32 `[B]` (digits + 1), target_mask float32 `[B, K+1]`; ids from `CAPTION_VOCAB` (0 pad, 2 <bos>,
  3 <eos>, 'zero'..'nine' = 4..13).
- `digit_ctc` ('ctc'): inputs float32 `[B, W, h]` (frame t = column t), lengths int32 `[B]`, targets int32
  `[B, K]` (digit + 1; 0 = blank and padding), target_lengths int32 `[B]`.
- `moving_digits` ('classification'): inputs float32 `[B, T, H, W']` (T = the most frames), lengths int32
  `[B]`, targets int32 `[B]` (the motion class, `digit_sequences.motion_classes`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from rnnlab.tasks import baselines
from rnnlab.tasks.base import Task, TaskInfo, philox
from rnnlab.tasks.batching import GeneratedBatches, Loader, read_all
from rnnlab.tasks.datasets import DATASETS
from rnnlab.tasks.digit_sequences import (
    NUMBER_WORDS,
    make_strips,
    motion_classes,
    moving_digit_clips,
    shuffle_frames,
    strip_frames,
)
from rnnlab.tasks.store import open_dataset, open_split
from rnnlab.tasks.translation import BOS, EOS
from rnnlab.tasks.vocab import PAD, UNK, Vocabulary

DIGIT_SHAPE = (28, 28)
FIXED_SEEDS = {"validation": 0xD1617A11D, "test": 0xD16177E57}  # unrelated to any training seed
BASELINE_SEED = 0xD161BA5E  # the train sample the trivial predictors are fitted on
BASELINE_SAMPLE = 2000  # train examples in that sample
CAPTION_VOCAB = Vocabulary([PAD, UNK, BOS, EOS, *NUMBER_WORDS], "word")
WORD_OFFSET = CAPTION_VOCAB.id(NUMBER_WORDS[0])  # id of 'zero'; digit d is word id d + WORD_OFFSET


def example_seed(*keys: int) -> int:
    """One int seed (what the `digit_sequences` generators take) from a Philox stream key."""
    return int(philox(*keys).integers(2**63))


def load_digits(data_dir=None, download: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{split: (images float32 [N, 28, 28] in [0, 1], labels int64 [N])}` of the prepared mnist5k dataset
    (float once here, so drawing examples one at a time converts nothing)."""
    spec = DATASETS["mnist5k"]
    builder = open_dataset(spec, None, data_dir, download=download)
    out = {}
    for split in spec.split_names:
        records = read_all(open_split(spec, builder, split))
        images = np.stack([np.asarray(r["pixels"], np.float32).reshape(DIGIT_SHAPE) / 255 for r in records])
        out[split] = (images, np.array([int(r["label"]) for r in records], np.int64))
    return out


def _concat(parts: list):
    """Examples generated one by one (`Strips` or `Clips` of one example each) as one batch of them."""
    cls = type(parts[0])
    return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))


class DigitTask(Task):
    """Base: endless train batches, fixed validation / test sets, each split from its own digit images.

    Subclasses define `generate(split, n, seed)` (n examples of `split`'s digits as `Strips` / `Clips`),
    `to_batch(examples)` and `info`.

    Args:
      num_eval: examples in the validation set and in the test set.
      data_dir, download: where mnist5k is prepared, and whether to prepare it on first use.
    """

    def __init__(self, name: str, *, num_eval: int = 1000, data_dir=None, download: bool = True):
        self.name, self.num_eval = name, int(num_eval)
        self.digits = load_digits(data_dir, download)
        self._baselines: dict[str, dict[str, float]] = {}

    def baselines(self, split: str = "test") -> dict[str, float]:
        """Every trivial predictor's score on `split` ('validation' or 'test'), by 'predictor/metric'."""
        if split not in self._baselines:
            self._baselines[split] = self._baseline_scores(split)
        return dict(self._baselines[split])

    def _baseline_scores(self, split: str) -> dict[str, float]:
        raise NotImplementedError

    def generate(self, split: str, n: int, seed: int):
        raise NotImplementedError

    def to_batch(self, examples) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def fixed(self, split: str, indices) -> object:
        """Examples `indices` of the fixed `split` set, each generated alone from (split, index)."""
        return _concat([self.generate(split, 1, example_seed(FIXED_SEEDS[split], int(j))) for j in indices])

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True):
        """'train': endless generated batches (`num_epochs` and `shuffle` do not apply); 'validation' and
        'test': the fixed sets, `num_eval` examples per epoch."""
        self.check_split(split)
        if split == "train":
            return GeneratedBatches(
                lambda rng, B: self.to_batch(self.generate("train", B, int(rng.integers(2**63)))),
                batch_size,
                seed,
            )
        return Loader(
            range(self.num_eval),
            batch_size,
            seed,
            gather_fn=lambda idx: self.to_batch(self.fixed(split, idx)),
            num_epochs=num_epochs,
            shuffle=shuffle,
        )

    def baseline_sample(self):
        """`BASELINE_SAMPLE` train examples (fixed): what the trivial predictors are fitted on."""
        return self.generate("train", BASELINE_SAMPLE, BASELINE_SEED)


class _StripTask(DigitTask):
    """Strips of `min_digits`-`max_digits` digits with 0-`max_gap` blank columns between neighbours."""

    def __init__(self, name, *, min_digits=1, max_digits=4, max_gap=0, **kwargs):
        super().__init__(name, **kwargs)
        self.strip_options = {
            "min_digits": int(min_digits),
            "max_digits": int(max_digits),
            "max_gap": int(max_gap),
        }
        self.max_digits = int(max_digits)
        self.width = self.generate("validation", 1, 0).images.shape[
            2
        ]  # bad options fail here, not mid-training

    def generate(self, split, n, seed):
        images, labels = self.digits[split]
        return make_strips(images, labels, np.arange(len(labels)), n, seed=seed, **self.strip_options)

    def fixed_digits(self, split: str) -> list[list[int]]:
        """The digits of every strip of the fixed `split` set, left to right."""
        strips = self.fixed(split, range(self.num_eval))
        return [d[:n].tolist() for d, n in zip(strips.digits, strips.num_digits, strict=True)]


class DigitCaptionTask(_StripTask):
    """Digit strip image -> its digits in words ("seven two nine"). Baseline: exact match of always the most
    frequent train caption (its BLEU is in `baselines()`)."""

    kind = "captioning"
    target_vocab = CAPTION_VOCAB

    def to_batch(self, strips):
        K = self.max_digits
        words = np.where(strips.digits >= 0, strips.digits + WORD_OFFSET, CAPTION_VOCAB.pad_id)
        rows, n = np.arange(len(words)), strips.num_digits
        targets = np.zeros((len(words), K + 1), np.int32)
        targets[:, :K] = words
        targets[rows, n] = CAPTION_VOCAB.id(EOS)
        decoder_inputs = np.zeros_like(targets)
        decoder_inputs[:, 0] = CAPTION_VOCAB.id(BOS)
        decoder_inputs[:, 1:] = words
        return {
            "inputs": strips.images,
            "lengths": strips.widths,
            "decoder_inputs": decoder_inputs,
            "targets": targets,
            "target_lengths": (n + 1).astype(np.int32),
            "target_mask": (np.arange(K + 1)[None, :] <= n[:, None]).astype(np.float32),
        }

    def target_text(self, ids) -> str:
        """Caption ids -> words, up to the first <eos>."""
        words = []
        for i in np.asarray(ids).tolist():
            if i == CAPTION_VOCAB.id(EOS):
                break
            if i >= WORD_OFFSET:
                words.append(CAPTION_VOCAB.tokens[i])
        return " ".join(words)

    def _baseline_scores(self, split):
        """{'most_frequent/exact_match', 'most_frequent/bleu'}: always the most frequent caption of the train
        sample."""
        caption = baselines.most_frequent(self.baseline_sample().captions)
        refs = [" ".join(NUMBER_WORDS[d] for d in digits) for digits in self.fixed_digits(split)]
        return {
            f"most_frequent/{k}": v for k, v in baselines.text_scores([caption] * len(refs), refs).items()
        }

    @functools.cached_property
    def info(self) -> TaskInfo:
        return TaskInfo(
            self.name,
            self.kind,
            None,
            None,
            len(CAPTION_VOCAB),
            self.baselines()["most_frequent/exact_match"],
            "exact_match",
            token_unit="word",
            input_shape=(DIGIT_SHAPE[0], self.width),
        )


class DigitCTCTask(_StripTask):
    """Digit strip read column by column -> its digits, unsegmented (CTC). Baseline: the label error rate on
    the test set of the best constant labelling of the train sample. `info.label_names`: '<blank>', '0'..'9'
    (label d + 1 is digit d)."""

    kind = "ctc"

    def to_batch(self, strips):
        frames, lengths = strip_frames(strips)
        return {
            "inputs": frames,
            "lengths": lengths,
            "targets": np.where(strips.digits >= 0, strips.digits + 1, 0).astype(np.int32),
            "target_lengths": strips.num_digits.astype(np.int32),
        }

    @functools.cached_property
    def best_constant_labelling(self) -> tuple[int, ...]:
        """The label sequence (labels 1..10) with the fewest edits to the train sample's labellings."""
        sample = self.baseline_sample()
        train = [(d[:n] + 1).tolist() for d, n in zip(sample.digits, sample.num_digits, strict=True)]
        return baselines.best_constant_labelling(train, range(1, len(NUMBER_WORDS) + 1), self.max_digits)

    def _baseline_scores(self, split):
        """{'best_constant/label_error_rate', 'empty/label_error_rate' (= 1)}."""
        refs = [[d + 1 for d in digits] for digits in self.fixed_digits(split)]
        return {
            "best_constant/label_error_rate": baselines.constant_label_error_rate(
                refs, self.best_constant_labelling
            ),
            "empty/label_error_rate": baselines.constant_label_error_rate(refs, ()),
        }

    @functools.cached_property
    def info(self) -> TaskInfo:
        return TaskInfo(
            self.name,
            self.kind,
            DIGIT_SHAPE[0],
            None,
            len(NUMBER_WORDS) + 1,
            self.baselines()["best_constant/label_error_rate"],
            "label_error_rate",
            label_names=("<blank>", *(str(d) for d in range(len(NUMBER_WORDS)))),
        )


class MovingDigitsTask(DigitTask):
    """Clip of one digit moving in a straight line -> its (direction, speed) class.

    Baseline: chance, 1 / C (the classes are uniform). With `shuffled=True` every clip's frames come in a
    random order (the control): the frames still show the axis and the speed but not the sense of the
    motion, so no model can pass `baselines()['order_free/accuracy']` (1/2), and with `directions=2` and one
    speed (every class order-dependent) the control stays at chance.
    """

    kind = "classification"

    def __init__(
        self,
        name,
        *,
        canvas=(64, 64),
        num_frames=(10, 18),
        directions=8,
        speeds=(1, 2),
        shuffled=False,
        **kwargs,
    ):
        super().__init__(name, **kwargs)
        self.clip_options = {
            "canvas": tuple(int(x) for x in canvas),
            "num_frames": tuple(int(x) for x in num_frames),
            "directions": int(directions),
            "speeds": tuple(int(s) for s in speeds),
        }
        self.velocities = motion_classes(directions, self.clip_options["speeds"])
        self.shuffled = bool(shuffled)
        self.generate("validation", 1, 0)  # a canvas too small for the motion fails here, not mid-training

    def generate(self, split, n, seed):
        images, _ = self.digits[split]
        clips = moving_digit_clips(images, np.arange(len(images)), n, seed=seed, **self.clip_options)
        return shuffle_frames(clips, seed=seed) if self.shuffled else clips

    def to_batch(self, clips):
        return {"inputs": clips.frames, "lengths": clips.lengths, "targets": clips.labels}

    def _baseline_scores(self, split):
        """{'chance/accuracy': 1 / C, 'order_free/accuracy': the best accuracy without the frame order (one
        class per pair of opposite velocities: 1/2)}: properties of the classes, the same on every split."""
        pairs = {frozenset({v, (-v[0], -v[1])}) for v in self.velocities}
        C = len(self.velocities)
        return {"chance/accuracy": 1 / C, "order_free/accuracy": len(pairs) / C}

    @functools.cached_property
    def info(self) -> TaskInfo:
        return TaskInfo(
            self.name,
            self.kind,
            None,
            None,
            len(self.velocities),
            1 / len(self.velocities),
            "accuracy",
            input_shape=(self.clip_options["num_frames"][1], *self.clip_options["canvas"]),
        )
