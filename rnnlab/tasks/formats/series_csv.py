"""statsmodels' dataset CSVs: a header, then (time, value) rows with occasional blank values."""

from __future__ import annotations

import csv
import io

import numpy as np


def parse_series_csv(text: str) -> np.ndarray:
    """Two-column CSV (time, value) with a header -> float64 values `[N]`; blanks are linearly interpolated
    (co2 has gaps)."""
    rows = list(csv.reader(io.StringIO(text)))[1:]
    v = np.array([float(r[1]) if len(r) > 1 and r[1].strip() else np.nan for r in rows if r])
    bad = np.isnan(v)
    if bad.all():
        raise RuntimeError("series has no values")
    if bad.any():
        idx = np.arange(len(v))
        v[bad] = np.interp(idx[bad], idx[~bad], v[~bad])
    return v
