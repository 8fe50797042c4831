"""Text metrics on decoded outputs (host-side NumPy/Python, not jitted): entity F1 for BIO tags, token
accuracy, corpus BLEU, exact match, edit distance and label error rate, and bits per character / perplexity
from a mean cross-entropy.

Every score is a fraction in [0, 1] (conlleval and sacrebleu print percentages: multiply by 100).

* :func:`bio_entities`, :func:`entity_f1`: CoNLL-2000/2003 chunk scoring as ``conlleval.pl`` does it: an
  entity counts only if its type and its exact span match; ``I-X`` after ``O``, after another type, or at the
  start of a sentence starts a new entity (IOB1-style tolerance instead of discarding it).
* :func:`edit_distance`, :func:`label_error_rate`: Levenshtein distance, and LER = total edits / total
  reference length (Graves et al. 2006, "Connectionist temporal classification").
* :func:`corpus_bleu`: BLEU-4 of Papineni et al. (2002), "BLEU: a method for automatic evaluation of machine
  translation": clipped n-gram precisions summed over the corpus, geometric mean, brevity penalty from the
  corpus hypothesis length and the closest reference lengths. Equals ``sacrebleu.corpus_bleu(...,
  tokenize='none', smooth_method='none'|'exp') / 100`` on whitespace-tokenised text.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

Entity = tuple[str, int, int]  # (type, start, end): tokens start..end-1


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if prefix not in ("B", "I") or (sep and not kind):
        raise ValueError(f"invalid BIO tag {tag!r}: expected 'O', 'B-TYPE' or 'I-TYPE'")
    return prefix, kind


def bio_entities(tags: Sequence[str]) -> set[Entity]:
    """The entities ``{(type, start, end)}`` in one sentence's BIO tags (``end`` exclusive).

    A chunk starts at ``B-X``, and at ``I-X`` that follows ``O``, a different type or the sentence start
    (conlleval's rule); it ends before ``O``, ``B-*`` or a tag of another type.
    """
    entities = set()
    start, kind = None, ""
    for i, tag in enumerate(list(tags) + ["O"]):  # the sentinel closes a chunk that reaches the end
        prefix, k = _split_tag(tag)
        continues = prefix == "I" and start is not None and k == kind
        if start is not None and not continues:
            entities.add((kind, start, i))
            start = None
        if prefix != "O" and not continues:
            start, kind = i, k
    return entities


class PRF(NamedTuple):
    precision: float
    recall: float
    f1: float
    num_true: int
    num_pred: int
    num_correct: int


def _prf(correct: int, n_true: int, n_pred: int) -> PRF:
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_true if n_true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return PRF(p, r, f, n_true, n_pred, correct)


def entity_f1(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict[str, PRF]:
    """Micro-averaged entity precision/recall/F1 over a corpus of sentences.

    Args:
      true_tags, pred_tags: one BIO tag sequence per sentence (equal lengths sentence by sentence).

    Returns:
      ``{'overall': PRF, TYPE: PRF, ...}``; a score with an empty denominator is 0 (as conlleval prints).
    """
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} true sentences but {len(pred_tags)} predicted ones")
    counts: dict[str, Counter] = {"true": Counter(), "pred": Counter(), "correct": Counter()}
    for i, (t, p) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted tags")
        te, pe = bio_entities(t), bio_entities(p)
        for name, ents in (("true", te), ("pred", pe), ("correct", te & pe)):
            counts[name].update(e[0] for e in ents)
    out = {
        "overall": _prf(
            sum(counts["correct"].values()), sum(counts["true"].values()), sum(counts["pred"].values())
        )
    }
    for kind in sorted(set(counts["true"]) | set(counts["pred"])):
        out[kind] = _prf(counts["correct"][kind], counts["true"][kind], counts["pred"][kind])
    return out


def token_accuracy(targets, predictions, lengths=None) -> float:
    """Fraction of positions where ``predictions`` equals ``targets``.

    Args:
      targets, predictions: lists of per-sentence sequences (any hashable labels), or arrays ``[B, T]``.
      lengths: ``[B]`` valid lengths for array inputs (positions ``t >= lengths[b]`` are ignored).
    """
    if lengths is not None:
        t, p = np.asarray(targets), np.asarray(predictions)
        mask = np.arange(t.shape[1])[None, :] < np.asarray(lengths)[:, None]
        n = int(mask.sum())
        return float(((t == p) & mask).sum() / n) if n else 0.0
    correct = total = 0
    for i, (t, p) in enumerate(zip(targets, predictions, strict=True)):
        t, p = list(t), list(p)
        if len(t) != len(p):
            raise ValueError(f"sequence {i}: {len(t)} targets but {len(p)} predictions")
        correct += sum(a == b for a, b in zip(t, p, strict=True))
        total += len(t)
    return correct / total if total else 0.0


def exact_match(references, hypotheses) -> float:
    """Fraction of hypotheses identical to their reference (strings or token sequences)."""
    pairs = list(zip(references, hypotheses, strict=True))
    if not pairs:
        return 0.0
    same = [(r == h) if isinstance(r, str) else list(r) == list(h) for r, h in pairs]
    return sum(same) / len(pairs)


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions and deletions each cost 1)."""
    ref, hyp = list(reference), list(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev_diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev_diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev_diag + (r != h))
    return row[-1]


def label_error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Total edit distance over total reference length (Graves et al. 2006); may exceed 1."""
    pairs = list(zip(references, hypotheses, strict=True))
    total = sum(len(r) for r, _ in pairs)
    if total == 0:
        raise ValueError("label_error_rate needs at least one non-empty reference")
    return sum(edit_distance(r, h) for r, h in pairs) / total


class BLEU(NamedTuple):
    bleu: float  # in [0, 1]
    precisions: tuple[float, ...]  # clipped (smoothed) n-gram precisions, n = 1..max_order
    brevity_penalty: float
    hyp_len: int
    ref_len: int


def _tokens(x) -> tuple:
    return tuple(x.split()) if isinstance(x, str) else tuple(x)


def _ngrams(tokens: tuple, n: int) -> Counter:
    return Counter(tokens[i : i + n] for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses, references, max_order: int = 4, smooth: str = "none") -> BLEU:
    """Corpus-level BLEU (Papineni et al. 2002) with brevity penalty.

    Args:
      hypotheses: N hypotheses, each a string (split on whitespace) or a sequence of tokens.
      references: N lists of references for the hypotheses (``references[i]`` is a list of strings or token
        sequences), or N single strings (one reference each).
      max_order: the largest n-gram order (4 for BLEU-4).
      smooth: ``'none'`` (a zero n-gram match count makes BLEU 0) or ``'exp'`` (mteval-v13a / Chen & Cherry
        2014 method 3: the k-th zero count becomes 1/2^k).

    Returns:
      :class:`BLEU`. The reference length is the sum over sentences of the reference length closest to the
      hypothesis length (the shorter one on ties); BP = exp(1 - r/c) when c < r.
    """
    if smooth not in ("none", "exp"):
        raise ValueError(f"unknown smooth {smooth!r}; valid: 'none', 'exp'")
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    correct = np.zeros(max_order)
    total = np.zeros(max_order)
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        refs = [refs] if isinstance(refs, str) else refs
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        hyp = _tokens(hyp)
        refs = [_tokens(r) for r in refs]
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_order + 1):
            h = _ngrams(hyp, n)
            best = Counter()
            for r in refs:
                best |= _ngrams(r, n)  # max count of each n-gram over the references (clipping)
            correct[n - 1] += sum((h & best).values())
            total[n - 1] += sum(h.values())
    precisions = np.zeros(max_order)
    halvings = 1.0
    for n in range(max_order):
        if total[n] == 0:
            break  # the hypotheses are shorter than n: precision 0, BLEU 0
        if correct[n] == 0 and smooth == "exp":
            halvings *= 2
            precisions[n] = 1.0 / (halvings * total[n])
        else:
            precisions[n] = correct[n] / total[n]
    bp = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    bleu = bp * math.exp(np.mean(np.log(precisions))) if np.all(precisions > 0) else 0.0
    return BLEU(float(bleu), tuple(float(p) for p in precisions), float(bp), hyp_len, ref_len)


def bits_per_character(mean_ce_nats: float) -> float:
    """Bits per character from the mean cross-entropy per character in nats: ce / ln 2."""
    return float(mean_ce_nats) / math.log(2.0)


def perplexity(mean_ce_nats: float) -> float:
    """Perplexity from the mean cross-entropy per token in nats: exp(ce)."""
    return math.exp(float(mean_ce_nats))
