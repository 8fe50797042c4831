"""Generation from trained runs: autocompletion with a language model, translation with a ``Seq2Seq``, image
captioning and CTC transcription, with their scores next to trivial baselines.

    run = load_run(workdir)                                  # rnnlab.apps.runs (latest checkpoint, seed 0)
    complete(run, 'To be, or', length=200, temperature=0.8, top_k=20)   # the continuation
    translate(run, ['twenty-one'], beam_size=4)              # ['vingt et un'] (detokenised)
    evaluate_translation(run, beam_size=4)                   # scores (+ sacreBLEU) and baselines, test split
    caption(run, images, beam_size=4)                        # ['seven two nine']
    transcribe(run, [frames], beam_size=8)                   # [[8, 3, 10]] (labels; names in label_names)

Shape legend: B batch, S source length, L generated length, V vocabulary, K beams, h x W an image, T frames,
D features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from rnnlab import decoding
from rnnlab.apps.runs import LoadedRun
from rnnlab.tasks.baselines import translation_hypotheses
from rnnlab.tasks.dataset_task import as_str
from rnnlab.tasks.vocab import detokenize
from rnnlab.training import captioning, transcription
from rnnlab.training.seq2seq import decode_ids, translation_metrics

_KIND_NAMES = {"lm": "language-model", "ctc": "CTC transcription"}


def _check_kind(run: LoadedRun, kind: str, what: str) -> None:
    if run.task.info.kind != kind:
        raise ValueError(
            f"{what} needs a {_KIND_NAMES.get(kind, kind)} run; "
            f"{run.task.info.name!r} is {run.task.info.kind!r}"
        )


# ------------------------------------------------------------------------------------------------ LM
def complete(
    run: LoadedRun, prompt: str, *, length: int = 200, temperature: float = 1.0, top_k: int = 0, seed: int = 0
) -> str:
    """Continues ``prompt`` with ``length`` tokens from a language-model run: the model reads the prompt
    (``decoding.lm_prefill``), then samples (``temperature`` 0 = greedy, ``top_k`` 0 = every token).

    Returns:
      The continuation only (characters joined for char vocabularies, words with spaces otherwise).
    """
    _check_kind(run, "lm", "complete")
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
def source_ids(run: LoadedRun, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> source ids ``[B, S]`` (0-padded) and lengths ``[B]``, tokenised like the training data."""
    sv = run.task.vocabs[run.task.source_key]
    ids = [sv.encode(t) for t in texts]
    if any(len(x) == 0 for x in ids):
        raise ValueError("a text to translate has no tokens")
    s = max(len(x) for x in ids)
    inputs = np.stack([np.pad(x, (0, s - len(x))) for x in ids]).astype(np.int32)
    return inputs, np.array([len(x) for x in ids], np.int32)


def translate(run: LoadedRun, texts: Sequence[str], *, beam_size: int = 0) -> list[str]:
    """Translations of ``texts`` by a seq2seq run (greedy, or the best of ``beam_size`` beams), as readable
    text (``task.target_text``: hyphens and punctuation rejoined, e.g. 'quarante-deux')."""
    _check_kind(run, "seq2seq", "translate")
    inputs, lengths = source_ids(run, texts)
    ids = decode_ids(run.model, run.params, run.task, inputs, lengths, beam_size=beam_size)
    return [run.task.target_text(row) for row in ids]


def _eval_batch_size(run: LoadedRun) -> int:
    """The run's evaluation batch: decoding in batches of this size reuses what evaluation compiled."""
    return run.config.train.eval_batch_size or run.config.train.batch_size


def sacrebleu_scores(run: LoadedRun, *, beam_size: int = 4, split: str = "test"):
    """Corpus BLEU by sacreBLEU (13a tokenisation, case-insensitive, in [0, 1]) of the model's detokenised
    translations and of the trivial translators (``rnnlab.tasks.baselines.translation_hypotheses``)
    against the real reference texts of ``split`` (rare words included, not '<unk>').

    Returns ``{'sacrebleu_greedy', 'sacrebleu_beam', 'baselines': {'<name>/sacrebleu'}}``; raises
    ImportError without the optional ``sacrebleu`` package (``pip install rnnlab[text]``).
    """
    import sacrebleu  # an optional dependency (the extra 'text'), needed here only

    task = run.task
    records = task.records(split)
    refs = [as_str(r[task.target_key]).lower() for r in records]
    sources = [as_str(r[task.source_key]) for r in records]
    hyps: dict[str, list[str]] = {"greedy": [], "beam": []}
    batch_size = _eval_batch_size(run)
    for i in range(0, len(sources), batch_size):
        inputs, lengths = source_ids(run, sources[i : i + batch_size])
        n = len(lengths)
        pad = batch_size - n  # equal batches: one compiled decoder
        inputs = np.pad(inputs, ((0, pad), (0, 0)))
        lengths = np.pad(lengths, (0, pad), constant_values=1)
        for name, k in (("greedy", 0), ("beam", beam_size)):
            ids = decode_ids(run.model, run.params, task, inputs, lengths, beam_size=k)[:n]
            hyps[name] += [task.target_text(row) for row in ids]

    def bleu(h):
        return sacrebleu.corpus_bleu(h, [refs], lowercase=True).score / 100

    base = {
        f"{name}/sacrebleu": bleu([detokenize(x.split()) for x in h])
        for name, h in translation_hypotheses(task, split).items()
    }
    return {"sacrebleu_greedy": bleu(hyps["greedy"]), "sacrebleu_beam": bleu(hyps["beam"]), "baselines": base}


