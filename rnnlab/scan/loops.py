"""The time loops and masking as pure array functions (no Flax, no cells): time-major ``[T, B, ...]``.

Shape legend: B batch, T time, D input features, H hidden size, N state size.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def flip_sequences(x: Array, lengths: Array | None, time_axis: int = 1) -> Array:
    """Reverse the first ``lengths[b]`` steps of each sequence; padding stays where it is.

    Args:
      x: ``[B, T, ...]`` (or time-major with ``time_axis=0``: ``[T, B, ...]``).
      lengths: ``[B]`` int, or None (reverse everything).
    """
    if lengths is None:
        return jnp.flip(x, axis=time_axis)
    t = x.shape[time_axis]
    steps = jnp.arange(t)[None, :]  # [1, T]
    lens = lengths[:, None]  # [B, 1]
    idx = jnp.where(steps < lens, lens - 1 - steps, steps)  # [B, T]
    if time_axis == 0:
        idx = idx.T  # [T, B]
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=time_axis)


def sequence_mask(lengths: Array | None, t: int) -> Array | None:
    """``[B, T]`` bool, True on valid steps."""
    return None if lengths is None else jnp.arange(t)[None, :] < lengths[:, None]


def zero_probes(carry, t: int):
    """Zero probes for ``RNN(..., probes=...)``: the carry's structure with a time axis, leaves
    ``[B, T, ...]``."""
    return jax.tree.map(lambda c: jnp.zeros((c.shape[0], t, *c.shape[1:]), c.dtype), carry)


def _where(mask, new, old):
    """Select ``new`` where ``mask`` ([B]) else ``old``, for every leaf of a carry."""
    return jax.tree.map(
        lambda n, o: jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o), new, old
    )


def check_lengths(lengths, b: int, t: int):
    if lengths is None:
        return None
    if jnp.shape(lengths) != (b,):
        raise ValueError(
            f"lengths must have shape [B] = ({b},), got {jnp.shape(lengths)}; "
            "pass one length per sequence in the batch."
        )
    if not jnp.issubdtype(jnp.asarray(lengths).dtype, jnp.integer):
        raise ValueError(f"lengths must be integers, got dtype {jnp.asarray(lengths).dtype}.")
    if not isinstance(lengths, jax.core.Tracer):
        concrete = np.asarray(lengths)  # numpy, so a concrete array closed over by a jitted fn is checked too
        lo, hi = (int(concrete.min()), int(concrete.max())) if concrete.size else (0, 0)
        if lo < 0:
            raise ValueError(f"lengths must be >= 0, got a minimum of {lo}.")
        if hi > t:
            raise ValueError(
                f"lengths must be <= T = {t} (the padded length of x), got a maximum of {hi}; "
                "pad x to the longest sequence or fix lengths."
            )
    return jnp.asarray(lengths, jnp.int32)


def sequential_scan(
    step: Callable, carry, xs, mask=None, probes=None, *, unroll: int = 1, remat: bool = False, collect=False
):
    """Run ``step(carry, x_t) -> (carry, y_t, aux_t)`` over time-major ``xs`` (leaves ``[T, B, ...]``).

    ``mask: [T, B]`` freezes the carry and zeroes ``y`` on padded steps; ``probes`` (carry-shaped leaves
    ``[T, B, ...]``) are added to the carry after each step. Returns ``(carry, ys, auxs)``, time-major
    (``auxs`` None unless ``collect``).
    """

    def body(carry, inp):
        x_t, m_t, p_t = inp
        new, y, aux = step(carry, x_t)
        if m_t is not None:
            new = _where(m_t, new, carry)
            y = jnp.where(m_t[:, None], y, jnp.zeros_like(y))
        if p_t is not None:
            new = jax.tree.map(jnp.add, new, p_t)
        return new, ((y, aux) if collect else (y, None))

    if remat:
        body = jax.checkpoint(body, prevent_cse=False)
    carry, (ys, auxs) = jax.lax.scan(body, carry, (xs, mask, probes), unroll=unroll)
    return carry, ys, auxs


def chunked_scan(
    project: Callable, step: Callable, carry, xt, mask, probes, *, chunk: int, unroll: int, collect=False
):
    """:func:`sequential_scan` over chunks of ``chunk`` steps, each checkpointed with its input projection
    ``project(x_chunk)`` (``xt: [T, B, D]`` raw): activation memory O(T/chunk + chunk) instead of O(T)."""
    t, b = xt.shape[:2]
    n = -(-t // chunk)
    pad = n * chunk - t
    if mask is None:
        mask = jnp.ones((t, b), bool)
    if pad:
        # Padded steps are masked out, which freezes the carry exactly.
        xt = jnp.concatenate([xt, jnp.zeros((pad, *xt.shape[1:]), xt.dtype)])
        mask = jnp.concatenate([mask, jnp.zeros((pad, b), bool)])
        if probes is not None:
            zeros = lambda p: jnp.zeros((pad, *p.shape[1:]), p.dtype)
            probes = jax.tree.map(lambda p: jnp.concatenate([p, zeros(p)]), probes)
    split = lambda a: a.reshape(n, chunk, *a.shape[1:])
    chunks = (split(xt), split(mask), None if probes is None else jax.tree.map(split, probes))

    @jax.checkpoint
    def run_chunk(carry, inp):
        x_c, m_c, p_c = inp
        carry, ys, auxs = sequential_scan(step, carry, project(x_c), m_c, p_c, unroll=unroll, collect=collect)
        return carry, (ys, auxs)

    carry, (ys, auxs) = jax.lax.scan(run_chunk, carry, chunks)
    merge = lambda a: a.reshape(n * chunk, *a.shape[2:])[:t]
    return carry, merge(ys), (None if auxs is None else jax.tree.map(merge, auxs))


def associative_linear_scan(a: Array, b: Array, h0: Array, mask=None, probes=None):
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (+ probe_t) with ``jax.lax.associative_scan``.

    Args: ``a, b: [T, B, N]`` (time-major), ``h0: [B, N]``, ``mask: [T, B]``, ``probes: [T, B, N]``.
    Returns ``h: [T, B, N]``. On padded steps a = 1, b = 0, which freezes the state exactly.
    """
    if mask is not None:
        m = mask[..., None]
        a = jnp.where(m, a, jnp.ones_like(a))
        b = jnp.where(m, b, jnp.zeros_like(b))
    if probes is not None:
        b = b + probes
    # Fold the initial state into the first step: h_1 = a_1 h0 + b_1.
    b = b.at[0].add(a[0] * h0)

    def combine(left, right):
        a_l, b_l = left
        a_r, b_r = right
        return a_r * a_l, a_r * b_l + b_r

    _, h = jax.lax.associative_scan(combine, (a, b), axis=0)
    return h
