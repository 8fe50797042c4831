"""Number words from the `num2words` package, imported out of its wheel (zipimport), never installed."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path


def number_pairs(numbers: Iterable[int], wheel: str | Path, lang: str = "fr") -> list[tuple[int, str, str]]:
    """(n, English words, `lang` words) for each n; sys.path and sys.modules are restored afterwards, so the
    wheel leaves no trace in the process."""
    before = set(sys.modules)
    sys.path.insert(0, str(wheel))
    try:
        words = importlib.import_module("num2words").num2words
        return [(int(n), words(int(n), lang="en"), words(int(n), lang=lang)) for n in numbers]
    finally:
        sys.path.remove(str(wheel))
        for mod in set(sys.modules) - before:
            if mod == "num2words" or mod.startswith("num2words."):
                del sys.modules[mod]
