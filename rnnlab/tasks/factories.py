"""Every built-in task: a factory (keyword parameters -> `Task`) and a one-line description.

A task over a prepared dataset takes `data_dir` and `download` (prepare on first use, default True).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import numpy as np

from rnnlab.tasks.audio import SPOKEN_DIGIT_RATE, log_mel_spectrogram
from rnnlab.tasks.base import Task
from rnnlab.tasks.datasets import DATASETS
from rnnlab.tasks.digit_tasks import DigitCaptionTask, DigitCTCTask, MovingDigitsTask
from rnnlab.tasks.forecast import ForecastTask
from rnnlab.tasks.labeling import (
    SequenceClassificationTask,
    TaggingTask,
    TextClassificationTask,
    mnist_permutation,
    pixel_sequence,
)
from rnnlab.tasks.lm import LanguageModelTask
from rnnlab.tasks.synthetic import SPECS as SYNTHETIC_SPECS
from rnnlab.tasks.synthetic import SyntheticTask
from rnnlab.tasks.translation import Seq2SeqTask


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    factory: Callable[..., Task]  # keyword parameters only; get_task checks names against its signature
    description: str


BUILTIN_TASKS: dict[str, TaskEntry] = {}


def _task(name: str, description: str):
    def wrap(factory):
        BUILTIN_TASKS[name] = TaskEntry(factory, description)
        return factory

    return wrap


def _register_synthetic(name: str) -> None:
    spec = SYNTHETIC_SPECS[name]
    # the task's parameters are its generator's keyword arguments, with their defaults
    own = {
        p.name: p.default
        for p in list(inspect.signature(spec.generate).parameters.values())[2:]  # after (rng, B)
    }
    common = {"num_eval": 1000, "source": "generated", "data_dir": None, "download": True}

    def factory(**params):
        task_params = {k: params.pop(k, v) for k, v in own.items()}
        return SyntheticTask(name, task_params, dataset=DATASETS[name], **params)

    factory.__signature__ = inspect.Signature(
        [
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
            for k, v in {**own, **common}.items()
        ]
    )
    _task(name, spec.description)(factory)


for _name in SYNTHETIC_SPECS:
    _register_synthetic(_name)


@_task("mnist", "sequential MNIST (TFDS); permuted=True for permuted sequential MNIST")
def _mnist(*, data_dir=None, download=True, permuted=False, pixels_per_step=1, permutation_seed=0):
    perm = mnist_permutation(permutation_seed) if permuted else None
    return SequenceClassificationTask(
        "pmnist" if permuted else "mnist",
        DATASETS["mnist"],
        data_dir=data_dir,
        download=download,
        input_size=pixels_per_step,
        to_inputs=lambda r: pixel_sequence(r["image"], pixels_per_step=pixels_per_step, permutation=perm),
    )


@_task("imdb_reviews", "IMDB sentiment (TFDS), word ids")
def _imdb(*, data_dir=None, download=True, max_length=None, bucket_batches=0, min_count=2):
    return TextClassificationTask(
        "imdb_reviews",
        DATASETS["imdb_reviews"],
        data_dir=data_dir,
        download=download,
        max_length=max_length,
        bucket_batches=bucket_batches,
        min_count=min_count,
    )


@_task("tiny_shakespeare", "tiny_shakespeare (TFDS), character LM")
def _tiny_shakespeare(*, data_dir=None, download=True, length=128):
    return LanguageModelTask(
        "tiny_shakespeare", DATASETS["tiny_shakespeare"], data_dir=data_dir, download=download, length=length
    )


@_task("conll2003", "CoNLL-2003 NER tagging (TFDS)")
def _conll2003(*, data_dir=None, download=True, max_length=None, bucket_batches=0, min_count=1):
    return TaggingTask(
        "conll2003",
        DATASETS["conll2003"],
        data_dir=data_dir,
        download=download,
        max_length=max_length,
        bucket_batches=bucket_batches,
        min_count=min_count,
        tags_key="ner",
        lowercase=False,
    )


@_task("spoken_digit", "Free Spoken Digit (TFDS) as log-mel sequences")
def _spoken_digit(*, data_dir=None, download=True, n_mels=40, bucket_batches=0, max_length=None):
    return SequenceClassificationTask(
        "spoken_digit",
        DATASETS["spoken_digit"],
        data_dir=data_dir,
        download=download,
        input_size=n_mels,
        bucket_batches=bucket_batches,
        max_length=max_length,
        to_inputs=lambda r: log_mel_spectrogram(r["audio"], SPOKEN_DIGIT_RATE, n_mels=n_mels),
    )


def _register_vader(config: str) -> None:
    def factory(*, data_dir=None, download=True, max_length=None, bucket_batches=0, min_count=2):
        return TextClassificationTask(
            f"vader_{config}",
            DATASETS["vader"],
            config=config,
            data_dir=data_dir,
            download=download,
            max_length=max_length,
            bucket_batches=bucket_batches,
            min_count=min_count,
        )

    _task(f"vader_{config}", f"VADER {config} sentiment, binary (dataset vader/{config})")(factory)


for _config in DATASETS["vader"].configs:
    _register_vader(_config)


@_task(
    "wnut16", "WNUT-16 Twitter NER tagging; chars=True / case=True add per-token features (dataset wnut16)"
)
def _wnut16(
    *,
    data_dir=None,
    download=True,
    max_length=None,
    bucket_batches=0,
    min_count=2,
    chars=False,
    case=False,
    max_token_chars=20,
):
    return TaggingTask(
        "wnut16",
        DATASETS["wnut16"],
        data_dir=data_dir,
        download=download,
        max_length=max_length,
        bucket_batches=bucket_batches,
        min_count=min_count,
        lowercase=True,
        chars=chars,
        case=case,
        max_token_chars=max_token_chars,
    )


@_task("mnist5k", "sequential (or permuted) MNIST, 5,000 digits (dataset mnist5k)")
def _mnist5k(*, data_dir=None, download=True, permuted=False, pixels_per_step=1, permutation_seed=0):
    perm = mnist_permutation(permutation_seed) if permuted else None
    return SequenceClassificationTask(
        "pmnist5k" if permuted else "mnist5k",
        DATASETS["mnist5k"],
        data_dir=data_dir,
        download=download,
        input_size=pixels_per_step,
        to_inputs=lambda r: pixel_sequence(r["pixels"], pixels_per_step=pixels_per_step, permutation=perm),
    )


@_task("shakespeare", "Shakespeare's plays, character LM (dataset shakespeare)")
def _shakespeare(*, data_dir=None, download=True, length=128):
    return LanguageModelTask(
        "shakespeare", DATASETS["shakespeare"], data_dir=data_dir, download=download, length=length
    )


@_task("ptb", "Penn Treebank word LM, <eos> between sentences (dataset ptb)")
def _ptb(*, data_dir=None, download=True, length=35):
    return LanguageModelTask(
        "ptb",
        DATASETS["ptb"],
        data_dir=data_dir,
        download=download,
        length=length,
        level="space",
        separator=" <eos> ",
    )


@_task("sunspots", "yearly sunspots, forecast of the next `horizon` values (dataset series/sunspots)")
def _sunspots(*, data_dir=None, download=True, window=20, season=None, horizon=1, relative=False):
    return ForecastTask(
        "sunspots",
        DATASETS["series"],
        config="sunspots",
        data_dir=data_dir,
        download=download,
        window=window,
        season=season,
        horizon=horizon,
        relative=relative,
    )


@_task(
    "co2", "weekly CO2, forecast of the next `horizon` values, seasonal-naive baseline (dataset series/co2)"
)
def _co2(*, data_dir=None, download=True, window=64, season=52, horizon=1, relative=False):
    return ForecastTask(
        "co2",
        DATASETS["series"],
        config="co2",
        data_dir=data_dir,
        download=download,
        window=window,
        season=season,
        horizon=horizon,
        relative=relative,
    )


@_task("japanese_vowels", "Japanese Vowels speaker id, 12 channels (dataset japanese_vowels)")
def _japanese_vowels(*, data_dir=None, download=True, max_length=None, bucket_batches=0):
    return SequenceClassificationTask(
        "japanese_vowels",
        DATASETS["japanese_vowels"],
        data_dir=data_dir,
        download=download,
        max_length=max_length,
        bucket_batches=bucket_batches,
        input_size=12,
        to_inputs=lambda r: np.asarray(r["features"], np.float32),
    )


@_task("num2words_fr", "English -> French number words, seq2seq (dataset num2words_fr)")
def _num2words_fr(*, data_dir=None, download=True, max_length=None, bucket_batches=0):
    return Seq2SeqTask(
        "num2words_fr",
        DATASETS["num2words_fr"],
        data_dir=data_dir,
        download=download,
        max_length=max_length,
        bucket_batches=bucket_batches,
        source_key="en",
        target_key="fr",
    )


@_task(
    "bible_en_es",
    "English (WEB) -> Spanish (Reina-Valera 1909) Bible verses, word level (dataset bible_en_es)",
)
def _bible_en_es(
    *, data_dir=None, download=True, max_words=15, min_count=2, max_length=None, bucket_batches=0
):
    return Seq2SeqTask(
        "bible_en_es",
        DATASETS["bible_en_es"],
        data_dir=data_dir,
        download=download,
        max_length=max_length,
        bucket_batches=bucket_batches,
        source_key="en",
        target_key="es",
        max_words=max_words,
        min_count=min_count,
    )


@_task("digit_captions", "mnist5k digit strips -> number words, image captioning (dataset mnist5k)")
def _digit_captions(*, data_dir=None, download=True, num_eval=1000, min_digits=1, max_digits=4, max_gap=0):
    return DigitCaptionTask(
        "digit_captions",
        data_dir=data_dir,
        download=download,
        num_eval=num_eval,
        min_digits=min_digits,
        max_digits=max_digits,
        max_gap=max_gap,
    )


@_task("digit_ctc", "mnist5k digit strips read column by column -> digits, CTC (dataset mnist5k)")
def _digit_ctc(*, data_dir=None, download=True, num_eval=1000, min_digits=1, max_digits=4, max_gap=0):
    return DigitCTCTask(
        "digit_ctc",
        data_dir=data_dir,
        download=download,
        num_eval=num_eval,
        min_digits=min_digits,
        max_digits=max_digits,
        max_gap=max_gap,
    )


@_task(
    "moving_digits",
    "a moving mnist5k digit -> direction and speed, video classification; shuffled=True is the "
    "shuffled-frame control (dataset mnist5k)",
)
def _moving_digits(
    *,
    data_dir=None,
    download=True,
    num_eval=1000,
    canvas=(64, 64),
    num_frames=(10, 18),
    directions=8,
    speeds=(1, 2),
    shuffled=False,
):
    return MovingDigitsTask(
        "moving_digits_shuffled" if shuffled else "moving_digits",
        data_dir=data_dir,
        download=download,
        num_eval=num_eval,
        canvas=canvas,
        num_frames=num_frames,
        directions=directions,
        speeds=speeds,
        shuffled=shuffled,
    )
