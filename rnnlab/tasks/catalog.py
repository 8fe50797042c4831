"""Datasets from the TFDS catalog, read without TensorFlow through `tfds.data_source` (array_record).

They are prepared where TFDS can download them (`prepare('mnist')`); here, without TensorFlow or the
internet, their pipelines are tested with `tfds.testing.mock_data`. `conll2003` and `spoken_digit` need
TensorFlow to be built (spoken_digit's builder imports it; its Audio feature decodes with it), so their
conversion functions (`tag_example`, `log_mel_spectrogram`) are what can be tested on this machine.

| task | kind | inputs | baseline |
|---|---|---|---|
| mnist (permuted=False/True) | classification | float `[B, 784, 1]` in [0, 1] | majority-class accuracy |
| imdb_reviews | classification | word ids `[B, T]` | majority-class accuracy |
| tiny_shakespeare | lm | char ids `[B, length]` | unigram cross-entropy |
| conll2003 | tagging (NER) | word ids `[B, T]` | accuracy of the majority tag |
| spoken_digit | classification | log-mel `[B, T, n_mels]` | majority-class accuracy |
"""

from __future__ import annotations

import importlib

import numpy as np
import tensorflow_datasets as tfds

from rnnlab.tasks import prepared as _p
from rnnlab.tasks.base import check_choice, default_data_dir, register_task

# name -> one-line description
CATALOG = {
    "mnist": "TFDS mnist as sequential / permuted sequential MNIST (784 steps x 1 pixel)",
    "imdb_reviews": "TFDS IMDB movie reviews, binary sentiment (word level)",
    "tiny_shakespeare": "TFDS tiny_shakespeare, character LM (~1M characters)",
    "conll2003": "TFDS CoNLL-2003 English NER (needs TensorFlow to prepare)",
    "spoken_digit": "TFDS Free Spoken Digit audio -> log-mel features (needs TensorFlow to prepare)",
}
# modules that register builders the lazy TFDS registry does not find on its own
_MODULES = {"conll2003": "tensorflow_datasets.text.conll2003.conll2003"}
# our split names -> TFDS split strings (spoken_digit has a single 'train' split: cut it 80/10/10)
_SPLITS = {
    "mnist": {"train": "train", "test": "test"},
    "imdb_reviews": {"train": "train", "test": "test"},
    "tiny_shakespeare": {"train": "train", "validation": "validation", "test": "test"},
    "conll2003": {"train": "train", "validation": "dev", "test": "test"},
    "spoken_digit": {"train": "train[:80%]", "validation": "train[80%:90%]", "test": "train[90%:]"},
}


def catalog_builder(name: str, data_dir=None):
    """`tfds.builder(name)` (importing the builder's module first where the registry needs it)."""
    check_choice("catalog dataset", name, sorted(CATALOG))
    if name in _MODULES:
        importlib.import_module(_MODULES[name])
    return tfds.builder(name, data_dir=str(default_data_dir(data_dir)), file_format="array_record")


def open_catalog_split(name: str, split: str, data_dir=None):
    """`tfds.data_source` for our split name; a missing dataset becomes a RuntimeError saying how to prepare it."""
    check_choice("split", split, list(_SPLITS[name]), context=name)
    if name in _MODULES:
        importlib.import_module(_MODULES[name])
    try:
        return tfds.data_source(
            name, split=_SPLITS[name][split], data_dir=str(default_data_dir(data_dir)), download=False
        )
    except Exception as e:
        raise RuntimeError(
            f"TFDS dataset {name!r} is not prepared (as array_record) in {default_data_dir(data_dir)}"
            f": {type(e).__name__}: {str(e)[:300]}. Run `rnnlab data prepare {name}` where TFDS can "
            f"download it."
        ) from e


class _CatalogSource:
    """Mixin: read splits with `tfds.data_source` instead of our own prepared-data checks."""

    def source(self, split):
        if split not in self._sources:
            self._sources[split] = open_catalog_split(self.dataset, split, self.data_dir)
        return self._sources[split]


def _catalog(cls):
    return type("Catalog" + cls.__name__, (_CatalogSource, cls), {"__module__": __name__})


CatalogText = _catalog(_p.TextClassificationTask)
CatalogTagging = _catalog(_p.TaggingTask)
CatalogLM = _catalog(_p.LanguageModelTask)
CatalogSequence = _catalog(_p.SequenceClassificationTask)


