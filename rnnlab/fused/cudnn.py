"""The LSTM through cuDNN (``jax.experimental.rnn.lstm``): GPU, float32, the standard equations only.

Shape legend: B batch, T time, D input features, H hidden size.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.experimental import rnn as jax_rnn


def run_lstm(cell, params, carry, xs, mask, probes, *, unroll, hoisted):
    """The LSTM through cuDNN on raw inputs ``xs: [T, B, D]`` (a registry ``run``, see
    :class:`~rnnlab.fused.registry.SequenceKernel`)."""
    del cell, probes, unroll, hoisted  # accepted only without probes; cuDNN projects the inputs itself
    c0, h0 = carry
    t, b = xs.shape[:2]
    if t == 0:
        return carry, jnp.zeros((0, *h0.shape), h0.dtype)
    kernel, bias, w_hh = params["input"]["kernel"], params["input"]["bias"], params["recurrent_kernel"]
    d, hs = kernel.shape[0], w_hh.shape[0]
    # cuDNN's packed layout (jax.experimental.rnn's docstring): W_ih [4H, D], W_hh [4H, H], b_ih, b_hh, gates
    # (i, f, g, o) as here; our single bias goes into b_ih.
    weights = jnp.concatenate([kernel.T.ravel(), w_hh.T.ravel(), bias, jnp.zeros_like(bias)])
    lengths = jnp.full((b,), t, jnp.int32) if mask is None else mask.sum(0).astype(jnp.int32)
    # cuDNN needs lengths >= 1: an empty sequence runs one step, then keeps its initial carry (below).
    y, h_n, c_n = jax_rnn.lstm(
        jnp.swapaxes(xs, 0, 1), h0[None], c0[None], weights, jnp.maximum(lengths, 1), d, hs, 1, 0.0, False
    )
    ys = jnp.swapaxes(y, 0, 1)
    if mask is not None:
        ys = jnp.where(mask[..., None], ys, jnp.zeros_like(ys))
    empty = (lengths == 0)[:, None]
    return (jnp.where(empty, c0, c_n[0]), jnp.where(empty, h0, h_n[0])), ys


def accepts(cell, *, platform, dtype, probes) -> bool:
    """cuDNN's LSTM: GPU, float32, no probes, and only the standard equations (no peephole/CIFG, slope 1)."""
    return (
        platform == "gpu"
        and dtype == jnp.float32
        and not probes
        and not (cell.peephole or cell.cifg)
        and cell.gate_slope == 1.0
    )