def evaluate_translation(run: LoadedRun, *, beam_size: int = 4, sacrebleu: bool = True) -> dict[str, Any]:
    """``{'step', 'exact_match_greedy', 'bleu_greedy', 'exact_match_beam', 'bleu_beam', 'baselines'}`` on the
    test split (``rnnlab.training.seq2seq.translation_metrics``; baselines: ``task.baselines()``: copy,
    most frequent, nearest neighbour), plus sacreBLEU scores (``sacrebleu_scores``) when ``sacrebleu``."""
    _check_kind(run, "seq2seq", "evaluate_translation")
    scores = translation_metrics(
        run.model, run.params, run.task, batch_size=_eval_batch_size(run), beam_size=beam_size
    )
    out = {"step": run.step, **scores, "baselines": run.task.baselines("test")}
    if sacrebleu:
        extra = sacrebleu_scores(run, beam_size=beam_size)
        out["baselines"].update(extra.pop("baselines"))
        out.update(extra)
    return out


# ------------------------------------------------------------------------------------------------ images
def caption(run: LoadedRun, images: np.ndarray, *, beam_size: int = 0) -> list[str]:
    """Captions of ``images [B, h, W]`` (the task's ``input_shape``, pixels in [0, 1]) by a captioning
    run: greedy, or the best of ``beam_size`` beams."""
    _check_kind(run, "captioning", "caption")
    images = np.asarray(images, np.float32)
    if images.shape[1:] != tuple(run.task.info.input_shape):
        raise ValueError(
            f"images must be [B, {', '.join(map(str, run.task.info.input_shape))}], got {images.shape}"
        )
    max_len = next(run.task.iterator("test", 1, 0, num_epochs=1, shuffle=False))["targets"].shape[1]
    ids = captioning.caption_ids(
        run.model, run.params, run.task.target_vocab, images, max_len=max_len, beam_size=beam_size
    )
    return [run.task.target_text(row) for row in ids]


def evaluate_captioner(run: LoadedRun, *, beam_size: int = 4, split: str = "test") -> dict[str, Any]:
    """``{'step', 'split', 'exact_match_greedy', 'bleu_greedy', 'exact_match_beam', 'bleu_beam',
    'baselines'}``: ``rnnlab.training.captioning.caption_metrics`` next to ``task.baselines(split)``."""
    _check_kind(run, "captioning", "evaluate_captioner")
    batch_size = _eval_batch_size(run)
    scores = captioning.caption_metrics(
        run.model, run.params, run.task, batch_size=batch_size, beam_size=beam_size, split=split
    )
    return {"step": run.step, "split": split, **scores, "baselines": run.task.baselines(split)}


# ------------------------------------------------------------------------------------------------ CTC
def transcribe(run: LoadedRun, frames: Sequence[np.ndarray], *, beam_size: int = 0) -> list[list[int]]:
    """Label sequences (1..C-1; 0 is the blank) of frame sequences ``[T, D]`` by a CTC run: best path, or
    the most probable labelling of a prefix beam search of ``beam_size``."""
    _check_kind(run, "ctc", "transcribe")
    d = run.task.info.input_size
    for f in frames:
        if np.ndim(f) != 2 or np.shape(f)[1] != d:
            raise ValueError(f"frames must be [T, {d}], got shape {np.shape(f)}")
    lengths = np.array([len(f) for f in frames], np.int32)
    inputs = np.zeros((len(frames), max(1, int(lengths.max(initial=0))), d), np.float32)
    for i, f in enumerate(frames):
        inputs[i, : len(f)] = f
    log_probs = transcription.log_probs(run.adapter, run.params, inputs, lengths)
    return transcription.decode(log_probs, lengths, beam_size)


def label_text(run: LoadedRun, labels: Sequence[int]) -> str:
    """Labels -> text through ``TaskInfo.label_names`` (joined without spaces when every name is one
    character, e.g. digits '729'); the ids themselves when the task has no names."""
    names = run.task.info.label_names
    if not names:
        return " ".join(str(int(x)) for x in labels)
    words = [names[int(x)] for x in labels]
    return ("" if all(len(w) == 1 for w in words) else " ").join(words)


def evaluate_transcriber(run: LoadedRun, *, beam_size: int = 8, split: str = "test") -> dict[str, Any]:
    """``{'step', 'split', 'label_error_rate_greedy', 'label_error_rate_beam', 'baselines'}``:
    ``rnnlab.training.transcription.transcription_metrics`` next to ``task.baselines(split)``."""
    _check_kind(run, "ctc", "evaluate_transcriber")
    batch_size = _eval_batch_size(run)
    scores = transcription.transcription_metrics(
        run.adapter, run.params, run.task, batch_size=batch_size, beam_size=beam_size, split=split
    )
    return {"step": run.step, "split": split, **scores, "baselines": run.task.baselines(split)}
