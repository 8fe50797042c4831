"""Tokenisation: character- and word-level vocabularies with pad (0) and unknown (1) ids, and the way back
from word tokens to readable text (`detokenize`).

A vocabulary is built from the train split only, saved as JSON next to the prepared data and loaded with it,
so ids never change between runs.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rnnlab.tasks.base import DataError, check_choice

PAD, UNK = "<pad>", "<unk>"
_WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


def tokenize(text: str, level: str, lowercase: bool = False) -> list[str]:
    """'char': every character; 'word': words and single punctuation marks ("don't stop!" -> don't, stop, !);
    'space': split on whitespace only (for pre-tokenised corpora such as PTB)."""
    if lowercase:
        text = text.lower()
    if level == "char":
        return list(text)
    if level == "word":
        return _WORD_RE.findall(text)
    if level == "space":
        return text.split()
    raise ValueError(f"unknown level {level!r}; valid: char, word, space")


# Tokens written without a space before them (closing punctuation), after them (opening punctuation), or on
# either side (joiners: hyphens and dashes inside compounds, "quarante-deux"). The tokeniser keeps "don't" and
# "l'homme" whole, so a lone apostrophe ends a word ("Jesus' feet").
_CLOSING = frozenset(",.;:!?)]}»”’'%…")
_OPENING = frozenset("([{«“‘¿¡")
_JOINERS = frozenset("-‐–—/")


def detokenize(tokens: Sequence[str]) -> str:
    """Word tokens (as `tokenize(text, 'word')` cuts them) -> text: the inverse of the word tokeniser for
    spacing, so a translation prints as text ("trois cent quarante - deux ." -> "trois cent quarante-deux.",
    "¿ dónde está ?" -> "¿dónde está?"). Straight double quotes alternate between opening and closing.

    Scores (BLEU, exact match) are computed on the space-separated tokens, never on this text.
    """
    out: list[str] = []
    glue_next, quotes = True, 0  # glue_next: no space before the next token
    for tok in tokens:
        opening = tok in _OPENING or (tok == '"' and quotes % 2 == 0)
        closing = tok in _CLOSING or (tok == '"' and quotes % 2 == 1)
        quotes += tok == '"'
        if out and not (glue_next or closing or tok in _JOINERS):
            out.append(" ")
        out.append(tok)
        glue_next = opening or tok in _JOINERS
    return "".join(out)


class Vocabulary:
    """Token <-> id mapping. Ids: 0 pad, 1 unknown, then `extra_specials` (e.g. '<bos>', '<eos>'), then tokens
    by decreasing train frequency (ties broken alphabetically, so the mapping is deterministic)."""

    def __init__(self, tokens: Sequence[str], level: str, lowercase: bool = False):
        check_choice("level", level, ("char", "word", "space"))
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(tokens[:2])}")
        self.tokens, self.level, self.lowercase = list(tokens), level, lowercase
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("duplicate tokens in vocabulary")

    pad_id, unk_id = 0, 1

    @classmethod
    def build(
        cls,
        texts: Iterable[str | Sequence[str]],
        level: str,
        *,
        min_count: int = 1,
        max_size: int | None = None,
        lowercase: bool = False,
        extra_specials: Sequence[str] = (),
    ) -> Vocabulary:
        """Counts tokens in `texts` (strings, or already tokenised lists) and keeps those seen `min_count`
        times, at most `max_size` ids in all."""
        counts = collections.Counter()
        for t in texts:
            counts.update(
                tokenize(t, level, lowercase)
                if isinstance(t, str)
                else [x.lower() for x in t]
                if lowercase
                else t
            )
        specials = [PAD, UNK, *extra_specials]
        for s in specials:
            counts.pop(s, None)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - len(specials))]
        return cls(specials + kept, level, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and (self.tokens, self.level, self.lowercase) == (
            other.tokens,
            other.level,
            other.lowercase,
        )

    def id(self, token: str) -> int:
        return self.index.get(token, self.unk_id)

    def encode(self, text: str | Sequence[str]) -> np.ndarray:
        """A string (tokenised with this vocabulary's level) or a token list -> int32 ids `[L]`."""
        toks = (
            tokenize(text, self.level, self.lowercase)
            if isinstance(text, str)
            else ([t.lower() for t in text] if self.lowercase else text)
        )
        return np.fromiter((self.index.get(t, 1) for t in toks), dtype=np.int32, count=len(toks))

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        """Ids -> text (characters joined directly, words with spaces); pad ids are dropped."""
        toks = [self.tokens[int(i)] for i in ids if not (skip_special and int(i) == self.pad_id)]
        return "".join(toks) if self.level == "char" else " ".join(toks)

    def to_json(self) -> dict:
        return {"level": self.level, "lowercase": self.lowercase, "tokens": self.tokens}

    @classmethod
    def from_json(cls, d: dict) -> Vocabulary:
        return cls(d["tokens"], d["level"], d.get("lowercase", False))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False))
        tmp.replace(path)  # never leave a half-written vocabulary behind

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError) as e:
            raise DataError(
                f"cannot read vocabulary {path}: {e}; delete it to rebuild it from the train split"
            ) from e


def load_or_build(path: str | Path, texts_fn, level: str, **build_kwargs) -> Vocabulary:
    """Loads the vocabulary at `path`, or builds it from `texts_fn()` (the train split) and saves it there."""
    path = Path(path)
    if path.exists():
        vocab = Vocabulary.load(path)
        if vocab.level != level or vocab.lowercase != build_kwargs.get("lowercase", False):
            raise DataError(
                f"{path} holds a {vocab.level} vocabulary (lowercase={vocab.lowercase}); "
                f"delete it to rebuild a {level} one"
            )
        return vocab
    vocab = Vocabulary.build(texts_fn(), level, **build_kwargs)
    try:
        vocab.save(path)
    except OSError:
        pass  # a read-only data dir: use the vocabulary without caching it
    return vocab
