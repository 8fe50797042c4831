"""Loss and metrics per task kind, as (numerator, denominator) sums.

Returning sums rather than means lets every parallel path compute the SAME global mean: the train step
divides the local numerator by the global denominator and sums gradients over devices, so a 4-device step
equals the 1-device step, and a masked token counts once whatever shard it lands on.

``stats(outputs, batch) -> {name: (num, den)}``; ``finalize(stats) -> {name: num / den, ...derived}``.
'loss' is always present and is what the gradient descends.

Kinds:
  classification: outputs ``[B, C]`` logits, targets ``[B]`` int -> loss (cross-entropy), accuracy.
  regression: outputs ``[B, C]``, targets ``[B]`` (C = 1) or ``[B, C]`` float -> loss = mse
    (+ mse_over_baseline when the task knows its trivial baseline MSE).
  tagging / lm / seq2seq / captioning: outputs ``[B, T, C]``, targets ``[B, T]`` int; the steps that count
    are ``target_mask`` if given, else ``t < lengths`` (``target_lengths`` for seq2seq) -> loss = mean
    cross-entropy per counted step, accuracy; lm adds metrics named after ``TaskInfo.token_unit``:
    bits_per_char ('char'), perplexity and bits_per_word ('word'), perplexity and bits_per_token (None).
  tagging with a CRF: outputs ``rnnlab.crf.CRFScores`` -> loss = the CRF's negative log-likelihood per
    counted step, accuracy of the Viterbi tags. Taggers whose tags are a BIO scheme also get entity_f1,
    entity_precision, entity_recall (conlleval's micro scores, from ``rnnlab.taggers.entity_counts``: F1 =
    2 correct / (true + predicted) is a ratio of sums too).
  ctc: outputs ``[B, T, C]`` per-frame logits (class 0 = blank), targets ``[B, N]``, target_lengths ``[B]``
    -> loss = ``rnnlab.ctc.ctc_loss`` per sequence (nats), label_error_rate of the greedy (best-path)
    transcription (edits / reference labels).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rnnlab import ctc, taggers
from rnnlab.crf import CRFScores, negative_log_likelihood

KINDS = ("classification", "regression", "tagging", "lm", "seq2seq", "captioning", "ctc")
Stats = dict[str, tuple[jax.Array, jax.Array]]


def _example_weights(batch, n: int) -> jax.Array:
    # 'example_mask' [B] marks real examples in a padded final eval batch.
    if "example_mask" in batch:
        return batch["example_mask"].astype(jnp.float32)
    return jnp.ones((n,), jnp.float32)


def _classification(outputs, batch) -> Stats:
    targets = batch["targets"].astype(jnp.int32)
    if outputs.shape[:-1] != targets.shape:
        raise ValueError(
            f"classification outputs {outputs.shape} do not match targets {targets.shape}; use "
            "model.head='last' (or 'auto') for one class per sequence"
        )
    w = _example_weights(batch, targets.shape[0])
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), targets)
    correct = (jnp.argmax(outputs, -1) == targets).astype(jnp.float32)
    return {"loss": ((ce * w).sum(), w.sum()), "accuracy": ((correct * w).sum(), w.sum())}


def _regression(outputs, batch) -> Stats:
    targets = batch["targets"].astype(jnp.float32)
    preds = outputs.astype(jnp.float32)
    if targets.ndim == 1:
        if preds.shape[-1] != 1:
            raise ValueError(f"regression targets [B] need outputs [B, 1], got {preds.shape}")
        preds = preds[..., 0]
    if preds.shape != targets.shape:
        raise ValueError(
            f"regression outputs {preds.shape} do not match targets {targets.shape}; use model.head='last' "
            "(or 'auto') for one prediction per sequence"
        )
    w = _example_weights(batch, targets.shape[0]).reshape((-1,) + (1,) * (targets.ndim - 1))
    sq = jnp.square(preds - targets) * w
    n = w.sum() * (sq.size // sq.shape[0])
    return {"loss": (sq.sum(), n), "mse": (sq.sum(), n)}


def _step_mask(batch, targets, lengths_key) -> jax.Array:
    """``[B, T]`` float: the steps that count (``target_mask``, else ``t < lengths``), real examples only."""
    if "target_mask" in batch:
        mask = batch["target_mask"].astype(jnp.float32)
    else:
        steps = jnp.arange(targets.shape[1])
        mask = (steps[None, :] < batch[lengths_key][:, None]).astype(jnp.float32)
    return mask * _example_weights(batch, targets.shape[0])[:, None]


def _sequence(outputs, batch, lengths_key="lengths", scheme=None) -> Stats:
    targets = batch["targets"].astype(jnp.int32)
    crf = isinstance(outputs, CRFScores)
    emissions = outputs.emissions if crf else outputs
    if emissions.shape[:2] != targets.shape:
        raise ValueError(
            f"per-step outputs {emissions.shape} do not match targets {targets.shape}; "
            "use model.head='all' for per-step tasks"
        )
    mask = _step_mask(batch, targets, lengths_key)
    n = mask.sum()
    if crf:
        nll = negative_log_likelihood(
            outputs.params, emissions.astype(jnp.float32), targets, batch["lengths"]
        )
        loss = (nll * _example_weights(batch, targets.shape[0])).sum()
    else:
        ce = optax.softmax_cross_entropy_with_integer_labels(emissions.astype(jnp.float32), targets)
        loss = (ce * mask).sum()
    pred = taggers.best_tags(outputs, batch[lengths_key])
    correct = (pred == targets).astype(jnp.float32)
    out = {"loss": (loss, n), "accuracy": ((correct * mask).sum(), n)}
    if scheme is not None:
        right, true, predicted = taggers.entity_counts(targets, pred, mask, scheme)
        right, true, predicted = (x.astype(jnp.float32) for x in (right, true, predicted))
        out.update(
            entity_f1=(2 * right, true + predicted),
            entity_precision=(right, predicted),
            entity_recall=(right, true),
        )
    return out


def _ctc(outputs, batch) -> Stats:
    w = _example_weights(batch, outputs.shape[0])
    targets, target_lengths = batch["targets"], batch["target_lengths"]
    nll = ctc.ctc_loss(outputs.astype(jnp.float32), batch["lengths"], targets, target_lengths)
    hyps, hyp_lengths = ctc.greedy_decode(outputs, batch["lengths"])
    edits = ctc.edit_distances(hyps, hyp_lengths, targets, target_lengths).astype(jnp.float32)
    return {
        "loss": ((nll * w).sum(), w.sum()),
        "label_error_rate": ((edits * w).sum(), (target_lengths * w).sum()),
    }


@dataclasses.dataclass(frozen=True)
class Loss:
    """The loss of one task kind. ``baseline``: the trivial predictor's MSE (regression), if known;
    ``scheme``: ``rnnlab.taggers.bio_scheme`` of a tagger's tag names (adds the entity scores);
    ``token_unit``: what one predicted token of a language model is (``TaskInfo.token_unit``)."""

    kind: str
    baseline: float | None = None
    scheme: tuple | None = None
    token_unit: str | None = None

    def stats(self, outputs: jax.Array, batch: Mapping[str, Any]) -> Stats:
        """Per-batch sums: ``{name: (numerator, denominator)}`` (scalars)."""
        if self.kind == "classification":
            return _classification(outputs, batch)
        if self.kind == "regression":
            return _regression(outputs, batch)
        if self.kind in ("seq2seq", "captioning"):
            return _sequence(outputs, batch, "target_lengths")
        if self.kind == "ctc":
            return _ctc(outputs, batch)
        return _sequence(outputs, batch, scheme=self.scheme)

    def finalize(self, stats: Stats) -> dict[str, jax.Array]:
        """Means from sums (0 where nothing counted), plus derived metrics."""
        out = {k: jnp.where(den > 0, num / jnp.maximum(den, 1e-30), 0.0) for k, (num, den) in stats.items()}
        if self.kind == "regression" and self.baseline:
            out["mse_over_baseline"] = out["mse"] / self.baseline
        if self.kind == "lm":
            bits = out["loss"] / math.log(2.0)
            if self.token_unit == "char":
                out["bits_per_char"] = bits
            else:  # words (Mikolov et al. 2010 report perplexity), or tokens of unknown kind
                out["perplexity"] = jnp.exp(out["loss"])
                out[f"bits_per_{self.token_unit or 'token'}"] = bits
        return out


def get_loss(info) -> Loss:
    """The loss for a ``TaskInfo`` (uses ``info.kind``, ``info.token_unit``, ``info.baseline`` when its
    metric is MSE, and the tag names ``info.label_names`` of a tagger)."""
    kind = info.kind
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}; valid: {', '.join(KINDS)}")
    baseline = getattr(info, "baseline", None)
    metric = getattr(info, "baseline_metric", None)
    if kind != "regression" or metric not in (None, "mse", "loss"):
        baseline = None
    names = getattr(info, "label_names", ())
    scheme = taggers.bio_scheme(names) if kind == "tagging" and names else None
    return Loss(kind, float(baseline) if baseline else None, scheme, getattr(info, "token_unit", None))
