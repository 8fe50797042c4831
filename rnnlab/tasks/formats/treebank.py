"""The `treebank` package's module source, which holds Mikolov's PTB splits as triple-quoted strings."""

from __future__ import annotations

import re

_PTB_RE = re.compile(r"penn\['(\w+)'\]\s*=\s*\"\"\"(.*?)\"\"\"", re.DOTALL)


def parse_treebank_module(source: str) -> dict[str, list[str]]:
    """`treebank/__init__.py` -> {'train'|'valid'|'test': sentences}, read as text, never imported."""
    out = {
        m.group(1): [s.strip() for s in m.group(2).split("\n") if s.strip()] for m in _PTB_RE.finditer(source)
    }
    if set(out) != {"train", "valid", "test"}:
        raise RuntimeError(f"treebank/__init__.py: expected train/valid/test strings, found {sorted(out)}")
    return out
