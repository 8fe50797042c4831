"""TensorBoard event files (TFRecord framing of ``Event`` protos), read and trimmed without TensorFlow.

A resumed run continues from its last checkpoint, so the events a killed run wrote after that step are
written again; TensorBoard would show both copies. ``truncate_after(logdir, step)`` rewrites every event file
under ``logdir`` without the events past ``step`` (as ``metrics.jsonl`` is trimmed), and drops a record cut
short by the kill. Framing: ``uint64 length, uint32 masked_crc32c(length), data, uint32 masked_crc32c(data)``
(little-endian), the format tensorboardX writes.
"""

from __future__ import annotations

import os
import struct
import sys

PREFIX = "events.out.tfevents"


def tensorboardx():
    """The ``tensorboardX`` module, imported without PyTorch.

    tensorboardX imports torch whenever it is installed (seconds, for nothing: we only log NumPy values), so
    the import is hidden from it unless the process already uses torch; hence also no module-level import.
    """
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
        try:
            import tensorboardX  # pylint: disable=import-outside-toplevel
        finally:
            del sys.modules["torch"]
    import tensorboardX  # pylint: disable=import-outside-toplevel

    return tensorboardX


def _crc(data: bytes) -> int:
    return tensorboardx().record_writer.masked_crc32c(data)


def _step(record: bytes) -> int:
    return tensorboardx().proto.event_pb2.Event.FromString(record).step


def read_records(path: str) -> list[bytes]:
    """The intact records of a TFRecord file, up to the first truncated or corrupt one."""
    with open(path, "rb") as f:
        blob = f.read()
    records, pos = [], 0
    while pos + 12 <= len(blob):
        header = blob[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", blob[pos + 8 : pos + 12])
        end = pos + 12 + length + 4
        if header_crc != _crc(header) or end > len(blob):
            break
        data = blob[pos + 12 : pos + 12 + length]
        if struct.unpack("<I", blob[end - 4 : end])[0] != _crc(data):
            break
        records.append(data)
        pos = end
    return records


def write_records(path: str, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        for data in records:
            header = struct.pack("<Q", len(data))
            f.write(header + struct.pack("<I", _crc(header)))
            f.write(data + struct.pack("<I", _crc(data)))


def event_files(logdir: str) -> list[str]:
    """Every event file under ``logdir`` (sorted paths)."""
    out = []
    for root, _, names in os.walk(logdir):
        out.extend(os.path.join(root, n) for n in names if n.startswith(PREFIX))
    return sorted(out)


def read_events(path: str) -> list:
    """The intact ``Event`` protos of an event file."""
    event = tensorboardx().proto.event_pb2.Event
    return [event.FromString(r) for r in read_records(path)]


def truncate_after(logdir: str, step: int) -> None:
    """Drops the events past ``step`` (and any cut-short tail) from the event files under ``logdir``."""
    for path in event_files(logdir):
        records = read_records(path)
        kept = [r for r in records if _step(r) <= step]
        if len(kept) == len(records) and sum(len(r) + 16 for r in records) == os.path.getsize(path):
            continue
        write_records(path + ".tmp", kept)
        os.replace(path + ".tmp", path)
