"""Trivial predictors of the text-output tasks, fitted on 'train' and scored on another split: what a model
must beat before its output means anything.

* :func:`most_frequent`: always the most frequent train output (a caption, a translation).
* :func:`best_constant_labelling`: the one label sequence with the fewest edits to every train labelling
  (CTC transcription), searched exhaustively over every sequence up to a length; scored by
  :func:`rnnlab.textmetrics.label_error_rate` (Graves et al. 2006: total edits / total reference labels).
* :func:`nearest_neighbour`: the target of the most similar train source by TF-IDF cosine (Salton & Buckley
  1988, "Term-weighting approaches in automatic text retrieval"), the translation-memory baseline.
* :func:`translation_baselines`: copy-the-source, most-frequent and nearest-neighbour exact match and BLEU of
  a seq2seq task, scored as ``generate.translation_metrics`` scores models (words through the vocabularies);
  :func:`translation_hypotheses` gives their outputs.

Shape legend: U reference labellings, K their longest length, P label-sequence prefixes.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence

import numpy as np

from rnnlab.tasks.dataset_task import as_str
from rnnlab.tasks.vocab import tokenize
from rnnlab.textmetrics import corpus_bleu, exact_match, label_error_rate

Labelling = tuple[int, ...]


def most_frequent(train_outputs: Sequence[str]) -> str:
    """The most frequent of `train_outputs` (the first seen among equally frequent ones)."""
    return collections.Counter(train_outputs).most_common(1)[0][0]


def text_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """{'exact_match', 'bleu'} (corpus BLEU-4, whitespace tokens) of hypotheses against one reference each."""
    return {
        "exact_match": exact_match(references, hypotheses),
        "bleu": corpus_bleu(list(hypotheses), list(references)).bleu,
    }


# ------------------------------------------------------------------------------------------------ CTC
def _padded(labellings: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct labellings as (refs int16 `[U, K]` padded with -1, lengths `[U]`, counts `[U]`)."""
    counts = collections.Counter(tuple(int(x) for x in r) for r in labellings)
    K = max((len(r) for r in counts), default=0)
    refs = np.full((len(counts), K), -1, np.int16)
    for u, r in enumerate(counts):
        refs[u, : len(r)] = r
    return refs, np.array([len(r) for r in counts]), np.array(list(counts.values()), np.int64)


def _append(D: np.ndarray, refs: np.ndarray, label: int) -> np.ndarray:
    """One Levenshtein row per prefix: `D [P, U, K+1]` holds the distances of P label prefixes to every
    reference prefix `refs[:, :i]`; returns them with `label` appended to each of the P prefixes."""
    E = np.empty_like(D)
    E[..., 0] = D[..., 0] + 1
    differs = (refs != label).astype(D.dtype)
    for i in range(1, D.shape[-1]):
        E[..., i] = np.minimum(np.minimum(D[..., i], E[..., i - 1]) + 1, D[..., i - 1] + differs[:, i - 1])
    return E


def constant_label_error_rate(references: Sequence[Sequence[int]], hypothesis: Sequence[int]) -> float:
    """The label error rate of answering `hypothesis` for every one of `references`."""
    return label_error_rate(references, [hypothesis] * len(references))


