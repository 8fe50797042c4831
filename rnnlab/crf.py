"""A linear-chain conditional random field over per-step tag scores (Lafferty, McCallum & Pereira 2001,
"Conditional random fields"; as the output layer of a recurrent tagger: Huang, Xu & Yu 2015, "Bidirectional
LSTM-CRF models for sequence tagging", and Lample et al. 2016, "Neural architectures for named entity
recognition").

Shape legend: B batch, T time, C tags.

::

    score(y | x) = start[y_1] + sum_{t=1..n} e_t[y_t] + sum_{t=2..n} A[y_{t-1}, y_t] + end[y_n]
    p(y | x)     = exp(score(y | x)) / Z(x),    Z(x) = sum over all C^n tag sequences y

for a sequence of n = ``lengths[b]`` valid steps with emissions ``e: [B, T, C]`` (e.g. a recurrent tagger's
per-step logits). log Z comes from the forward algorithm and the best sequence from Viterbi; both are
recurrences over time, so they run through :func:`rnnlab.scan.sequential_scan` (whose mask freezes the carry
on padded steps, which makes them exact for every length). A sequence of length 0 has score 0 and log Z 0.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.scan import sequence_mask, sequential_scan

Array = jax.Array


class CRFParams(NamedTuple):
    """``transitions: [C, C]`` (``[i, j]``: the score of tag j right after tag i), ``start, end: [C]``."""

    transitions: Array
    start: Array
    end: Array


class CRFScores(NamedTuple):
    """What a CRF tagger outputs: ``emissions [B, T, C]`` and the CRF's parameters. The loss needs both
    (:func:`negative_log_likelihood`), decoding too (:func:`viterbi`); returning them together keeps the
    loss a function of the model's outputs alone."""

    emissions: Array
    params: CRFParams


def _lengths(emissions: Array, lengths: Array | None) -> Array:
    b, t = emissions.shape[:2]
    return jnp.full((b,), t, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)


def sequence_score(params: CRFParams, emissions: Array, tags: Array, lengths: Array | None = None) -> Array:
    """``score(tags | emissions)`` (module docstring) of given tag sequences.

    Args:
      emissions: ``[B, T, C]``; tags: ``[B, T]`` int (padded entries are ignored); lengths: ``[B]`` or None.

    Returns:
      ``[B]``; 0 for sequences of length 0.
    """
    lengths = _lengths(emissions, lengths)
    tags = jnp.asarray(tags, jnp.int32)
    mask = sequence_mask(lengths, emissions.shape[1])  # [B, T]
    emit = jnp.take_along_axis(emissions, tags[..., None], axis=-1)[..., 0]  # [B, T]
    total = jnp.sum(jnp.where(mask, emit, 0.0), axis=1)
    trans = params.transitions[tags[:, :-1], tags[:, 1:]]  # [B, T-1]
    total += jnp.sum(jnp.where(mask[:, 1:], trans, 0.0), axis=1)
    first = tags[:, 0]
    last = jnp.take_along_axis(tags, jnp.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0]
    total += params.start[first] + params.end[last]
    return jnp.where(lengths > 0, total, 0.0)


def _time_major(emissions: Array, lengths: Array):
    """Steps 2..T time-major, ``[T-1, B, C]``, and their mask ``[T-1, B]`` (step 1 seeds the recurrence)."""
    mask = sequence_mask(lengths, emissions.shape[1])
    return jnp.swapaxes(emissions[:, 1:], 0, 1), mask[:, 1:].T


def log_partition(params: CRFParams, emissions: Array, lengths: Array | None = None) -> Array:
    """log Z by the forward algorithm in the log semiring.

    ``alpha_1 = start + e_1``; ``alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + A[i, j]) + e_t[j]``;
    ``log Z = logsumexp_j(alpha_n[j] + end[j])``.

    Args:
      emissions: ``[B, T, C]``; lengths: ``[B]`` or None (all T).

    Returns:
      ``[B]``; 0 for sequences of length 0.
    """
    lengths = _lengths(emissions, lengths)
    xs, mask = _time_major(emissions, lengths)

    def step(alpha, e_t):  # alpha: [B, C], e_t: [B, C]
        alpha = jax.nn.logsumexp(alpha[:, :, None] + params.transitions[None], axis=1) + e_t
        return alpha, alpha[:, :0], None  # nothing per step is needed: an empty output

    alpha, _, _ = sequential_scan(step, params.start + emissions[:, 0], xs, mask)
    return jnp.where(lengths > 0, jax.nn.logsumexp(alpha + params.end, axis=-1), 0.0)


