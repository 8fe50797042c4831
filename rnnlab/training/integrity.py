"""Checkpoint integrity: a sha256 manifest of every file of a checkpoint, written last, checked before any
restore.

Why the application checks: Orbax stores arrays in OCDBT files whose chunks are zstd-compressed without a
content checksum (only the index of a zarr3 shard carries a crc32c), so a changed byte can restore without
any error. Measured (issue 9): 256 bytes overwritten in the middle of the largest data file of the latest
checkpoint; ``rnnlab eval`` exited 0 and reported an eval loss of 0.172 instead of 0.0027.

Protocol. When Orbax has committed step N (temporary directory renamed, ``commit_success.txt`` written), the
primary process hashes every file under ``checkpoints/N/`` and writes ``checkpoints/N/rnnlab_integrity.json``
atomically (temporary file, fsync, rename). Orbax's own metadata of the step declares that a manifest belongs
to it (``DECLARATION``, saved through ``custom_metadata``), so a step whose writer died between Orbax's commit
and the manifest is recognised as incomplete, while a step written before manifests existed is read
unverified (``Verdict.verified`` False). Any missing, truncated or changed file, an empty step directory, a
missing commit marker or an unreadable manifest is a problem (``Verdict.problems``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

MANIFEST = "rnnlab_integrity.json"
DECLARATION = "rnnlab_integrity"  # key of Orbax's custom_metadata: "this step has a MANIFEST"
ORBAX_METADATA = "_CHECKPOINT_METADATA"
COMMIT_MARKER = "commit_success.txt"
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What ``verify`` found: ``problems`` (empty = usable); ``verified`` False for a step written before
    manifests existed (usable, but nothing was checked)."""

    problems: tuple[str, ...] = ()
    verified: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _files(step_dir: str) -> list[str]:
    """Every file under ``step_dir`` (relative paths, sorted), the manifest excepted."""
    out = []
    for root, _, names in os.walk(step_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), step_dir)
            if rel != MANIFEST and not rel.startswith(MANIFEST + "."):
                out.append(rel)
    return sorted(out)


def write_manifest(step_dir: str) -> None:
    """Hashes every file of the committed step ``step_dir`` into ``step_dir/MANIFEST`` (atomically)."""
    entries = {}
    for rel in _files(step_dir):
        path = os.path.join(step_dir, rel)
        entries[rel] = {"size": os.path.getsize(path), "sha256": sha256(path)}
    tmp = os.path.join(step_dir, f"{MANIFEST}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump({"algorithm": "sha256", "files": entries}, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(step_dir, MANIFEST))


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def verify(step_dir: str) -> Verdict:
    """Checks ``step_dir`` against its manifest (see the module docstring for what counts as a problem)."""
    if not os.path.isdir(step_dir):
        return Verdict(("the directory does not exist",))
    if not _files(step_dir) and not os.path.exists(os.path.join(step_dir, MANIFEST)):
        return Verdict(("the directory is empty",))
    manifest_path = os.path.join(step_dir, MANIFEST)
    if not os.path.exists(manifest_path):
        metadata = _read_json(os.path.join(step_dir, ORBAX_METADATA))
        if not isinstance(metadata, dict):
            return Verdict((f"no {MANIFEST} and no readable {ORBAX_METADATA}: the save did not complete",))
        if DECLARATION in (metadata.get("custom_metadata") or {}):
            return Verdict((f"no {MANIFEST}: the writer stopped before the save completed",))
        if not os.path.exists(os.path.join(step_dir, COMMIT_MARKER)):
            return Verdict((f"no commit marker ({COMMIT_MARKER}): the save did not complete",))
        return Verdict(verified=False)  # written before rnnlab recorded manifests
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return Verdict((f"{MANIFEST} is unreadable",))
    problems = []
    for rel, expected in sorted(manifest["files"].items()):
        path = os.path.join(step_dir, rel)
        if not os.path.isfile(path):
            problems.append(f"{rel} is missing")
        elif (size := os.path.getsize(path)) != expected["size"]:
            problems.append(f"{rel} has {size} bytes, {expected['size']} when saved")
        elif sha256(path) != expected["sha256"]:
            problems.append(f"{rel} changed since it was saved (sha256 differs)")
    return Verdict(tuple(problems))