def _totals(D: np.ndarray, lengths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`[P]` total edits of each prefix (as a whole labelling) over the counted references."""
    return D[:, np.arange(len(lengths)), lengths].astype(np.int64) @ counts


def best_constant_labelling(
    train_labellings: Sequence[Sequence[int]], labels: Sequence[int], max_length: int
) -> Labelling:
    """The labelling of at most `max_length` labels from `labels` with the fewest total edits to
    `train_labellings` (ties: the shorter, then the first found).

    Exhaustive: the Levenshtein rows of all prefixes of one length are extended together, so each of the
    sum_k |labels|^k candidates costs a few array operations over the distinct references.
    """
    refs, lengths, counts = _padded(train_labellings)
    D = np.broadcast_to(np.arange(refs.shape[1] + 1, dtype=np.int16), (1, len(refs), refs.shape[1] + 1))
    prefixes: list[Labelling] = [()]
    best, best_total = (), int(_totals(D, lengths, counts)[0])
    for length in range(1, max_length + 1):
        grown = []
        for a in labels:
            E = _append(D, refs, a)
            totals = _totals(E, lengths, counts)
            i = int(np.argmin(totals))
            if totals[i] < best_total:
                best, best_total = (*prefixes[i], int(a)), int(totals[i])
            if length < max_length:  # the longest candidates are scored, never extended
                grown.append(E)
        if grown:
            D = np.concatenate(grown)
            prefixes = [(*p, int(a)) for a in labels for p in prefixes]
    return best


# ------------------------------------------------------------------------------------------------ retrieval
def nearest_neighbour(train_sources: Sequence[Sequence[str]], queries: Sequence[Sequence[str]]) -> np.ndarray:
    """`[len(queries)]` index of the train source most similar to each query: cosine of TF-IDF vectors (raw
    counts times the smoothed idf ln((1 + N) / (1 + df)) + 1); ties, and queries sharing no word with any
    source, go to the lowest index.

    Scored through an inverted index (word -> the sources holding it, with their weights), so a query costs
    one vector update per distinct word.
    """
    lists: dict[str, tuple[list[int], list[int]]] = collections.defaultdict(lambda: ([], []))
    for i, doc in enumerate(train_sources):
        for w, c in collections.Counter(doc).items():
            lists[w][0].append(i)
            lists[w][1].append(c)
    N = len(train_sources)
    idf = {w: math.log((1 + N) / (1 + len(docs))) + 1 for w, (docs, _) in lists.items()}
    # word -> (sources holding it, their TF-IDF weights of it)
    postings = {w: (np.asarray(d), np.asarray(c) * idf[w]) for w, (d, c) in lists.items()}
    norms = np.zeros(N)
    for docs, weights in postings.values():
        norms[docs] += weights**2
    inverse_norms = 1 / np.sqrt(np.maximum(norms, 1e-24))
    out = np.zeros(len(queries), np.int64)
    for q, doc in enumerate(queries):
        scores = np.zeros(N)
        for w, c in collections.Counter(doc).items():
            if w in postings:
                docs, weights = postings[w]
                scores[docs] += c * idf[w] * weights
        out[q] = int(np.argmax(scores * inverse_norms))  # the query's own norm does not change the order
    return out


def translation_hypotheses(task, split: str = "test") -> dict[str, list[str]]:
    """The trivial translators' outputs on `split` as space-separated vocabulary words: 'copy' (the source
    words), 'most_frequent' (the most frequent train target), 'nearest_neighbour' (the target of the TF-IDF
    nearest train source)."""
    sv, tv = task.vocabs[task.source_key], task.target_vocab
    examples = {s: [task.decode(r) for r in task.records(s)] for s in ("train", split)}
    train_texts = [tv.decode(e["targets"][:-1]) for e in examples["train"]]
    sources = {
        s: [tokenize(as_str(r[task.source_key]), "word", True) for r in task.records(s)] for s in examples
    }
    return {
        "copy": [sv.decode(e["inputs"]) for e in examples[split]],
        "most_frequent": [most_frequent(train_texts)] * len(examples[split]),
        "nearest_neighbour": [train_texts[i] for i in nearest_neighbour(sources["train"], sources[split])],
    }


def translation_baselines(task, split: str = "test") -> dict[str, float]:
    """Trivial translators of a `translation.Seq2SeqTask` on `split` (`translation_hypotheses`):
    '<name>/exact_match' and '<name>/bleu' of each.

    Hypotheses and references are the words the vocabularies give back (unknown words read '<unk>'), as the
    model's translations are scored.
    """
    tv = task.target_vocab
    refs = [tv.decode(task.decode(r)["targets"][:-1]) for r in task.records(split)]
    hyps = translation_hypotheses(task, split)
    return {f"{name}/{k}": v for name, h in hyps.items() for k, v in text_scores(h, refs).items()}