def negative_log_likelihood(
    params: CRFParams, emissions: Array, tags: Array, lengths: Array | None = None
) -> Array:
    """``-log p(tags | emissions) = log Z - score``, per sequence ``[B]`` (the CRF training loss)."""
    return log_partition(params, emissions, lengths) - sequence_score(params, emissions, tags, lengths)


def viterbi(params: CRFParams, emissions: Array, lengths: Array | None = None) -> tuple[Array, Array]:
    """The most probable tag sequence (Viterbi 1967): the forward algorithm in the max-plus semiring, with
    back-pointers, then a backward pass that follows them.

    Args:
      emissions: ``[B, T, C]``; lengths: ``[B]`` or None.

    Returns:
      ``(tags [B, T] int32, scores [B])``: the argmax sequence (0 on padded steps) and its score (module
      docstring), which equals :func:`sequence_score` of those tags.
    """
    lengths = _lengths(emissions, lengths)
    xs, mask = _time_major(emissions, lengths)

    def forward(delta, e_t):  # delta: [B, C]
        cand = delta[:, :, None] + params.transitions[None]  # [B, C_prev, C]
        return jnp.max(cand, axis=1) + e_t, jnp.argmax(cand, axis=1).astype(jnp.int32), None

    delta, pointers, _ = sequential_scan(forward, params.start + emissions[:, 0], xs, mask)  # [T-1, B, C]
    final = delta + params.end
    best_last = jnp.argmax(final, axis=-1).astype(jnp.int32)

    # Backward over t = T..1 (time-major, reversed): step t emits y_t and moves to y_{t-1} = pointers_t[y_t].
    # Steps t > n are masked, which keeps the carry at y_n until the sequence's last valid step is reached.
    b = emissions.shape[0]
    pointers = jnp.concatenate([jnp.zeros((1, b, emissions.shape[2]), jnp.int32), pointers])  # [T, B, C]
    full_mask = sequence_mask(lengths, emissions.shape[1]).T  # [T, B]

    def backward(tag, pointers_t):  # tag: [B]
        prev = jnp.take_along_axis(pointers_t, tag[:, None], axis=1)[:, 0]
        return prev, tag[:, None], None

    _, tags, _ = sequential_scan(backward, best_last, pointers[::-1], full_mask[::-1])
    tags = jnp.swapaxes(tags[::-1, :, 0], 0, 1)
    return tags, jnp.where(lengths > 0, jnp.max(final, axis=-1), 0.0)


class CRF(nn.Module):
    """A linear-chain CRF layer holding ``transitions [C, C]``, ``start [C]`` and ``end [C]`` (zeros at
    initialisation: the untrained CRF is per-step softmax over the emissions).

    ``__call__(emissions [B,T,C], tags [B,T], lengths [B]) -> nll [B]``; :meth:`decode` gives the Viterbi
    tags; :meth:`log_partition` gives log Z; :meth:`scores` the emissions with the parameters
    (:class:`CRFScores`).
    """

    num_tags: int

    def setup(self):
        c = self.num_tags
        self.transitions = self.param("transitions", nn.initializers.zeros, (c, c))
        self.start = self.param("start", nn.initializers.zeros, (c,))
        self.end = self.param("end", nn.initializers.zeros, (c,))

    @property
    def crf_params(self) -> CRFParams:
        return CRFParams(self.transitions, self.start, self.end)

    def _check(self, emissions: Array) -> Array:
        emissions = jnp.asarray(emissions)
        if emissions.ndim != 3 or emissions.shape[-1] != self.num_tags:
            raise ValueError(f"emissions must be [B, T, C={self.num_tags}], got shape {emissions.shape}")
        return emissions

    def __call__(self, emissions: Array, tags: Array, lengths: Array | None = None) -> Array:
        return negative_log_likelihood(self.crf_params, self._check(emissions), tags, lengths)

    def scores(self, emissions: Array) -> CRFScores:
        """``emissions [B, T, C]`` with this layer's parameters, for a loss or a decoder outside the model."""
        return CRFScores(self._check(emissions), self.crf_params)

    def log_partition(self, emissions: Array, lengths: Array | None = None) -> Array:
        return log_partition(self.crf_params, self._check(emissions), lengths)

    def decode(self, emissions: Array, lengths: Array | None = None) -> tuple[Array, Array]:
        return viterbi(self.crf_params, self._check(emissions), lengths)


__all__ = [
    "CRF",
    "CRFParams",
    "CRFScores",
    "log_partition",
    "negative_log_likelihood",
    "sequence_score",
    "viterbi",
]
