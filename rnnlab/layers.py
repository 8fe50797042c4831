"""Wrappers around the time loop: bidirectional, stacked and residual recurrent layers.

Shape legend: B batch, T time, D input features, H hidden size (a cell's output size), L layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell
from rnnlab.scan import RNN, loop_options


class Bidirectional(nn.Module):
    """Runs ``forward`` and ``backward`` (an ``RNN`` with ``reverse=True``) and merges their outputs.

    ``__call__(x: [B,T,D], lengths: [B]) -> ((carry_fwd, carry_bwd), y)`` with ``y: [B,T,2H]`` (``concat``) or
    ``[B,T,H]`` (``sum``). The backward carry is its state after reading each sequence's first step.
    """

    forward: RNN
    backward: RNN
    merge: str = "concat"

    @nn.compact
    def __call__(self, x, lengths=None, initial_carry=None, probes=None):
        if not self.backward.reverse:
            raise ValueError("Bidirectional needs backward=RNN(..., reverse=True).")
        c0f, c0b = (None, None) if initial_carry is None else initial_carry
        pf, pb = (None, None) if probes is None else probes
        cf, yf = self.forward(x, lengths, c0f, pf)
        cb, yb = self.backward(x, lengths, c0b, pb)
        if self.merge == "concat":
            y = jnp.concatenate([yf, yb], axis=-1)
        elif self.merge == "sum":
            y = yf + yb
        else:
            raise ValueError(f"unknown merge {self.merge!r}; valid: concat, sum")
        return (cf, cb), y


class StackedRNN(nn.Module):
    """``num_layers`` recurrent layers, each optionally bidirectional, with optional residual connections.

    Attributes:
      make_cell: a cell factory ``make_cell(**flax_kwargs)`` (a :class:`~rnnlab.cells.CellSpec`, or e.g.
        ``functools.partial(get_cell, 'gru', 64)``), called once per layer and direction with ``parent=None``.
      num_layers: L.
      bidirectional: each layer reads both directions and concatenates them.
      residual: add each layer's input to its output when their sizes agree (from the second layer on).
      dropout: dropout rate between layers (needs the ``'dropout'`` rng when ``train=True``).
      rnn_options: the time-loop options of every :class:`~rnnlab.scan.RNN`, a mapping with keys among
        ``backend, mode, hoist, unroll, remat, remat_chunk`` (see :func:`rnnlab.scan.loop_options`).

    ``__call__(x: [B,T,D], lengths: [B] | None, *, train=False, initial_carries=None, probes=None,
    return_last=False)`` returns ``(carries, y)``: a list of L final carries and ``y: [B,T,H]``
    (``[B,T,2H]`` if bidirectional). ``probes`` is a list of L carry-shaped probes (pairs for bidirectional
    layers). With ``return_last``, also the last layer's cells' outputs at each sequence's end (see
    :func:`final_outputs`; both directions concatenated), before any residual connection: ``[B, H]``
    (``[B, 2H]``). A unidirectional layer of a cell whose output is its hidden state (no ``readout``) gives
    it, without probes, from the final carry (masking keeps it at each sequence's last valid step), so that a
    model reading only the last output needs no ``[B,T,H]`` sequence: with chunked remat its memory stops
    growing with T.
    """

    make_cell: Callable[..., RecurrentCell]
    num_layers: int = 1
    bidirectional: bool = False
    residual: bool = False
    dropout: float = 0.0
    rnn_options: Any = ()

    @nn.compact
    def __call__(
        self, x, lengths=None, *, train: bool = False, initial_carries=None, probes=None, return_last=False
    ):
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        opts = dataclasses.asdict(loop_options(self.rnn_options))
        carries = []
        for layer in range(self.num_layers):
            if self.bidirectional:
                rnn = Bidirectional(
                    RNN(self.make_cell(parent=None), parent=None, **opts),
                    RNN(self.make_cell(parent=None), reverse=True, parent=None, **opts),
                    name=f"layer{layer}",
                )
            else:
                rnn = RNN(self.make_cell(parent=None), name=f"layer{layer}", **opts)
            c0 = None if initial_carries is None else initial_carries[layer]
            p = None if probes is None else probes[layer]
            carry, out = rnn(x, lengths, c0, p)
            y = out + x if self.residual and layer > 0 and out.shape[-1] == x.shape[-1] else out
            if self.dropout and layer < self.num_layers - 1:
                y = nn.Dropout(self.dropout, deterministic=not train)(y)
            carries.append(carry)
            x = y
        if not return_last:
            return carries, x
        if self.bidirectional:
            h = out.shape[-1] // 2
            last = jnp.concatenate(
                [final_outputs(out[..., :h], lengths), final_outputs(out[..., h:], lengths, reverse=True)], -1
            )
        elif probes is not None or hasattr(cell := self.make_cell(parent=None), "readout"):
            last = final_outputs(out, lengths)  # a readout (linear cells), or probes on padded steps stay 0
        else:  # the output is h_t, kept in the (masked) carry: the [B,T,H] sequence need not be stored
            last = cell.hidden(carries[-1]).astype(out.dtype)
            if lengths is not None:
                last = jnp.where((lengths > 0)[:, None], last, jnp.zeros_like(last))
        return carries, x, last


def final_outputs(y: jax.Array, lengths: jax.Array | None, reverse: bool = False) -> jax.Array:
    """The output an RNN emitted last for each sequence, ``y: [B,T,H]`` -> ``[B,H]``.

    That is ``y[b, lengths[b] - 1]``, or ``y[b, 0]`` for a ``reverse`` RNN (which reads step 0 last); zeros
    for length-0 sequences. It is the cell's readout (its output), not its raw carry.
    """
    b, t, h = y.shape
    if t == 0:
        return jnp.zeros((b, h), y.dtype)
    if reverse or lengths is None:
        out = y[:, 0] if reverse else y[:, -1]
    else:
        out = jnp.take_along_axis(y, jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)[:, 0]
    return out if lengths is None else jnp.where((lengths > 0)[:, None], out, jnp.zeros_like(out))


def masked_mean(y: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Mean over valid steps: ``y: [B,T,H]``, ``lengths: [B]`` -> ``[B,H]`` (0 for length-0 sequences)."""
    if lengths is None:
        return y.mean(axis=1)
    mask = (jnp.arange(y.shape[1])[None, :] < lengths[:, None]).astype(y.dtype)
    return (y * mask[..., None]).sum(1) / jnp.maximum(lengths, 1)[:, None].astype(y.dtype)
