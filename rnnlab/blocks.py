"""Residual blocks around a recurrent layer, as the linear-recurrence papers stack them.

Shape legend: B batch, T time, D input features, H hidden size (the model width), L layers.

A linear recurrence (LRU, minGRU) is linear in its input: one layer of it followed by a readout cannot form
products of inputs (the adding problem needs "marker x value"). The papers that make these cells work never
use them bare; they wrap each one in a block with a position-wise nonlinearity and a residual path:

* ``'lru'`` -- Orvieto et al. 2023, "Resurrecting recurrent neural networks for long sequences" (Sec. 3,
  Fig. 1; the public minimal-LRU ``SequenceLayer``): ``x + Dropout(GLU(Dropout(GELU(RNN(Norm(x))))))`` with
  ``GLU(u) = (u W1) * sigmoid(u W2)``.
* ``'mingru'`` -- Feng et al. 2024, "Were RNNs all we needed?" (Sec. 4/appendix: stacked minGRU with
  normalisation, residual connections and an MLP): ``x = x + Dropout(RNN(Norm(x)))`` then
  ``x = x + Dropout(MLP(Norm(x)))`` with ``MLP(u) = GELU(u W1) W2``, W1 ``[H, 4H]``.

Both start with a linear encoder ``D -> H`` and pre-normalise each block's input with ``norm``:

* ``'layer'`` -- LayerNorm (Ba et al. 2016) over the features of each step.
* ``'batch'`` -- :class:`BatchStatNorm`, per feature over the batch and the valid steps (the minimal-LRU
  default). It removes each feature's mean over time, which LayerNorm does not: the LRU's input
  normalisation gamma = sqrt(1 - |lambda|^2) assumes zero-mean inputs, and a constant input is amplified
  by gamma / |1 - lambda| (45x at lambda = 0.999), which swamps near-real, slowly decaying units.

The recurrent layer of block ``l`` is named ``layer{l}`` inside the stack, as in
:class:`~rnnlab.layers.StackedRNN`, so parameter paths and diagnostics are the same for every block.
Any registered cell fits in either block; the name says whose recipe it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell
from rnnlab.layers import final_outputs
from rnnlab.scan import RNN, loop_options

#: block kinds of :class:`~rnnlab.models.SequenceModel` (``'plain'`` is :class:`~rnnlab.layers.StackedRNN`).
BLOCKS = ("plain", "lru", "mingru")
NORMS = ("layer", "batch")
MLP_EXPANSION = 4  # Feng et al.'s (and the Transformer's) MLP width factor


class BatchStatNorm(nn.Module):
    """Batch normalisation (Ioffe & Szegedy 2015) with the statistics of the current batch, always.

    ``x: [B,T,H]``, ``mask: [B,T]`` bool (valid steps) or None -> ``[B,T,H]``: each feature minus its mean
    over the valid (b, t), divided by its standard deviation, then a learned scale and bias.

    There are no running averages: the training state holds parameters only, so evaluation and prediction
    also use their own batch's statistics (predictions depend on the batch they come in; keep eval batches
    large). The statistics span the whole sequence, so a step's output depends on later steps of the batch
    (harmless for many-to-one heads). Under ``jit`` with sharded batches the mean is over the global batch;
    under ``pmap`` each device uses its own shard.
    """

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x, mask=None):
        w = jnp.ones(x.shape[:2], x.dtype) if mask is None else mask.astype(x.dtype)
        w = w[..., None]
        n = jnp.maximum(w.sum((0, 1)), 1.0)
        mean = (x * w).sum((0, 1)) / n
        var = (jnp.square(x - mean) * w).sum((0, 1)) / n
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias


class GLU(nn.Module):
    """Gated linear unit ``u: [..., H] -> (u W1 + b1) * sigmoid(u W2 + b2): [..., H]`` (Dauphin et al. 2017),
    the position-wise nonlinearity of the LRU block."""

    features: int

    @nn.compact
    def __call__(self, u):
        return nn.Dense(self.features, name="out")(u) * jax.nn.sigmoid(
            nn.Dense(self.features, name="gate")(u)
        )


class MLP(nn.Module):
    """``u: [..., H] -> GELU(u W1 + b1) W2 + b2: [..., H]`` with W1 ``[H, 4H]``: the minGRU block's
    channel mixer."""

    features: int

    @nn.compact
    def __call__(self, u):
        u = nn.gelu(nn.Dense(MLP_EXPANSION * self.features, name="up")(u))
        return nn.Dense(self.features, name="down")(u)


class BlockStack(nn.Module):
    """Linear encoder ``D -> H``, then ``num_layers`` residual blocks of ``kind`` (see the module docstring).

    Attributes:
      make_cell: a cell factory ``make_cell(**flax_kwargs)`` returning a cell of output size H (called once
        per layer with ``parent=None``).
      hidden_size: H, the width of the residual stream (the encoder's output size).
      kind: ``'lru'`` or ``'mingru'``.
      num_layers: L.
      norm: ``'layer'`` or ``'batch'`` (see the module docstring).
      dropout: rate inside each block (needs the ``'dropout'`` rng when ``train=True``).
      rnn_options: the time-loop options of every :class:`~rnnlab.scan.RNN` (see
        :func:`rnnlab.scan.loop_options`).

    ``__call__(x: [B,T,D], lengths: [B] | None, *, train=False, initial_carries=None, probes=None,
    return_last=False)`` returns ``(carries, y)``: a list of L final carries and ``y: [B,T,H]``, the last
    block's output (the residual stream). Padded steps of ``y`` are not zero (the encoder and MLPs add
    biases there); heads must mask. With ``return_last``, also ``y`` at each sequence's last valid step
    ``[B,H]`` (zeros for empty sequences; :func:`~rnnlab.layers.final_outputs`).
    """

    make_cell: Callable[..., RecurrentCell]
    hidden_size: int
    kind: str = "lru"
    num_layers: int = 1
    norm: str = "layer"
    dropout: float = 0.0
    rnn_options: Any = ()

    def __post_init__(self):
        if self.kind not in BLOCKS[1:]:
            raise ValueError(f"unknown block {self.kind!r}; valid blocks: {', '.join(BLOCKS[1:])}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid norms: {', '.join(NORMS)}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        super().__post_init__()

    def normalise(self, x, mask, name):
        if self.norm == "layer":
            return nn.LayerNorm(name=name)(x)
        return BatchStatNorm(name=name)(x, mask)

    @nn.compact
    def __call__(
        self, x, lengths=None, *, train: bool = False, initial_carries=None, probes=None, return_last=False
    ):
        opts = dataclasses.asdict(loop_options(self.rnn_options))
        drop = nn.Dropout(self.dropout, deterministic=not train)
        h = self.hidden_size
        mask = None if lengths is None else jnp.arange(x.shape[1])[None, :] < lengths[:, None]
        x = nn.Dense(h, name="encoder")(x)
        carries = []
        for layer in range(self.num_layers):
            rnn = RNN(self.make_cell(parent=None), name=f"layer{layer}", **opts)
            c0 = None if initial_carries is None else initial_carries[layer]
            p = None if probes is None else probes[layer]
            carry, y = rnn(self.normalise(x, mask, f"norm{layer}"), lengths, c0, p)
            if y.shape[-1] != h:
                raise ValueError(f"the cell's output size {y.shape[-1]} must equal hidden_size {h}")
            if self.kind == "lru":
                x = x + drop(GLU(h, name=f"glu{layer}")(drop(nn.gelu(y))))
            else:
                x = x + drop(y)
                x = x + drop(MLP(h, name=f"mlp{layer}")(self.normalise(x, mask, f"mlp_norm{layer}")))
            carries.append(carry)
        if not return_last:
            return carries, x
        return carries, x, final_outputs(x, lengths)
