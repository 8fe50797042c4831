"""Connectionist temporal classification: transcribe frames into an unsegmented label sequence (Graves,
Fernández, Gomez & Schmidhuber 2006, "Connectionist temporal classification: labelling unsegmented sequence
data with recurrent neural networks").

Shape legend: B batch, T frames, C classes (the labels and the blank), N label length.

The network emits a distribution over C classes per frame, one of them the blank. An alignment (one class per
frame) maps to a labelling by collapsing repeats and then dropping blanks (``a a - b b -> a b``, ``a - a ->
a a``), and ``p(labelling) = sum over its alignments of prod_t p_t(alignment_t)``.

* :func:`ctc_loss`: ``-log p(labels | frames)`` per sequence, through :func:`optax.ctc_loss` (its forward
  algorithm is optax's own loop; the loss is a library function, not a model's time loop).
* :func:`greedy_decode`: the best path (argmax per frame), collapsed: jittable, exact for the best *path*
  only.
* :func:`prefix_beam_search`: host-side NumPy search over labellings (prefixes), summing over the
  alignments of each (Hannun, Maas, Jurafsky & Ng 2014, "First-pass large vocabulary continuous speech
  recognition using bi-directional recurrent DNNs", Algorithm 1, without a language model). With a beam at
  least as large as the number of prefixes it returns the exact most probable labelling.

Scoring transcriptions: :func:`rnnlab.textmetrics.label_error_rate` (host side) and :func:`edit_distances`
(jitted, a batch at once, what the training loop's ``label_error_rate`` sums).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array


def _paddings(lengths: Array, size: int) -> Array:
    """``[B, size]`` float: 1.0 on padded positions (optax's convention), 0.0 on valid ones."""
    return (jnp.arange(size)[None, :] >= jnp.asarray(lengths)[:, None]).astype(jnp.float32)


def ctc_loss(
    logits: Array, logit_lengths: Array, labels: Array, label_lengths: Array, *, blank: int = 0
) -> Array:
    """``-log p(labels | logits)`` per sequence.

    Args:
      logits: ``[B, T, C]`` unnormalised per-frame scores (``blank`` one of the C classes).
      logit_lengths: ``[B]`` valid frames; labels: ``[B, N]`` int, right-padded (any value);
      label_lengths: ``[B]`` valid labels.
      blank: the blank class.

    Returns:
      ``[B]`` losses in nats. A labelling that needs more frames than there are (N plus one per repeated
      pair) has no alignment; its loss is then huge (about ``-optax``'s ``log_epsilon`` = 1e5), not inf.
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels, jnp.int32)
    return optax.ctc_loss(
        logits,
        _paddings(logit_lengths, logits.shape[1]),
        labels,
        _paddings(label_lengths, labels.shape[1]),
        blank_id=blank,
    )


def greedy_decode(logits: Array, lengths: Array | None = None, *, blank: int = 0) -> tuple[Array, Array]:
    """Best-path decoding: the argmax class of every valid frame, repeats collapsed, blanks dropped.

    Args:
      logits: ``[B, T, C]`` (or log-probabilities); lengths: ``[B]`` valid frames, or None (all T).

    Returns:
      ``(labels [B, T] int32, label_lengths [B] int32)``: each row's labels first, then ``blank``.
    """
    logits = jnp.asarray(logits)
    b, t, _ = logits.shape
    best = jnp.argmax(logits, axis=-1).astype(jnp.int32)  # [B, T]
    valid = jnp.ones((b, t), bool) if lengths is None else jnp.arange(t)[None] < jnp.asarray(lengths)[:, None]
    prev = jnp.concatenate([jnp.full((b, 1), -1, jnp.int32), best[:, :-1]], axis=1)
    keep = valid & (best != blank) & (best != prev)
    # Move the kept labels to the front of each row: a stable sort on "not kept".
    order = jnp.argsort(~keep, axis=1, stable=True)
    labels = jnp.take_along_axis(jnp.where(keep, best, blank), order, axis=1)
    return labels, keep.sum(axis=1).astype(jnp.int32)


def to_lists(labels, lengths) -> list[list[int]]:
    """``labels [B, N]``, ``lengths [B]`` -> B Python lists of the valid labels (for the metrics)."""
    labels, lengths = np.asarray(labels), np.asarray(lengths)
    return [labels[i, : lengths[i]].tolist() for i in range(len(lengths))]


def prefix_beam_search(
    log_probs, beam_size: int = 8, *, blank: int = 0
) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search over one sequence (Hannun et al. 2014, Algorithm 1, no language model).

    Every prefix keeps two log-probabilities: of the alignments of frames 1..t that collapse to it and end
    in a blank, and of those that end in its last label. A repeated label extends the prefix only after a
    blank (``a - a``); otherwise it stays the same prefix (``a a``). After each frame the ``beam_size`` most
    probable prefixes survive.

    Args:
      log_probs: ``[T, C]`` per-frame log-probabilities of one sequence's valid frames (host NumPy).
      beam_size: prefixes kept per frame.
      blank: the blank class.

    Returns:
      Up to ``beam_size`` ``(labelling, log p(labelling))`` pairs, most probable first.
    """
    log_probs = np.asarray(log_probs, np.float64)
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be [T, C] for one sequence, got shape {log_probs.shape}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    neg_inf = -np.inf
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg_inf)}  # prefix -> (blank, non-blank)
    labels = [c for c in range(log_probs.shape[1]) if c != blank]
    for lp in log_probs:
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, which, value, nxt=nxt):
            entry = nxt.setdefault(prefix, [neg_inf, neg_inf])
            entry[which] = np.logaddexp(entry[which], value)

        for prefix, (p_b, p_nb) in beams.items():
            total = np.logaddexp(p_b, p_nb)
            add(prefix, 0, total + lp[blank])
            last = prefix[-1] if prefix else None
            if last is not None:
                add(prefix, 1, p_nb + lp[last])  # the last label repeated: the same prefix
            for c in labels:
                # After a label, the same label starts a new one only through a blank.
                add(prefix + (c,), 1, (p_b if c == last else total) + lp[c])
        # Prefixes that no alignment reaches yet (a repeat without a blank between) have probability 0.
        alive = [kv for kv in nxt.items() if np.logaddexp(*kv[1]) > neg_inf]
        ranked = sorted(alive, key=lambda kv: -np.logaddexp(*kv[1]))[:beam_size]
        beams = {prefix: (p_b, p_nb) for prefix, (p_b, p_nb) in ranked}
    out = [(prefix, float(np.logaddexp(p_b, p_nb))) for prefix, (p_b, p_nb) in beams.items()]
    return sorted(out, key=lambda x: -x[1])


