"""Data inside pinned Debian packages: fetch a ``.deb`` with ``apt-get download``, check its sha256, and
read files out of it with the standard library. Nothing is installed.

A ``.deb`` is an ``ar`` archive (``debian-binary``, ``control.tar.*``, ``data.tar.*``); the package's files
are in ``data.tar.xz`` (or ``.gz``/``.bz2``), paths starting with ``./``. Set ``$RNNLAB_ARCHIVE_DIR`` to a
directory holding the ``.deb`` files to skip the download (as for the pinned PyPI archives).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

from rnnlab.tasks.base import DataError

AR_MAGIC = b"!<arch>\n"


@dataclasses.dataclass(frozen=True)
class DebPackage:
    """A pinned Debian package: the exact version and the sha256 of its ``.deb`` (from the Debian archive's
    ``Packages`` index, checked again on every fetch)."""

    name: str
    version: str
    sha256: str
    arch: str = "all"

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_{self.arch}.deb"


#: the Debian packages of each dataset that reads them, by role (Debian bookworm; sha256 as in the
#: archive's Packages index)
DEB_SETS: dict[str, dict[str, DebPackage]] = {
    "bible_en_es": {
        "en": DebPackage(
            "sword-text-web", "426.0-1", "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1"
        ),
        "es": DebPackage(
            "sword-text-sparv", "2.60-1", "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf"
        ),
    }
}


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fetch_deb(package: DebPackage, dest: str | Path, archive_dir: str | Path | None = None) -> Path:
    """A checked copy of ``package``'s ``.deb``: from ``archive_dir`` / ``$RNNLAB_ARCHIVE_DIR`` if there,
    else from ``dest`` if an earlier fetch left it there, else ``apt-get download``-ed into ``dest``.

    Raises:
      DataError: apt-get could not fetch it (no network, stale package lists, version gone).
      ValueError: the file's sha256 is not the pinned one.
    """
    dest = Path(dest)
    archive_dir = archive_dir or os.environ.get("RNNLAB_ARCHIVE_DIR")
    local = Path(archive_dir) / package.filename if archive_dir else None
    if local is not None and local.exists():
        path = local
    else:
        path = dest / package.filename
        if not path.exists():
            dest.mkdir(parents=True, exist_ok=True)
            cmd = ["apt-get", "download", "-q", f"{package.name}={package.version}"]
            try:
                proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, check=False)
                error = proc.stderr.strip()[-800:] if proc.returncode else ""
            except FileNotFoundError:
                error = "apt-get is not available on this machine"
            if error or not path.exists():
                raise DataError(
                    f"could not download {package.filename} with apt-get: "
                    f"{error or 'file not found after apt-get download'}\nRun `apt-get update` (the package "
                    "lists may be stale), or put the .deb in a directory and set RNNLAB_ARCHIVE_DIR to it."
                )
    digest = file_sha256(path)
    if digest != package.sha256:
        raise ValueError(
            f"sha256 mismatch for {path}: got {digest}, expected {package.sha256}. It is not the pinned "
            f"{package.name} {package.version}; delete it and fetch again."
        )
    return path


def read_ar(data: bytes) -> dict[str, bytes]:
    """The members of an ``ar`` archive (the common format: 60-byte headers, 2-byte alignment)."""
    if not data.startswith(AR_MAGIC):
        raise ValueError("not an ar archive (a .deb starts with '!<arch>\\n')")
    members, pos = {}, len(AR_MAGIC)
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def deb_files(path: str | Path, prefix: str) -> dict[str, bytes]:
    """``{path: bytes}`` of the regular files under ``prefix`` (e.g. ``'usr/share/sword/'``) in the
    package's ``data.tar.*``; paths are relative to the file system root, without the leading ``./``."""
    members = read_ar(Path(path).read_bytes())
    data = next((v for k, v in members.items() if k.startswith("data.tar")), None)
    if data is None:
        raise ValueError(f"{path} has no data.tar member: not a Debian binary package")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar.getmembers():
            name = info.name.removeprefix("./")
            if info.isfile() and name.startswith(prefix):
                out[name] = tar.extractfile(info).read()
    return out


__all__ = ["DEB_SETS", "DebPackage", "deb_files", "fetch_deb", "file_sha256", "read_ar"]
