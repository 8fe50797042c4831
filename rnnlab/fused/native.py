"""The LSTM and GRU as compiled CPU kernels (``rnnlab/fused/csrc``) through ``jax.ffi``: one call per pass.

Shape legend: B batch, T time, D input features, H hidden size, K seeds. All arrays are time-major.

Same contract and results as :mod:`rnnlab.fused.vjp` (custom VJPs whose backward pass returns the stacked
gate pre-activation gradients, so dW_ih, dW_hh, the biases and dx are large XLA matmuls after the loop), but
each pass is ONE XLA call instead of a while loop of 13-18 kernels per step: the C++ loop runs the recurrent
matmul with the gate equations in its epilogue, the recurrent weights packed once per call, split over the
XLA:CPU intra-op threads (see ``csrc/rnn_cpu.cc``). The input projection ``x_t W_ih + b`` is part of each
step's matmul (no ``[T, B, G*H]`` array). float32 and float64 (the tests' dtype, with libm's exp and tanh);
CPU only; built on first use by :mod:`rnnlab.fused.build`, which returns False where it cannot build.
Under ``vmap`` (K seeds in one program) the kernels take the seed axis themselves and run whole seeds in
parallel. ``max_threads`` (0: ``$RNNLAB_NATIVE_THREADS``, else XLA's intra-op pool size) bounds the threads
of one call; results do not depend on it.
"""

from __future__ import annotations

import os
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.fused import build

Array = jax.Array
DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))


def available() -> bool:
    """Whether the kernels are built and registered (building them on the first call)."""
    return build.load()


THREADS_ENV = "RNNLAB_NATIVE_THREADS"  # a process-wide bound on the threads of one call (unset/0: none)


def _threads(threads: int) -> int:
    """``threads`` (``max_threads`` of the call), else ``$RNNLAB_NATIVE_THREADS``, else 0 (the pool size)."""
    if threads:
        return threads
    value = os.environ.get(THREADS_ENV, "0")
    if not value.isdigit():
        warnings.warn(f"{THREADS_ENV}={value!r} is not a number of threads: using the pool's", stacklevel=2)
        return 0
    return int(value)


def _call(name: str, results, *args, slope: float, threads: int):
    if not available():
        raise RuntimeError("rnnlab's native CPU kernels could not be built here; use backend='fused'")
    dtype = "f32" if results[0].dtype == jnp.float32 else "f64"
    call = jax.ffi.ffi_call(f"rnnlab_{name}_{dtype}", results, vmap_method="broadcast_all")
    return call(*args, slope=np.float64(slope), max_threads=np.int64(_threads(threads)))


def _shape(shape, dtype, present: bool = True):
    """The result ``shape``, or an empty array standing for an output the call does not need."""
    return jax.ShapeDtypeStruct(shape if present else (0,), dtype)


def _empty(dtype) -> Array:
    return jnp.zeros((0,), dtype)


