"""TensorBoard event files (TFRecord framing of ``Event`` protos): written, read, trimmed without TensorFlow.

A resumed run continues from its last checkpoint, so the events a killed run wrote after that step are
written again; TensorBoard would show both copies. ``truncate_after(logdir, step)`` rewrites every event file
under ``logdir`` without the events past ``step`` (as ``metrics.jsonl`` is trimmed), and drops a record cut
short by the kill. Framing: ``uint64 length, uint32 masked_crc32c(length), data, uint32 masked_crc32c(data)``
(little-endian), the format tensorboardX writes. ``EventWriter`` writes them synchronously (tensorboardX's
protos, not its queued writer), so a checkpoint taken after ``flush()`` never outlives its events.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

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


def _frame(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", _crc(header)) + data + struct.pack("<I", _crc(data))


def write_records(path: str, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.writelines(_frame(data) for data in records)


class EventWriter:
    """Scalars and histograms appended to one event file, synchronously: after ``flush()`` every event
    added is on disk. (tensorboardX's ``SummaryWriter`` hands events to a background thread through a queue
    and its ``flush()`` does not wait for that queue, so a run killed right after a checkpoint could lose
    the events logged before it — which resume would then never write again.)"""

    def __init__(self, logdir: str):
        os.makedirs(logdir, exist_ok=True)
        # one file per writer; a second writer of the same process in the same second appends to it
        name = f"{PREFIX}.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        self._file = open(os.path.join(logdir, name), "ab")  # noqa: SIM115  (open for the writer's lifetime)
        self._add(file_version="brain.Event:2")

    def _add(self, **fields) -> None:
        event = tensorboardx().proto.event_pb2.Event(wall_time=time.time(), **fields)
        self._file.write(_frame(event.SerializeToString()))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._add(step=step, summary=tensorboardx().summary.scalar(tag, value))

    def add_histogram(self, tag: str, values, step: int) -> None:
        self._add(step=step, summary=tensorboardx().summary.histogram(tag, values, "auto"))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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
