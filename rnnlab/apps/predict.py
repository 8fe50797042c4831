"""Predictions and application scores of trained runs (beyond the loss-based ``eval/...`` metrics).

    run = load_run('runs/sentiment')                 # rnnlab.apps.runs: config.json + the latest checkpoint
    positive_probability(run, ['a gorgeous film'])   # [N] P(class 1), tokenised with the task vocabulary
    tag_texts(run, ['Obama visits New York'])        # [[(token, tag), ...]] (Viterbi for a CRF tagger)
    evaluate_app('runs/ner')                         # dispatch on the task: tagger / forecaster / classifier
                                                     # / CTC transcriber / captioner

Scores (all on one split, 'test' by default, of ONE seed's model, ``seed_index`` 0 = ``config.seed``):

* ``evaluate_tagger``: CoNLL entity precision / recall / F1 (``rnnlab.textmetrics.entity_f1``: type and exact
  span must match) and token accuracy, next to the trivial tagger (always the majority tag, 'O': entity F1 0).
* ``evaluate_forecaster``: MSE and MAE (standardised units; ``std`` converts back) of the model, the naive
  forecast (last value repeated) and the seasonal-naive one, overall and per horizon step.
* ``evaluate_classifier``: accuracy next to the majority-class accuracy (``TaskInfo.baseline``).

Shape legend: N examples, B batch, T time, C classes / outputs, k forecast horizon.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from rnnlab import textmetrics
from rnnlab.apps import figures, generate
from rnnlab.apps.runs import LoadedRun, load_run
from rnnlab.taggers import best_tags


def _as_run(run_or_workdir, **load_kwargs) -> LoadedRun:
    if isinstance(run_or_workdir, LoadedRun):
        return run_or_workdir
    return load_run(run_or_workdir, **load_kwargs)


def _pad(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Token id arrays -> ``ids [N, T]`` (0-padded, T >= 1) and ``lengths [N]``."""
    lengths = np.array([len(s) for s in seqs], np.int32)
    ids = np.zeros((len(seqs), max(1, int(lengths.max(initial=0)))), np.int32)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return ids, lengths


def _vocab(run: LoadedRun):
    vocab = getattr(run.task, "vocab", None)
    if vocab is None or run.task.info.vocab_size is None:
        raise ValueError(f"task {run.task.info.name!r} does not read text (it has no vocabulary)")
    return vocab


# --------------------------------------------------------------------------------------------------------
# Prediction


def class_probabilities(run: LoadedRun, texts: Sequence[str]) -> np.ndarray:
    """Texts -> softmax probabilities ``[N, C]`` of a text classifier (tokenised like its training data)."""
    if run.task.info.kind != "classification":
        raise ValueError(f"task {run.task.info.name!r} is {run.task.info.kind}, not classification")
    ids, lengths = _pad([_vocab(run).encode(t) for t in texts])
    return np.asarray(jax.nn.softmax(run.apply(ids, lengths).astype(np.float32), axis=-1))


def positive_probability(run: LoadedRun, texts: Sequence[str]) -> np.ndarray:
    """``[N]`` probability of class 1 (positive sentiment) for each text."""
    probs = class_probabilities(run, texts)
    if probs.shape[-1] != 2:
        raise ValueError(
            f"positive_probability needs a binary classifier; this one has {probs.shape[-1]} classes"
        )
    return probs[:, 1]


def tag_names(task) -> list[str]:
    """The tag strings of a tagging task (index = tag id), from its TFDS ClassLabel feature."""
    feature = task.builder.info.features[task.tags_key]
    return list(getattr(feature, "feature", feature).names)


def _token_features(run: LoadedRun, tokens: Sequence[str]) -> dict[str, np.ndarray]:
    """The per-token features (``TaskInfo.extra_inputs``) of one tokenised text, as the task computes them."""
    if not run.task.info.extra_inputs:
        return {}
    example = run.task.decode({run.task.tokens_key: list(tokens), run.task.tags_key: [0] * len(tokens)})
    return {k: example[k] for k in run.task.info.extra_inputs}


