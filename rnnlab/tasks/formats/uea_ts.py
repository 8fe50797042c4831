"""The UEA/UCR `.ts` format (sktime) for multivariate time series: headers, then one series per line."""

from __future__ import annotations

import numpy as np


def parse_ts(text: str) -> list[tuple[np.ndarray, str]]:
    """Lines after '@data': 'dim0 values:dim1 values:...:label' -> [(float32 `[T, D]`, label)]."""
    out, in_data = [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
            continue
        if not in_data or line.startswith("@"):
            continue
        *dims, label = line.split(":")
        x = np.array([[float(v) for v in d.split(",")] for d in dims], dtype=np.float32).T
        out.append((x, label.strip()))
    if not out:
        raise RuntimeError("no @data rows in .ts file")
    return out