def _outer_sum(a: Array, b: Array) -> Array:
    """``sum_{t,b} a[t,b]^T b[t,b]`` as one matmul: ``[T, B, H] x [T, B, N] -> [H, N]``."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _prev_outer(h0: Array, h_seq: Array, dz: Array) -> Array:
    """``sum_t h_{t-1}^T dz_t`` with ``h_{-1} = h0``, without materialising the shifted sequence."""
    return h0.T @ dz[0] + _outer_sum(h_seq[:-1], dz[1:])


# ----------------------------------------------------------------------------------------------------- LSTM


def lstm_sequence(
    input_kernel: Array,
    input_bias: Array,
    recurrent_kernel: Array,
    xs: Array,
    c0: Array,
    h0: Array,
    mask: Array | None = None,
    probes=None,
    *,
    gate_slope: float = 1.0,
    max_threads: int = 0,
):
    """An LSTM over raw inputs ``xs: [T, B, D]`` (gates ``i, f, g, o``; all arrays of one float dtype).

    Args:
      input_kernel, input_bias, recurrent_kernel: ``[D, 4H]``, ``[4H]``, ``[H, 4H]``.
      c0, h0: ``[B, H]``. mask: ``[T, B]`` bool or None. probes: ``(p_c, p_h)`` ``[T, B, H]`` or None.

    Returns:
      ``(c_T, h_T, ys)`` with ``ys: [T, B, H]`` (0 on masked steps).
    """
    if xs.shape[0] == 0 or xs.shape[1] == 0:
        return c0, h0, jnp.zeros((*xs.shape[:2], h0.shape[-1]), h0.dtype)
    args = (input_kernel, input_bias, recurrent_kernel, xs, c0, h0, mask, probes)
    return _lstm(float(gate_slope), int(max_threads), *args)


def _lstm_forward(slope, threads, w_ih, b, w_hh, xs, c0, h0, mask, probes, save):
    (t, n, _), h, dt = xs.shape, w_hh.shape[0], xs.dtype
    carries = save and (mask is not None or probes is not None)  # else the h carries are ys
    results = (
        _shape((t, n, h), dt),
        _shape((t, n, h), dt, carries),
        _shape((t, n, h), dt, save),
        _shape((t, n, 4 * h), dt, save),
        _shape((n, h), dt),
        _shape((n, h), dt),
    )
    p_c, p_h = (_empty(dt), _empty(dt)) if probes is None else probes
    m = _empty(jnp.bool_) if mask is None else mask
    ys, h_seq, c_seq, gates, c_t, h_t = _call(
        "lstm_forward", results, xs, w_ih, b, w_hh, c0, h0, m, p_c, p_h, slope=slope, threads=threads
    )
    return (c_t, h_t, ys), (h_seq if carries else ys, c_seq, gates)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _lstm(slope, threads, w_ih, b, w_hh, xs, c0, h0, mask, probes):
    return _lstm_forward(slope, threads, w_ih, b, w_hh, xs, c0, h0, mask, probes, save=False)[0]


def _lstm_fwd(slope, threads, w_ih, b, w_hh, xs, c0, h0, mask, probes):
    out, saved = _lstm_forward(slope, threads, w_ih, b, w_hh, xs, c0, h0, mask, probes, save=True)
    return out, (w_ih, w_hh, xs, c0, h0, mask, probes is not None, saved)


def _lstm_bwd(slope, threads, res, cts):
    w_ih, w_hh, xs, c0, h0, mask, has_probes, (h_seq, c_seq, gates) = res
    dc_t, dh_t, dys = cts
    (t, n, _), h, dt = xs.shape, w_hh.shape[0], xs.dtype
    results = (
        _shape((t, n, 4 * h), dt),
        _shape((n, h), dt),
        _shape((n, h), dt),
        _shape((t, n, h), dt, has_probes),
        _shape((t, n, h), dt, has_probes),
    )
    m = _empty(jnp.bool_) if mask is None else mask
    dz, dc0, dh0, dp_c, dp_h = _call(
        "lstm_backward", results, gates, c_seq, c0, m, dys, dc_t, dh_t, w_hh, slope=slope, threads=threads
    )
    dw_ih, db, dx = _outer_sum(xs, dz), jnp.sum(dz, axis=(0, 1)), dz @ w_ih.T
    dprobes = (dp_c, dp_h) if has_probes else None
    return dw_ih, db, _prev_outer(h0, h_seq, dz), dx, dc0, dh0, None, dprobes


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


# ------------------------------------------------------------------------------------------------------ GRU


def gru_sequence(
    input_kernel: Array,
    input_bias: Array,
    recurrent_kernel: Array,
    recurrent_bias: Array,
    xs: Array,
    h0: Array,
    mask: Array | None = None,
    probes=None,
    *,
    gate_slope: float = 1.0,
    max_threads: int = 0,
):
    """A reset-after GRU over raw inputs ``xs: [T, B, D]`` (gates ``r, z, n``; one float dtype).

    Args:
      input_kernel, input_bias, recurrent_kernel, recurrent_bias: ``[D, 3H]``, ``[3H]``, ``[H, 3H]``, ``[H]``
        (b_hn). h0: ``[B, H]``. mask: ``[T, B]`` bool or None. probes: ``[T, B, H]`` or None.

    Returns:
      ``(h_T, ys)`` with ``ys: [T, B, H]`` (0 on masked steps).
    """
    if xs.shape[0] == 0 or xs.shape[1] == 0:
        return h0, jnp.zeros((*xs.shape[:2], h0.shape[-1]), h0.dtype)
    args = (input_kernel, input_bias, recurrent_kernel, recurrent_bias, xs, h0, mask, probes)
    return _gru(float(gate_slope), int(max_threads), *args)


def _gru_forward(slope, threads, w_ih, b, w_hh, b_hn, xs, h0, mask, probes, save):
    (t, n, _), h, dt = xs.shape, w_hh.shape[0], xs.dtype
    carries = save and (mask is not None or probes is not None)
    results = (
        _shape((t, n, h), dt),
        _shape((t, n, h), dt, carries),
        _shape((t, n, 4 * h), dt, save),
        _shape((n, h), dt),
    )
    p = _empty(dt) if probes is None else probes
    m = _empty(jnp.bool_) if mask is None else mask
    ys, h_seq, gates, h_t = _call(
        "gru_forward", results, xs, w_ih, b, w_hh, b_hn, h0, m, p, slope=slope, threads=threads
    )
    return (h_t, ys), (h_seq if carries else ys, gates)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _gru(slope, threads, w_ih, b, w_hh, b_hn, xs, h0, mask, probes):
    return _gru_forward(slope, threads, w_ih, b, w_hh, b_hn, xs, h0, mask, probes, save=False)[0]


def _gru_fwd(slope, threads, w_ih, b, w_hh, b_hn, xs, h0, mask, probes):
    out, saved = _gru_forward(slope, threads, w_ih, b, w_hh, b_hn, xs, h0, mask, probes, save=True)
    return out, (w_ih, w_hh, xs, h0, mask, probes is not None, saved)


def _gru_bwd(slope, threads, res, cts):
    w_ih, w_hh, xs, h0, mask, has_probes, (h_seq, gates) = res
    dh_t, dys = cts
    (t, n, _), h, dt = xs.shape, w_hh.shape[0], xs.dtype
    results = (
        _shape((t, n, 2 * h), dt),
        _shape((t, n, h), dt),
        _shape((t, n, h), dt),
        _shape((n, h), dt),
        _shape((t, n, h), dt, has_probes),
    )
    m = _empty(jnp.bool_) if mask is None else mask
    drz, dan, dhn, dh0, dp = _call(
        "gru_backward", results, gates, h_seq, h0, m, dys, dh_t, w_hh, slope=slope, threads=threads
    )
    # d(r, z) meet both kernels; d(n) splits into the input part (dan) and the reset-gated recurrent part
    # (dhn).
    dw_hh = jnp.concatenate([_prev_outer(h0, h_seq, drz), _prev_outer(h0, h_seq, dhn)], axis=-1)
    dw_ih = jnp.concatenate([_outer_sum(xs, drz), _outer_sum(xs, dan)], axis=-1)
    db = jnp.concatenate([jnp.sum(drz, axis=(0, 1)), jnp.sum(dan, axis=(0, 1))])
    dx = drz @ w_ih[:, : 2 * h].T + dan @ w_ih[:, 2 * h :].T
    return dw_ih, db, dw_hh, jnp.sum(dhn, axis=(0, 1)), dx, dh0, None, dp if has_probes else None


_gru.defvjp(_gru_fwd, _gru_bwd)


# ------------------------------------------------------------------------------ the registry's entry points


def _cast(params, carry, xs):
    """Everything in the compute dtype (the kernels take one dtype; inputs may be promoted, e.g. x64)."""
    dtype = jnp.result_type(xs, *jax.tree.leaves(params), *jax.tree.leaves(carry))
    cast = lambda tree: jax.tree.map(lambda a: a.astype(dtype), tree)
    return cast(params), cast(carry), xs.astype(dtype)


def run_lstm(cell, params, carry, xs, mask, probes, *, unroll, hoisted):
    """:class:`~rnnlab.fused.registry.SequenceKernel` ``run`` of the LSTM, on raw inputs ``xs: [T, B, D]``."""
    del unroll, hoisted  # no XLA loop to unroll; the kernel projects the inputs itself
    params, (c0, h0), xs = _cast(params, carry, xs)
    probes = None if probes is None else _cast({}, probes, xs)[1]
    inp = params["input"]
    c, h, ys = lstm_sequence(
        inp["kernel"],
        inp["bias"],
        params["recurrent_kernel"],
        xs,
        c0,
        h0,
        mask,
        probes,
        gate_slope=cell.gate_slope,
    )
    return (c, h), ys


def run_gru(cell, params, carry, xs, mask, probes, *, unroll, hoisted):
    """:class:`~rnnlab.fused.registry.SequenceKernel` ``run`` of the GRU, on raw inputs ``xs: [T, B, D]``."""
    del unroll, hoisted
    params, h0, xs = _cast(params, carry, xs)
    probes = None if probes is None else _cast({}, probes, xs)[1]
    inp = params["input"]
    args = (inp["kernel"], inp["bias"], params["recurrent_kernel"], params["recurrent_bias"], xs, h0)
    return gru_sequence(*args, mask, probes, gate_slope=cell.gate_slope)


def accepts(cell, *, platform, dtype, probes) -> bool:
    """CPU, float32 or float64, and the kernels built (peephole and CIFG LSTMs are not covered)."""
    del probes  # supported
    plain = not (getattr(cell, "peephole", False) or getattr(cell, "cifg", False))
    return platform == "cpu" and jnp.dtype(dtype) in DTYPES and plain and available()