def _pad_features(rows: Sequence[dict[str, np.ndarray]], length: int) -> dict[str, np.ndarray]:
    """Per-text feature arrays ``[L, ...]`` -> ``{key: [N, length, ...]}`` zero-padded."""
    out = {}
    for key in rows[0] if rows else ():
        first = rows[0][key]
        arr = np.zeros((len(rows), length, *first.shape[1:]), first.dtype)
        for i, r in enumerate(rows):
            arr[i, : len(r[key])] = r[key]
        out[key] = arr
    return out


def predicted_tags(run: LoadedRun, batch) -> np.ndarray:
    """``[B, T]`` tag ids of a tagger on a batch: argmax per token, or the Viterbi path of a CRF tagger."""
    return np.asarray(best_tags(run.forward(batch), jax.numpy.asarray(batch["lengths"])))


def tag_texts(run: LoadedRun, texts: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Whitespace-tokenised texts -> ``[(token, predicted tag), ...]`` per text (with the task's character
    and case features when the tagger reads them; Viterbi decoding for a CRF tagger)."""
    if run.task.info.kind != "tagging":
        raise ValueError(f"task {run.task.info.name!r} is {run.task.info.kind}, not tagging")
    names = tag_names(run.task)
    tokens = [t.split() for t in texts]
    ids, lengths = _pad([_vocab(run).encode(toks) for toks in tokens])
    batch = {"inputs": ids, "lengths": lengths}
    batch.update(_pad_features([_token_features(run, toks) for toks in tokens], ids.shape[1]))
    pred = predicted_tags(run, batch)
    return [
        [(tok, names[int(p)]) for tok, p in zip(toks, row, strict=False)]
        for toks, row in zip(tokens, pred, strict=True)
    ]


def classify_clips(run: LoadedRun, paths: Sequence[str]) -> np.ndarray:
    """``.npy`` clips ``[T, H, W]`` (pixels in [0, 1]) -> class probabilities ``[N, C]`` of a video
    classifier (each clip alone: its T frames, no padding)."""
    probs = []
    for path in paths:
        clip = np.load(path).astype(np.float32)
        if clip.ndim != 3 or clip.shape[1:] != tuple(run.task.info.input_shape[1:]):
            raise ValueError(
                f"{path}: a clip must be [T, {', '.join(map(str, run.task.info.input_shape[1:]))}], "
                f"got {clip.shape}"
            )
        logits = run.apply(clip[None], np.array([len(clip)], np.int32))
        probs.append(np.asarray(jax.nn.softmax(logits.astype(np.float32), axis=-1))[0])
    return np.stack(probs)


def predict(run: LoadedRun, inputs: Sequence[str], *, beam_size: int = 0) -> list[Any]:
    """One prediction per input, by the run's task:

    * text classifier: P(positive) (binary) or the class probabilities ``[C]``; tagger: ``[(token, tag)]``;
    * captioning: the caption of each image file (PNG or ``.npy``, ``figures.read_image``);
    * CTC: the transcription of each file (``.npy`` frames ``[T, D]`` or an image read column by column),
      as text through ``TaskInfo.label_names``;
    * video classifier: the class probabilities ``[C]`` of each ``.npy`` clip ``[T, H, W]``.

    ``beam_size``: captioning and CTC decoding (0 = greedy / best path).
    """
    info = run.task.info
    if info.kind == "tagging":
        return tag_texts(run, inputs)
    if info.kind == "captioning":
        images = [figures.read_image(f, info.input_shape) for f in inputs]
        return generate.caption(run, np.stack(images), beam_size=beam_size)
    if info.kind == "ctc":
        frames = [figures.read_frames(f, info.input_size) for f in inputs]
        return [generate.label_text(run, x) for x in generate.transcribe(run, frames, beam_size=beam_size)]
    if info.input_shape is not None and len(info.input_shape) == 3:
        return list(classify_clips(run, inputs))
    if info.kind != "classification":
        raise ValueError(
            f"predict reads texts, images, frames or clips; {info.name!r} is {info.kind}: use "
            "`rnnlab predict --evaluate` or `rnnlab eval` for its scores"
        )
    probs = class_probabilities(run, inputs)
    return list(probs[:, 1]) if probs.shape[-1] == 2 else list(probs)


def predict_lines(run: LoadedRun, inputs: Sequence[str], *, beam_size: int = 0) -> list[str]:
    """``predict`` as the lines ``rnnlab predict`` prints: ``token/TAG ...`` for a tagger, else the
    prediction (text, or probabilities to 4 decimals), a tab, and the input."""
    lines = []
    for text, out in zip(inputs, predict(run, inputs, beam_size=beam_size), strict=True):
        if isinstance(out, list):
            lines.append(" ".join(f"{tok}/{tag}" for tok, tag in out))
        elif isinstance(out, str):
            lines.append(f"{out}\t{text}")
        elif np.ndim(out) == 0:
            lines.append(f"{float(out):.4f}\t{text}")
        else:
            lines.append(" ".join(f"{float(v):.4f}" for v in out) + f"\t{text}")
    return lines


# --------------------------------------------------------------------------------------------------------
# Application scores


def _batches(run: LoadedRun, split: str, batch_size: int):
    return run.task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False)


def evaluate_tagger(run_or_workdir, *, split: str = "test", batch_size: int = 128, **load_kwargs) -> dict:
    """Entity-level (CoNLL) precision / recall / F1 and token accuracy of a tagger on ``split``.

    Returns:
      ``{'step', 'split', 'num_sentences', 'precision', 'recall', 'f1', 'token_accuracy',
      'baseline_token_accuracy' (always the majority train tag), 'baseline_f1' (its entity F1),
      'per_type': {TYPE: {'precision', 'recall', 'f1', 'num_true', 'num_pred'}}}``.
    """
    run = _as_run(run_or_workdir, **load_kwargs)
    if run.task.info.kind != "tagging":
        raise ValueError(f"task {run.task.info.name!r} is {run.task.info.kind}, not tagging")
    names = tag_names(run.task)
    true_tags, pred_tags = [], []
    for batch in _batches(run, split, batch_size):
        pred = predicted_tags(run, batch)
        for t, p, n in zip(batch["targets"], pred, batch["lengths"], strict=True):
            true_tags.append([names[int(i)] for i in t[:n]])
            pred_tags.append([names[int(i)] for i in p[:n]])
    scores = textmetrics.entity_f1(true_tags, pred_tags)
    majority = names[int(np.bincount([names.index(x) for s in _train_tags(run) for x in s]).argmax())]
    trivial = textmetrics.entity_f1(true_tags, [[majority] * len(s) for s in true_tags])["overall"]
    overall = scores["overall"]
    return {
        "step": run.step,
        "split": split,
        "num_sentences": len(true_tags),
        "precision": overall.precision,
        "recall": overall.recall,
        "f1": overall.f1,
        "token_accuracy": textmetrics.token_accuracy(true_tags, pred_tags),
        "baseline_token_accuracy": textmetrics.token_accuracy(
            true_tags, [[majority] * len(s) for s in true_tags]
        ),
        "baseline_f1": trivial.f1,
        "per_type": {
            k: {
                "precision": v.precision,
                "recall": v.recall,
                "f1": v.f1,
                "num_true": v.num_true,
                "num_pred": v.num_pred,
            }
            for k, v in scores.items()
            if k != "overall"
        },
    }


def _train_tags(run: LoadedRun) -> list[list[str]]:
    names = tag_names(run.task)
    return [[names[int(i)] for i in r[run.task.tags_key]] for r in run.task.records("train")]


def _errors(pred: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    err = pred - targets
    if err.ndim == 1:
        err = err[:, None]
    return {
        "mse": float(np.mean(err**2)),
        "mae": float(np.mean(np.abs(err))),
        "mse_by_step": [float(v) for v in np.mean(err**2, axis=0)],
    }


def evaluate_forecaster(run_or_workdir, *, split: str = "test", batch_size: int = 256, **load_kwargs) -> dict:
    """MSE / MAE of a forecaster on every window of ``split``, against the naive and seasonal-naive forecasts.

    Errors are in standardised units (the task's inputs and targets); multiply MAE by ``std`` (MSE by
    ``std**2``) for the series' units.

    Returns:
      ``{'step', 'split', 'horizon', 'season', 'num_windows', 'std', 'model': {...}, 'naive': {...},
      'seasonal_naive': {...} (when the task has a season), 'mse_over_naive', 'mse_over_seasonal_naive',
      'mse_over_best_baseline'}`` with ``{'mse', 'mae', 'mse_by_step' [k]}`` per forecaster.
    """
    run = _as_run(run_or_workdir, **load_kwargs)
    task = run.task
    if not hasattr(task, "baseline_forecasts"):
        raise ValueError(f"task {task.info.name!r} is not a forecasting task")
    arrays = task.windows(split).arrays
    x, y = arrays["inputs"], arrays["targets"]
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        outs.append(run.apply(xb, np.full(len(xb), xb.shape[1], np.int32)))
    pred = np.concatenate(outs)
    pred = pred[:, 0] if y.ndim == 1 else pred
    result = {
        "step": run.step,
        "split": split,
        "horizon": task.horizon,
        "season": task.season,
        "num_windows": len(y),
        "std": task.std,
        "model": _errors(pred, y),
    }
    for name, forecast in task.baseline_forecasts(split).items():
        result[name] = _errors(forecast, y)
        result[f"mse_over_{name}"] = result["model"]["mse"] / max(result[name]["mse"], 1e-30)
    result["mse_over_best_baseline"] = max(v for k, v in result.items() if k.startswith("mse_over_"))
    return result


def evaluate_classifier(run_or_workdir, *, split: str = "test", batch_size: int = 256, **load_kwargs) -> dict:
    """Accuracy of a classifier on ``split`` next to the majority-class accuracy.

    Returns:
      ``{'step', 'split', 'num_examples', 'accuracy', 'baseline_accuracy', 'num_classes'}``.
    """
    run = _as_run(run_or_workdir, **load_kwargs)
    info = run.task.info
    if info.kind != "classification":
        raise ValueError(f"task {info.name!r} is {info.kind}, not classification")
    correct = total = 0
    for batch in _batches(run, split, batch_size):
        pred = run.apply(batch["inputs"], batch["lengths"]).argmax(-1)
        correct += int(np.sum(pred == batch["targets"]))
        total += len(pred)
    return {
        "step": run.step,
        "split": split,
        "num_examples": total,
        "accuracy": correct / max(total, 1),
        "baseline_accuracy": info.baseline if split == "test" else None,
        "num_classes": info.num_outputs,
    }


def evaluate_app(
    workdir: str, *, split: str = "test", write: bool = True, beam_size: int = 0, **load_kwargs
) -> dict:
    """The application score of a run: ``evaluate_tagger`` (tagging), ``evaluate_forecaster``
    (forecasting), ``evaluate_classifier`` (classification, clips included), ``generate.evaluate_transcriber``
    (CTC: label error rates, beam ``beam_size`` or 8), ``generate.evaluate_captioner`` (captioning: exact
    match and BLEU, beam ``beam_size`` or 4). Written to ``workdir/app_eval_<step>.json`` when ``write``.
    ``load_kwargs``: ``step``, ``seed_index`` of ``load_run``."""
    run = load_run(workdir, **load_kwargs)
    kind = run.task.info.kind
    if kind == "tagging":
        result = evaluate_tagger(run, split=split)
    elif hasattr(run.task, "baseline_forecasts"):
        result = evaluate_forecaster(run, split=split)
    elif kind == "classification":
        result = evaluate_classifier(run, split=split)
    elif kind == "ctc":
        result = generate.evaluate_transcriber(run, beam_size=beam_size or 8, split=split)
    elif kind == "captioning":
        result = generate.evaluate_captioner(run, beam_size=beam_size or 4, split=split)
    else:
        raise ValueError(
            f"no application score for {kind} task {run.task.info.name!r}; use `rnnlab eval` "
            "(or `rnnlab translate --evaluate` for translation)"
        )
    result = {"task": run.task.info.name, "seed": run.seed, **result}
    if write:
        with open(os.path.join(workdir, f"app_eval_{run.step}.json"), "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    return result
