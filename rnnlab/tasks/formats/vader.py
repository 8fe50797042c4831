"""VADER ground-truth files (Hutto & Gilbert 2014): one rated snippet per line, inside a nested tarball."""

from __future__ import annotations

import io
import tarfile

# the sdist member holding the ground-truth tarball, and the folder inside that tarball
VADER_TAR = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FOLDER = "hutto_ICWSM_2014"


def parse_vader(text: str) -> list[tuple[str, float, str]]:
    """Lines 'id<TAB>mean score (-4..4)<TAB>text' -> [(id, score, text)]; headers and malformed lines are
    skipped (the text may itself hold tabs)."""
    rows = []
    for line in text.splitlines():
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) >= 3 and parts[1].strip():
            try:
                rows.append((parts[0].strip(), float(parts[1]), "\t".join(parts[2:]).strip()))
            except ValueError:
                continue
    return rows


def read_ground_truth(tarball: bytes, filename: str) -> list[tuple[str, float, str]]:
    """The rows of `filename` (e.g. 'tweets_GroundTruth.txt') in the ground-truth tarball's bytes."""
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tf:
        member = tf.extractfile(f"{VADER_FOLDER}/{filename}")
        if member is None:
            raise RuntimeError(f"{VADER_FOLDER}/{filename} is not a file in the VADER tarball")
        return parse_vader(member.read().decode("utf-8", errors="replace"))
