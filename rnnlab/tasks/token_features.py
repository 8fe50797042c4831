"""Per-token features for taggers beyond the (lower-cased) word id: the token's characters with their case,
and a case / shape class.

Why: named entities in tweets are mostly rare words, so their word ids are '<unk>'; the characters (suffixes,
capitals) and the shape (Capitalised, ALL-CAPS, @mention, #hashtag, URL) still tell a tagger a lot. Character
models of words follow Ling et al. (2015, "Finding function in form") and Lample et al. (2016, "Neural
architectures for named entity recognition"); shape features are the classic ones of NER systems (Collins
2002; Ratinov & Roth 2009).

Shape legend: L tokens, Lc characters per token.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from rnnlab.tasks.vocab import Vocabulary

#: case / shape classes; id 0 is padding. The first rule that matches a token decides its class.
CASE_CLASSES = (
    "<pad>",
    "url",  # http..., www....
    "mention",  # @user
    "hashtag",  # #topic
    "has_digit",  # 2016, 4th, b2b
    "punctuation",  # no letter or digit: . !!! :) and emoji (symbols)
    "all_caps",  # NASA, USA (two or more letters, none lower case)
    "capitalized",  # Obama, I, McDonald's is 'mixed_case'
    "lower",  # storm, iphone
    "mixed_case",  # iPhone, McDonald
    "other",  # letters without case (e.g. CJK)
)
CHAR_MIN_COUNT = 2  # a character seen fewer times in the train tokens is '<unk>'


def case_class(token: str) -> int:
    """The id in `CASE_CLASSES` of one token (1..len-1; never 0)."""
    low = token.lower()
    if low.startswith(("http:", "https:", "www.")):
        name = "url"
    elif len(token) > 1 and token[0] in "@#" and (token[1].isalnum() or token[1] == "_"):
        name = "mention" if token[0] == "@" else "hashtag"
    elif any(c.isdigit() for c in token):
        name = "has_digit"
    elif not any(c.isalpha() for c in token):
        name = "punctuation" if all(unicodedata.category(c)[0] in "PSZ" for c in token) else "other"
    else:
        letters = [c for c in token if c.isalpha()]
        upper = sum(c.isupper() for c in letters)
        lower = sum(c.islower() for c in letters)
        if upper == 0 and lower == 0:
            name = "other"
        elif lower == 0:
            name = "all_caps" if upper > 1 else "capitalized"
        elif upper == 0:
            name = "lower"
        elif letters[0].isupper() and upper == 1:
            name = "capitalized"
        else:
            name = "mixed_case"
    return CASE_CLASSES.index(name)


def case_classes(tokens: Sequence[str]) -> np.ndarray:
    """int32 `[L]` case class ids of `tokens`."""
    return np.fromiter((case_class(t) for t in tokens), dtype=np.int32, count=len(tokens))


def char_ids(tokens: Sequence[str], vocab: Vocabulary, max_chars: int) -> np.ndarray:
    """int32 `[L, max_chars]` character ids of each token (original case), cut at `max_chars`, 0-padded."""
    out = np.zeros((len(tokens), max_chars), np.int32)
    for i, t in enumerate(tokens):
        ids = vocab.encode(list(t[:max_chars]))
        out[i, : len(ids)] = ids
    return out
