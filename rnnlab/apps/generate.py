"""Generation from trained runs: autocompletion with a language model and translation with a ``Seq2Seq``,
with the translation scores (exact match, corpus BLEU) next to trivial translators.

    run = load_run(workdir)                                  # rnnlab.apps.runs (latest checkpoint, seed 0)
    complete(run, 'To be, or', length=200, temperature=0.8, top_k=20)   # the continuation
    translate(run, ['twenty-one'], beam_size=4)              # ['vingt et un']
    evaluate_translation(run, beam_size=4)                   # scores and baselines on the test split

Shape legend: B batch, S source length, L generated length, V vocabulary, K beams.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from rnnlab import decoding, textmetrics
from rnnlab.apps.runs import LoadedRun
from rnnlab.training.seq2seq import EOS, decode_batch, text_of, translation_metrics


# ------------------------------------------------------------------------------------------------ LM
def complete(
    run: LoadedRun, prompt: str, *, length: int = 200, temperature: float = 1.0, top_k: int = 0, seed: int = 0
) -> str:
    """Continues ``prompt`` with ``length`` tokens from a language-model run: the model reads the prompt
    (``decoding.lm_prefill``), then samples (``temperature`` 0 = greedy, ``top_k`` 0 = every token).

    Returns:
      The continuation only (characters joined for char vocabularies, words with spaces otherwise).
    """
    if run.task.info.kind != "lm":
        raise ValueError(
            f"complete needs a language-model run; {run.task.info.name!r} is {run.task.info.kind!r}"
        )
    for name, value, low in (("length", length, 1), ("temperature", temperature, 0), ("top_k", top_k, 0)):
        if not value >= low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    vocab = run.task.vocab
    ids = vocab.encode(prompt)
    if len(ids) == 0:
        raise ValueError("the prompt is empty (no tokens)")
    carry, last = decoding.lm_prefill(run.model, run.params, ids[None])
    step_fn = decoding.lm_step_fn(run.model, run.params)
    tokens = decoding.sample(
        step_fn, carry, last, length, jax.random.key(seed), temperature, top_k, pad=vocab.pad_id
    )
    return vocab.decode(np.asarray(tokens[0]))


# ------------------------------------------------------------------------------------------------ seq2seq
def _check_seq2seq(run: LoadedRun, what: str) -> None:
    if run.task.info.kind != "seq2seq":
        raise ValueError(f"{what} needs a seq2seq run; {run.task.info.name!r} is {run.task.info.kind!r}")


def translate(run: LoadedRun, texts: Sequence[str], *, beam_size: int = 0) -> list[str]:
    """Translations of ``texts`` by a seq2seq run (greedy, or the best of ``beam_size`` beams)."""
    _check_seq2seq(run, "translate")
    sv = run.task.vocabs[run.task.source_key]
    ids = [sv.encode(t) for t in texts]
    if any(len(x) == 0 for x in ids):
        raise ValueError("a text to translate has no tokens")
    s = max(len(x) for x in ids)
    inputs = np.stack([np.pad(x, (0, s - len(x))) for x in ids]).astype(np.int32)
    lengths = np.array([len(x) for x in ids], np.int32)
    return decode_batch(run.model, run.params, run.task, inputs, lengths, beam_size=beam_size)


def translation_baselines(task, split: str = "test") -> dict[str, float]:
    """Trivial translators on ``split``: ``copy`` (output the source words) and ``most_frequent`` (always the
    most frequent train target): exact match and corpus BLEU-4 of each."""
    tv = task.vocabs[task.target_key]
    eos = tv.id(EOS)
    refs = [text_of(tv, task.decode(r)["targets"], eos) for r in task.records(split)]
    sv = task.vocabs[task.source_key]
    copy = [sv.decode(task.decode(r)["inputs"]) for r in task.records(split)]
    train_targets = collections.Counter(
        text_of(tv, task.decode(r)["targets"], eos) for r in task.records("train")
    )
    frequent = [train_targets.most_common(1)[0][0]] * len(refs)
    out = {}
    for name, hyps in (("copy", copy), ("most_frequent", frequent)):
        out[f"{name}/exact_match"] = textmetrics.exact_match(refs, hyps)
        out[f"{name}/bleu"] = textmetrics.corpus_bleu(hyps, refs).bleu
    return out


def evaluate_translation(run: LoadedRun, *, beam_size: int = 4) -> dict[str, Any]:
    """``{'step', 'exact_match_greedy', 'bleu_greedy', 'exact_match_beam', 'bleu_beam', 'baselines'}`` on the
    test split (``rnnlab.training.seq2seq.translation_metrics``, ``translation_baselines``)."""
    _check_seq2seq(run, "evaluate_translation")
    scores = translation_metrics(run.model, run.params, run.task, beam_size=beam_size)
    return {"step": run.step, **scores, "baselines": translation_baselines(run.task)}