def edit_distances(hyps: Array, hyp_lengths: Array, refs: Array, ref_lengths: Array) -> Array:
    """Levenshtein distances of a batch of label sequences, jittable (the host version is
    :func:`rnnlab.textmetrics.edit_distance`).

    Row i of the dynamic programme (the distances of ``refs[:, :i]`` to every hypothesis prefix) comes from
    row i - 1 without a loop over the hypothesis: with ``cand[j] = min(D[i-1, j] + 1, D[i-1, j-1] + sub)``,
    insertions give ``D[i, j] = min_{k<=j} cand[k] + (j - k) = j + cummin_k(cand[k] - k)``. The loop runs over
    the N reference positions, rows past a reference's length are frozen.

    Args:
      hyps: ``[B, M]`` int; hyp_lengths: ``[B]``; refs: ``[B, N]`` int; ref_lengths: ``[B]``.

    Returns:
      ``[B]`` int32 edit distances.
    """
    hyps, refs = jnp.asarray(hyps, jnp.int32), jnp.asarray(refs, jnp.int32)
    hyp_lengths, ref_lengths = jnp.asarray(hyp_lengths, jnp.int32), jnp.asarray(ref_lengths, jnp.int32)
    m = hyps.shape[1]
    j = jnp.arange(m + 1, dtype=jnp.int32)
    row0 = jnp.broadcast_to(j, (hyps.shape[0], m + 1))  # D[0, j] = j

    def row(i, prev):  # prev: D[i-1, :] [B, M+1]; i = 1..N
        sub = (hyps != jax.lax.dynamic_slice_in_dim(refs, i - 1, 1, axis=1)).astype(jnp.int32)  # [B, M]
        cand = jnp.concatenate(
            [jnp.full((hyps.shape[0], 1), i, jnp.int32), jnp.minimum(prev[:, 1:] + 1, prev[:, :-1] + sub)], 1
        )
        new = j + jax.lax.cummin(cand - j, axis=1)
        return jnp.where((i <= ref_lengths)[:, None], new, prev)

    last = jax.lax.fori_loop(1, refs.shape[1] + 1, row, row0)
    return jnp.take_along_axis(last, hyp_lengths[:, None], axis=1)[:, 0]


__all__ = [
    "ctc_loss",
    "edit_distances",
    "greedy_decode",
    "prefix_beam_search",
    "to_lists",
]
