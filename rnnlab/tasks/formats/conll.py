"""CoNLL-style token-per-line files (WNUT-16 NER): 'token<TAB>tag', sentences separated by blank lines."""

from __future__ import annotations


def parse_conll(text: str) -> list[tuple[list[str], list[str]]]:
    """'token<TAB>tag' lines, sentences separated by blank (or tab-only) lines -> [(tokens, tags)]; the tag is
    the last column."""
    sents, toks, tags = [], [], []
    for line in text.splitlines():
        parts = line.strip().split("\t") if line.strip() else []
        if len(parts) < 2:
            if toks:
                sents.append((toks, tags))
            toks, tags = [], []
            continue
        toks.append(parts[0])
        tags.append(parts[-1])
    if toks:
        sents.append((toks, tags))
    return sents
