"""Hand-made stand-ins for the pinned package archives, so offline builders are tested without the network."""

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from rnnlab.tasks.sources import archives


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def fake_archive(monkeypatch, tmp_path, key, members: dict[str, bytes]):
    """Writes a fake archive for ``archives.ARCHIVES[key]`` (a .tar.gz or a wheel/zip, as the real one), swaps
    its hash in and points ``RNNLAB_ARCHIVE_DIR`` at it; returns the data dir to prepare into."""
    real = archives.ARCHIVES[key]
    adir = tmp_path / "archives"
    adir.mkdir(exist_ok=True)
    path = adir / real.filename
    if real.filename.endswith(".tar.gz"):
        with tarfile.open(path, "w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    else:
        write_zip(path, members)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(archives.ARCHIVES, key, archives.Archive(real.requirement, real.filename, digest))
    monkeypatch.setenv("RNNLAB_ARCHIVE_DIR", str(adir))
    return tmp_path / "data"
