"""Wrappers around the time loop: bidirectional, stacked and residual recurrent layers.

Shape legend: B batch, T time, D input features, H hidden size, L layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell
from rnnlab.scan import RNN


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
      make_cell: a factory returning a fresh cell (called once per layer and direction, with ``parent=None``).
      num_layers: L.
      bidirectional: each layer reads both directions and concatenates them.
      residual: add each layer's input to its output when their sizes agree (from the second layer on).
      dropout: dropout rate between layers (needs the ``'dropout'`` rng when ``train=True``).
      rnn_options: keyword arguments for every :class:`~rnnlab.scan.RNN` (``remat``, ``unroll``, ``mode``...).

    ``__call__(x: [B,T,D], lengths: [B] | None, *, train=False, initial_carries=None, probes=None)``
    returns ``(carries, y)``: a list of L final carries and ``y: [B,T,H]`` (``[B,T,2H]`` if bidirectional).
    ``probes`` is a list of L carry-shaped probes (pairs for bidirectional layers).
    """

    make_cell: Callable[[], RecurrentCell]
    num_layers: int = 1
    bidirectional: bool = False
    residual: bool = False
    dropout: float = 0.0
    rnn_options: Any = ()

    @nn.compact
    def __call__(self, x, lengths=None, *, train: bool = False, initial_carries=None, probes=None):
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        opts = dict(self.rnn_options)
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
            carry, y = rnn(x, lengths, c0, p)
            if self.residual and layer > 0 and y.shape[-1] == x.shape[-1]:
                y = y + x
            if self.dropout and layer < self.num_layers - 1:
                y = nn.Dropout(self.dropout, deterministic=not train)(y)
            carries.append(carry)
            x = y
        return carries, x


def masked_mean(y: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Mean over valid steps: ``y: [B,T,H]``, ``lengths: [B]`` -> ``[B,H]`` (0 for length-0 sequences)."""
    if lengths is None:
        return y.mean(axis=1)
    mask = (jnp.arange(y.shape[1])[None, :] < lengths[:, None]).astype(y.dtype)
    return (y * mask[..., None]).sum(1) / jnp.maximum(lengths, 1)[:, None].astype(y.dtype)
