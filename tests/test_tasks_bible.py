"""The bible_en_es translation task on hand-made SWORD modules in hand-made .deb files: prepared on first use,
split by book, filtered by length, word vocabularies with <unk>, readable targets, and its trivial baselines;
the detokeniser and the TF-IDF nearest neighbour on their own."""

import itertools

import numpy as np
import pytest
from test_bible import write_deb, ztext_files

from rnnlab.tasks import bible, debian, get_task, list_datasets
from rnnlab.tasks.baselines import nearest_neighbour
from rnnlab.tasks.vocab import detokenize, tokenize

EN = ["the lord said", "go and see the land", "why", "and they came, and they saw"]
ES = ["el señor dijo", "ve y mira la tierra", "¿por qué?", "y vinieron, y vieron treinta-y-tres"]


def _text(lang, i):
    """Verse i: the sentences of the bits of 1 + i % 15 (15 texts, no two with parallel TF-IDF vectors)."""
    return " ".join(t for k, t in enumerate(EN if lang == "en" else ES) if (1 + i % 15) >> k & 1)


def _verses(lang):
    """3 books x 24 verses (1 to 16 words each)."""
    return {(b, 1, i + 1): _text(lang, i) for b, i in itertools.product(("Matt", "John", "Acts"), range(24))}


@pytest.fixture
def data(tmp_path, monkeypatch):
    archives = tmp_path / "archives"
    archives.mkdir()
    for lang in ("en", "es"):
        real = bible.PACKAGES[lang]
        digest = write_deb(archives / real.filename, ztext_files(bible.MODULES[lang], _verses(lang)))
        monkeypatch.setitem(bible.PACKAGES, lang, debian.DebPackage(real.name, real.version, digest))
    monkeypatch.setenv("RNNLAB_ARCHIVE_DIR", str(archives))
    return tmp_path / "data"


def test_prepared_on_first_use_split_by_book_and_filtered_by_length(data, capfd):
    task = get_task("bible_en_es", data_dir=data, max_words=None, min_count=1)
    line = next(x for x in capfd.readouterr().err.splitlines() if x.startswith("rnnlab:"))
    assert "sword-text-web_426.0-1_all.deb, sword-text-sparv_2.60-1_all.deb with apt-get" in line
    en, es = _verses("en"), _verses("es")
    records = {s: task.records(s) for s in task.splits}
    refs = {
        s: [(r["book"].decode(), int(r["chapter"]), int(r["verse"])) for r in records[s]] for s in records
    }
    pairs = [bible.VersePair(*ref, en[ref], es[ref]) for ref in en]
    want = bible.split_pairs(pairs)
    assert {s: {(p.book, p.chapter, p.verse) for p in want[s]} for s in want} == {
        s: set(refs[s]) for s in refs
    }
    assert all(r["es"].decode() == es[ref] for s in refs for r, ref in zip(records[s], refs[s], strict=True))
    row = next(r for r in list_datasets(data) if r.name == "bible_en_es")
    assert row.prepared and row.source == "debian:sword-text-web=426.0-1+sword-text-sparv=2.60-1"

    short = get_task("bible_en_es", data_dir=data, max_words=8, min_count=1)
    for s in task.splits:
        kept = [r for r in records[s] if max(len(r["en"].split()), len(r["es"].split())) <= 8]
        assert [r["verse"] for r in short.records(s)] == [r["verse"] for r in kept] and kept
    assert sorted(p.name for p in (data / "rnnlab_bible_en_es/1.0.0").glob("vocab_*.json")) == [
        "vocab_en.json",
        "vocab_en_max8_min1.json",
        "vocab_es.json",
        "vocab_es_max8_min1.json",
    ]


def test_batches_vocabularies_and_readable_targets(data):
    task = get_task("bible_en_es", data_dir=data, max_words=12, min_count=2)
    counts = {}
    for r in task.records("train"):
        for w in tokenize(r["es"].decode(), "word", lowercase=True):
            counts[w] = counts.get(w, 0) + 1
    tv = task.target_vocab
    assert set(tv.tokens[4:]) == {w for w, c in counts.items() if c >= 2}  # after pad, unk, bos, eos
    texts = {_text("es", i).lower() for i in range(15)}
    for b in task.iterator("test", 4, seed=0, num_epochs=1):
        for row in range(len(b["lengths"])):
            text = task.target_text(b["targets"][row])
            assert text in texts or "<unk>" in text, text
            m = int(b["target_lengths"][row])
            assert (
                tv.tokens[b["targets"][row, m - 1]] == "<eos>"
                and tv.tokens[b["decoder_inputs"][row, 0]] == "<bos>"
            )
    assert task.info.token_unit == "word" and task.info.num_outputs == len(tv)


def test_baselines_copy_most_frequent_and_nearest_neighbour(data):
    task = get_task("bible_en_es", data_dir=data, max_words=None, min_count=1)
    scores = task.baselines("test")
    assert set(scores) == {
        f"{n}/{m}" for n in ("copy", "most_frequent", "nearest_neighbour") for m in ("exact_match", "bleu")
    }
    # every test source is also a train source, so its neighbour's target is the reference
    assert scores["nearest_neighbour/exact_match"] == 1.0 and scores[
        "nearest_neighbour/bleu"
    ] == pytest.approx(1.0)
    assert scores["copy/exact_match"] == 0.0 and scores["most_frequent/exact_match"] < 0.5


def test_nearest_neighbour_is_the_tfidf_cosine_argmax():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    train = [list(rng.choice(words, size=rng.integers(1, 8))) for _ in range(40)]
    queries = [list(rng.choice(words, size=rng.integers(1, 8))) for _ in range(25)] + [["unseen"]]
    vocab = sorted({w for d in train for w in d})
    tf = np.array([[d.count(w) for w in vocab] for d in train], float)
    idf = np.log((1 + len(train)) / (1 + (tf > 0).sum(0))) + 1
    X = tf * idf
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = np.array([[q.count(w) for w in vocab] for q in queries], float) * idf
    got = nearest_neighbour(train, queries)
    sims = Q @ X.T
    for q in range(len(queries)):
        assert sims[q, got[q]] == pytest.approx(sims[q].max())
    assert got[-1] == 0  # shares no word: the first source


@pytest.mark.parametrize(
    "text, want",
    [
        ("trois cent quarante - deux", "trois cent quarante-deux"),
        ("¿ dónde está ? ¡ aquí !", "¿dónde está? ¡aquí!"),
        ("jesus ' feet , and peter’s ( the rock ) .", "jesus' feet, and peter’s (the rock)."),
        ('he said , " go " and “ come ” ; then : 50 %', 'he said, "go" and “come”; then: 50%'),
        ("wait — what . . .", "wait—what..."),
        ("", ""),
    ],
)
def test_detokenize_inverts_the_word_tokenizer_spacing(text, want):
    assert detokenize(text.split()) == want
    assert detokenize(tokenize(want, "word")) == want