def _fix_splits(task, name):
    task.splits = tuple(_SPLITS[name])
    return task


# ------------------------------------------------------------------------------------------------ audio
def hz_to_mel(f):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular filters `[n_fft // 2 + 1, n_mels]`, equally spaced on the mel scale between fmin and fmax."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (freqs[:, None] - lower[None]) / (center - lower)[None]
    down = (upper[None] - freqs[:, None]) / (upper - center)[None]
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel_spectrogram(
    audio: np.ndarray,
    sample_rate: int,
    *,
    n_mels: int = 40,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    eps: float = 1e-6,
) -> np.ndarray:
    """Log mel energies of a mono waveform, in NumPy.

    Args:
      audio: `[N]` samples, int16 (scaled by 1/32768) or float.
      sample_rate: Hz.
      n_mels: number of mel bands (the feature size D).
      frame_ms, hop_ms: Hann-windowed frame length and step.

    Returns:
      float32 `[T, n_mels]` with T = 1 + (N - frame) // hop (at least 1; short clips are zero-padded).
    """
    x = np.asarray(audio)
    x = x.astype(np.float32) / 32768.0 if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
    x = x.reshape(-1)
    frame = round(sample_rate * frame_ms / 1000)
    hop = round(sample_rate * hop_ms / 1000)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    n_frames = 1 + (len(x) - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop][:n_frames]
    n_fft = 1 << (frame - 1).bit_length()
    power = np.abs(np.fft.rfft(frames * np.hanning(frame).astype(np.float32), n=n_fft)) ** 2 / n_fft
    return np.log(power @ mel_filterbank(n_mels, n_fft, sample_rate) + eps).astype(np.float32)


SPOKEN_DIGIT_RATE = 8000


# ------------------------------------------------------------------------------------------------ registry
@register_task("mnist", "sequential MNIST (TFDS); permuted=True for permuted sequential MNIST")
def _mnist(*, data_dir=None, permuted=False, pixels_per_step=1, permutation_seed=0):
    perm = _p.mnist_permutation(permutation_seed) if permuted else None
    task = CatalogSequence(
        "pmnist" if permuted else "mnist",
        "mnist",
        data_dir=data_dir,
        input_size=pixels_per_step,
        to_inputs=lambda r: _p.pixel_sequence(r["image"], pixels_per_step=pixels_per_step, permutation=perm),
    )
    return _fix_splits(task, "mnist")


@register_task("imdb_reviews", "IMDB sentiment (TFDS), word ids")
def _imdb(*, data_dir=None, max_length=None, bucket_batches=0, min_count=2):
    task = CatalogText(
        "imdb_reviews",
        "imdb_reviews",
        data_dir=data_dir,
        max_length=max_length,
        bucket_batches=bucket_batches,
        min_count=min_count,
    )
    return _fix_splits(task, "imdb_reviews")


@register_task("tiny_shakespeare", "tiny_shakespeare (TFDS), character LM")
def _tiny_shakespeare(*, data_dir=None, length=128):
    task = CatalogLM("tiny_shakespeare", "tiny_shakespeare", data_dir=data_dir, length=length, level="char")
    return _fix_splits(task, "tiny_shakespeare")


@register_task("conll2003", "CoNLL-2003 NER tagging (TFDS)")
def _conll2003(*, data_dir=None, max_length=None, bucket_batches=0, min_count=1):
    task = CatalogTagging(
        "conll2003",
        "conll2003",
        data_dir=data_dir,
        max_length=max_length,
        bucket_batches=bucket_batches,
        min_count=min_count,
        tags_key="ner",
        lowercase=False,
    )
    return _fix_splits(task, "conll2003")


@register_task("spoken_digit", "Free Spoken Digit (TFDS) as log-mel sequences")
def _spoken_digit(*, data_dir=None, n_mels=40, bucket_batches=0, max_length=None):
    task = CatalogSequence(
        "spoken_digit",
        "spoken_digit",
        data_dir=data_dir,
        input_size=n_mels,
        bucket_batches=bucket_batches,
        max_length=max_length,
        to_inputs=lambda r: log_mel_spectrogram(r["audio"], SPOKEN_DIGIT_RATE, n_mels=n_mels),
    )
    return _fix_splits(task, "spoken_digit")
