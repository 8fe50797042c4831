"""Where metrics go: ``metrics.jsonl`` (one JSON object per logged step and seed), TensorBoard event files
(tensorboardX, no TensorFlow), and a tqdm progress bar.

``metrics.jsonl`` holds only deterministic values (same config + seed -> identical file on CPU); wall-clock
quantities (steps/s) go to TensorBoard and the progress bar only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rnnlab.training import tbevents

METRICS_FILE = "metrics.jsonl"


def _jsonable(value: Any) -> Any:
    arr = np.asarray(value)
    if arr.ndim == 0:
        x = arr.item()
        if isinstance(x, float) and not math.isfinite(x):
            return str(x)  # 'nan' / 'inf': JSON has no literal for them
        return x
    return arr.tolist()


def read_jsonl(path: str) -> list[dict]:
    """All records of a JSONL file ([] if it does not exist; a line cut short by a killed writer is
    skipped)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class MetricWriter:
    """Writes records to ``workdir/metrics.jsonl`` and TensorBoard (``workdir/tb/seed_<seed>``).

    Args:
      workdir: the run directory.
      tensorboard: also write TensorBoard event files.
      resume_step: on restart, records with ``step > resume_step`` (written after the last checkpoint by the
        killed run) are dropped from ``metrics.jsonl`` and the TensorBoard event files, so both end up as if
        the run had never stopped (so are the 'test/...' records of a finished run whose steps are extended);
        None (a fresh start) deletes both.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True, resume_step: int | None = None):
        self.path = os.path.join(workdir, METRICS_FILE)
        self._workdir = workdir
        self._tensorboard = tensorboard
        self._tb: dict[int, Any] = {}
        if resume_step is not None and os.path.exists(self.path):
            kept = [
                r
                for r in read_jsonl(self.path)
                if r.get("step", 0) < resume_step
                or (r.get("step", 0) == resume_step and not any(k.startswith("test/") for k in r))
            ]  # a test record at resume_step is the end of a shorter run that is now extended
            with open(self.path, "w") as f:
                f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        elif resume_step is None and os.path.exists(self.path):
            os.remove(self.path)
        tb_dir = os.path.join(workdir, "tb")
        if resume_step is not None:
            tbevents.truncate_after(tb_dir, resume_step)
        else:
            for path in tbevents.event_files(tb_dir):
                os.remove(path)
        self._file = open(self.path, "a")  # noqa: SIM115  (open for the writer's lifetime)

    def _tb_writer(self, seed: int):
        if seed not in self._tb:
            self._tb[seed] = tbevents.EventWriter(os.path.join(self._workdir, "tb", f"seed_{seed}"))
        return self._tb[seed]

    def write(self, step: int, seed: int, values: Mapping[str, Any]) -> None:
        """One record ``{'step', 'seed', **values}``; arrays are stored as lists (histograms in
        TensorBoard)."""
        record = {"step": int(step), "seed": int(seed)}
        record.update({k: _jsonable(v) for k, v in values.items()})
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        if self._tensorboard:
            self.write_tensorboard(step, seed, values)

    def write_tensorboard(self, step: int, seed: int, values: Mapping[str, Any]) -> None:
        """TensorBoard only (e.g. wall-clock values that must stay out of the JSONL file)."""
        if not self._tensorboard:
            return
        tb = self._tb_writer(seed)
        for k, v in values.items():
            arr = np.asarray(v)
            if arr.ndim == 0:
                tb.add_scalar(k, float(arr), step)
            elif arr.size and np.all(np.isfinite(arr)):
                tb.add_histogram(k, arr.astype(np.float64), step)

    def flush(self) -> None:
        self._file.flush()
        for tb in self._tb.values():
            tb.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()
        for tb in self._tb.values():
            tb.close()
        self._tb.clear()


class Progress:
    """A tqdm bar over steps showing the loss, steps/s and ETA; a no-op when disabled."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train"):
        self._bar = None
        if enabled:
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, values: Mapping[str, float]) -> None:
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
