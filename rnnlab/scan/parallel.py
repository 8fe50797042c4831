"""Sequence parallelism for linear recurrences: ``h_t = a_t * h_{t-1} + b_t`` with TIME sharded over devices.

Shape legend: T time, B batch, N state size, n devices on the mesh's time axis.

Device i holds the contiguous chunk of steps ``[i T/n, (i+1) T/n)``. Because the recurrence is linear, a
chunk can be scanned before its incoming state is known:

1. each device scans its chunk from a zero state, keeping the cumulative products
   ``P_t = prod_{s <= t, s in chunk} a_s`` beside the partial states ``H_t`` (one associative scan of the
   pairs (a, b), or a sequential one);
2. the chunks' totals ``(P_last, H_last)``, one ``[B, N]`` pair per device, are all-gathered, and every
   device runs the same tiny scan over the n totals from ``h0``:
   ``carry_in[0] = h0``, ``carry_in[i+1] = P_last[i] * carry_in[i] + H_last[i]``;
3. each device corrects its chunk: ``h_t = H_t + P_t * carry_in[i]``.

This is the multi-shard correction of Griffin / RecurrentGemma (De et al. 2024, "Griffin: mixing gated linear
recurrences with local attention"; ``recurrentgemma/jax/scan.py``). Communication is one all-gather of
``2 n B N`` numbers whatever T is; work per device is O(T/n) (sequential inner scan) or O(T/n log(T/n))
(associative). Gradients flow through ``shard_map`` (the all-gather transposes to a reduce-scatter).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

Array = jax.Array
INNER = ("associative", "sequential")


def time_mesh(num_devices: int | None = None, axis: str = "time") -> Mesh:
    """A 1-D mesh named ``axis`` over the first ``num_devices`` devices (default: all of them)."""
    devices = jax.devices()[: num_devices or jax.device_count()]
    return jax.make_mesh((len(devices),), (axis,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def _combine(left, right):
    """Composition of two affine maps h -> a h + b (``left`` first)."""
    a_l, b_l = left
    a_r, b_r = right
    return a_r * a_l, a_r * b_l + b_r


def _chunk_scan(a: Array, b: Array, inner: str) -> tuple[Array, Array]:
    """``(P, H)``, each ``[t, B, N]``: cumulative products of ``a`` and the states from a zero state."""
    if inner == "associative":
        return jax.lax.associative_scan(_combine, (a, b), axis=0)

    def body(carry, ab):
        carry = _combine(carry, ab)
        return carry, carry

    start = (jnp.ones_like(a[0]), jnp.zeros_like(b[0]))
    _, (prods, states) = jax.lax.scan(body, start, (a, b))
    return prods, states


def _sharded_body(axis: str, inner: str):
    def body(a, b, h0):  # a, b: [T/n, B', N] (this device's chunk); h0: [B', N]
        prods, states = _chunk_scan(a, b, inner)
        # Every device gets every chunk's total, [n, B', N] each, and runs the same n-step scan from h0.
        totals = jax.lax.all_gather((prods[-1], states[-1]), axis)
        h0 = jax.lax.pcast(h0, axis, to="varying")  # the scan's carry mixes it with device-varying totals

        def carry_step(c, total):
            p, h = total
            return p * c + h, c  # emits the carry INTO chunk i

        _, carries_in = jax.lax.scan(carry_step, h0, totals)
        carry_in = carries_in[jax.lax.axis_index(axis)]
        return states + prods * carry_in[None]

    return body


def sequence_parallel_linear_scan(
    a: Array,
    b: Array,
    h0: Array,
    mask: Array | None = None,
    probes: Array | None = None,
    *,
    mesh: Mesh,
    axis: str = "time",
    batch_axis: str | None = None,
    inner: str = "associative",
) -> Array:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (+ probe_t), time sharded over ``mesh`` axis ``axis``.

    The same contract as :func:`rnnlab.scan.associative_linear_scan` (same results up to float rounding).

    Args:
      a, b: ``[T, B, N]`` time-major coefficients (real or complex, as for the LRU).
      h0: ``[B, N]`` the initial state.
      mask: ``[T, B]`` bool, False on padded steps (there a = 1, b = 0: the state is frozen exactly).
      probes: ``[T, B, N]`` added to ``b`` (their gradient is dL/dh_t).
      mesh: a mesh with an axis ``axis`` (see :func:`time_mesh`); T need not divide by its size (the chunks
        are padded with frozen steps).
      batch_axis: optionally a second mesh axis that splits B (data x sequence parallelism).
      inner: ``'associative'`` or ``'sequential'``: how each device scans its own chunk.

    Returns:
      ``h: [T, B, N]``, sharded like ``a`` over time (and batch).
    """
    if inner not in INNER:
        raise ValueError(f"unknown inner scan {inner!r}; valid: {', '.join(INNER)}")
    if axis not in mesh.shape:
        raise ValueError(f"mesh has axes {tuple(mesh.shape)}, no time axis {axis!r}")
    if mask is not None:
        m = mask[..., None]
        a = jnp.where(m, a, jnp.ones_like(a))
        b = jnp.where(m, b, jnp.zeros_like(b))
    if probes is not None:
        b = b + probes
    t, n = a.shape[0], mesh.shape[axis]
    pad = -t % n
    if pad:  # frozen steps at the end change nothing before them
        a = jnp.concatenate([a, jnp.ones((pad, *a.shape[1:]), a.dtype)])
        b = jnp.concatenate([b, jnp.zeros((pad, *b.shape[1:]), b.dtype)])
    dtype = jnp.result_type(a, b, h0)
    seq, state = P(axis, batch_axis), P(batch_axis)
    run = jax.shard_map(
        _sharded_body(axis, inner),
        mesh=mesh,
        in_specs=(seq, seq, state),
        out_specs=seq,
        axis_names={axis} | ({batch_axis} if batch_axis else set()),
    )
    h = run(a.astype(dtype), b.astype(dtype), jnp.asarray(h0, dtype))
    return h[:t]
