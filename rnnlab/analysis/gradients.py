"""Gradient norms per time step through zero probes, and the fit of their decay rate.

Shape legend: B batch, T time, H hidden size, L layers.

:func:`grad_norms_per_step` gives ||dL/dh_t|| for every t in ONE backward pass: the time loop adds a zero
probe to the carry after every step (``RNN(..., probes=...)``), and the gradient w.r.t. that zero is
dL/d(carry_t). How fast it shrinks with the distance to the loss is the vanishing-gradient problem (Bengio,
Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013); :func:`fit_decay_rate` turns a curve into the
factor lost per step.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from rnnlab.analysis.discovery import LossFn, forward_probes, model_cell, model_probes
from rnnlab.scan import flip_sequences, sequence_mask

Array = jax.Array


def masked_time_mean(values: Array, lengths: Array | None, align: str) -> Array:
    """``values: [B, T]`` -> ``[T]`` mean over valid sequences; NaN where no sequence is valid.

    ``align='end'`` first shifts each sequence so its last valid step sits at index T - 1 (then index t is
    distance T - 1 - t from the end of *every* sequence, which is what a many-to-one loss cares about).
    """
    if align not in ("start", "end"):
        raise ValueError(f"align must be 'start' or 'end', got {align!r}")
    if lengths is None:
        return values.mean(0)
    mask = sequence_mask(lengths, values.shape[1]).astype(values.dtype)
    if align == "end":
        values = jnp.flip(flip_sequences(values, lengths), 1)
        mask = jnp.flip(flip_sequences(mask, lengths), 1)
    count = mask.sum(0)
    return jnp.where(count > 0, (values * mask).sum(0) / jnp.maximum(count, 1), jnp.nan)


def grad_norms_per_layer(
    loss_fn: LossFn, model, params, batch: Mapping[str, Array], *, align: str = "start"
) -> Array:
    """||dL/dh_t|| for every layer and step, in one backward pass.

    Args:
      loss_fn: ``loss_fn(params, probes, batch) -> scalar`` that runs ``model`` with ``probes=probes``
        (see :func:`model_loss_fn`).
      model: a ``SequenceModel`` (or an ``RNN``) providing the probe structure and the cell's ``hidden``.
      params: the model parameters.
      batch: ``inputs: [B, T, D]`` (or ``[B, T]`` ids), optional ``lengths: [B]``, whatever ``loss_fn`` reads.
      align: ``'start'`` (index t is step t) or ``'end'`` (each sequence right-aligned; see above).

    Returns:
      ``[L, T]``: the Euclidean norm of dL/dh_t (the ``hidden`` part of the carry: h for the LSTM; complex
      states as real pairs), averaged over the valid sequences at each step; NaN where none is valid.
      Bidirectional layers report their forward direction.

    What is measured: the time loop adds the probe to the carry *after* the step emitted y_t, so this is
    the gradient reaching h_t through the recurrence (from every later step) — not the direct term
    dL_t/dy_t of the readout at step t, which every head reads (``last`` at each sequence's last step only).
    It is therefore 0 at each sequence's last step, and for a many-to-one loss (head ``last``) exactly
    dL/dh_t at every earlier step; in every case it is the quantity whose decay with distance is the
    vanishing-gradient problem.
    """
    b, t = jnp.shape(batch["inputs"])[:2]
    grads = jax.grad(loss_fn, argnums=1)(params, model_probes(model, b, t), batch)
    cell = model_cell(model)
    lengths = batch.get("lengths")
    rows = []
    for g in forward_probes(model, grads):
        h = cell.hidden(g)  # [B, T, H]
        norm = jnp.sqrt(jnp.sum(jnp.abs(h) ** 2, axis=-1))  # [B, T]
        rows.append(masked_time_mean(norm, lengths, align))
    return jnp.stack(rows)


def grad_norms_per_step(
    loss_fn: LossFn, model, params, batch: Mapping[str, Array], *, layer: int = 0, align: str = "start"
) -> Array:
    """``[T]``: ||dL/dh_t|| of ``layer`` for every step t (see :func:`grad_norms_per_layer`).

    Jit it with the static arguments bound:
    ``jax.jit(functools.partial(grad_norms_per_step, loss_fn, model))``.
    """
    return grad_norms_per_layer(loss_fn, model, params, batch, align=align)[layer]


def fit_log_decay_rate(norms: Array, mask: Array | None = None) -> Array:
    """Least-squares slope of log ``norms[t]`` against the distance T - 1 - t (a scalar; NaN if < 2 points).

    ``norms: [T]`` in time order (the last entry is distance 0), e.g. :func:`grad_norms_per_step` or the
    ``norm`` of :func:`state_jacobian_products`. Entries that are not finite or not > 0, or where ``mask``
    (``[T]`` bool) is False, are ignored. Negative slope = vanishing, positive = exploding.
    """
    norms = jnp.asarray(norms)
    norms = norms.astype(jnp.promote_types(norms.dtype, jnp.float32))
    distance = jnp.arange(norms.shape[-1] - 1, -1, -1, dtype=norms.dtype)
    ok = jnp.isfinite(norms) & (norms > 0)
    if mask is not None:
        ok = ok & jnp.asarray(mask, bool)
    w = ok.astype(norms.dtype)
    n = w.sum()
    y = jnp.log(jnp.where(ok, norms, 1.0))
    d_mean = (w * distance).sum() / jnp.maximum(n, 1)
    y_mean = (w * y).sum() / jnp.maximum(n, 1)
    sxx = (w * (distance - d_mean) ** 2).sum()
    sxy = (w * (distance - d_mean) * (y - y_mean)).sum()
    return jnp.where((n >= 2) & (sxx > 0), sxy / jnp.where(sxx > 0, sxx, 1.0), jnp.nan)


def fit_decay_rate(norms: Array, mask: Array | None = None) -> Array:
    """The fitted factor per step, exp(:func:`fit_log_decay_rate`): ``norms[t] ~ C rate^(T-1-t)``.

    A rate < 1 means the gradient shrinks by that factor for every step it travels back; 1 means no decay.
    Returns a scalar array (``float(...)`` it outside jit).
    """
    return jnp.exp(fit_log_decay_rate(norms, mask))
