"""Sequence models: an input layer, a stacked RNN, and a head.

Shape legend: B batch, T time, D input features, V vocabulary, H hidden size (the cell's output size),
C outputs.

Heads: ``last`` (many-to-one from the cell's output at each sequence's last valid step, and for
bidirectional models the backward direction's output at step 0; zeros for empty sequences), ``mean``
(many-to-one from the masked mean of outputs), ``all`` (many-to-many: one prediction per step; padded steps
give exactly the head's bias).

Blocks: ``plain`` stacks bare RNN layers (:class:`~rnnlab.layers.StackedRNN`); ``lru`` and ``mingru``
wrap each layer in the residual block of Orvieto et al. 2023 / Feng et al. 2024
(:class:`~rnnlab.blocks.BlockStack`, unidirectional and residual by construction), where ``last`` reads the
residual stream at each sequence's last valid step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.blocks import BLOCKS, NORMS, BlockStack
from rnnlab.cells import CellLike, cell_factory
from rnnlab.layers import StackedRNN, masked_mean
from rnnlab.scan import check, loop_options, zero_probes

HEADS = ("last", "mean", "all")


class SequenceModel(nn.Module):
    """Embedding (``vocab_size`` set, inputs ``[B,T]`` int) or raw features (inputs ``[B,T,D]`` float) ->
    ``num_layers`` RNN layers of ``cell`` -> head.

    Attributes:
      cell: a registry name (built with ``hidden_size`` and ``cell_options``), a
        :class:`~rnnlab.cells.CellSpec`, or a factory ``f(**flax_kwargs) -> RecurrentCell`` (which carries its
        own size and options); see :func:`rnnlab.cells.cell_factory`.
      hidden_size, cell_options: for a registry name only.
      num_layers, bidirectional, residual, dropout: see :class:`~rnnlab.layers.StackedRNN`.
      vocab_size, embed_dim: token ids are embedded into ``embed_dim`` (default H) features.
      head: ``last``, ``mean`` or ``all`` (module docstring); num_outputs: C.
      rnn_options: the time-loop options, a mapping with keys among ``backend, mode, hoist, unroll, remat,
        remat_chunk`` (validated on construction; see :class:`~rnnlab.scan.RNN`).
      block: ``plain``, ``lru`` or ``mingru`` (module docstring); norm: the blocks' pre-norm, ``layer`` or
        ``batch`` (see :mod:`rnnlab.blocks`; ignored by ``plain``).

    ``__call__(inputs, lengths=None, *, train=False, probes=None, initial_carries=None,
    return_carries=False)`` returns ``[B,C]`` (heads ``last``/``mean``) or ``[B,T,C]`` (head ``all``); with
    ``return_carries`` also the list of final carries (for truncated BPTT).
    """

    cell: CellLike = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    cell_options: Any = ()
    vocab_size: int | None = None
    embed_dim: int | None = None
    bidirectional: bool = False
    residual: bool = False
    head: str = "last"
    num_outputs: int = 1
    dropout: float = 0.0
    rnn_options: Any = ()
    block: str = "plain"
    norm: str = "layer"

    def make_cell(self, **flax_kwargs):
        """A fresh cell of this model (``parent=None`` for a detached one)."""
        return cell_factory(self.cell, self.hidden_size, self.cell_options)(**flax_kwargs)

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; valid heads: {', '.join(HEADS)}")
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block {self.block!r}; valid blocks: {', '.join(BLOCKS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid norms: {', '.join(NORMS)}")
        if self.block != "plain" and (self.bidirectional or self.residual):
            raise ValueError(f"block={self.block!r} is unidirectional and always residual")
        # Fail here, not at the first call: the cell, its options, and the time-loop options it can run with.
        check(self.make_cell(parent=None), loop_options(self.rnn_options))
        super().__post_init__()

    def zero_probes(self, batch_size: int, length: int):
        """Zero probes for every layer (pairs if bidirectional); see :func:`rnnlab.scan.zero_probes`."""
        one = zero_probes(self.make_cell(parent=None).init_carry(None, (batch_size,)), length)
        return [(one, one) if self.bidirectional else one for _ in range(self.num_layers)]

    @nn.compact
    def __call__(
        self,
        inputs,
        lengths=None,
        *,
        train: bool = False,
        probes=None,
        initial_carries=None,
        return_carries: bool = False,
    ):
        inputs = jnp.asarray(inputs)
        if self.vocab_size is not None:
            if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
                raise ValueError(
                    f"this model embeds token ids: inputs must be int [B, T], got {inputs.dtype} "
                    f"{inputs.shape}. For float features [B, T, D] build it with vocab_size=None."
                )
            embed_dim = self.embed_dim or self.make_cell(parent=None).hidden_size
            x = nn.Embed(self.vocab_size, embed_dim, name="embed")(inputs)
        else:
            if inputs.ndim != 3:
                raise ValueError(
                    f"inputs must be float [B, T, D], got shape {inputs.shape}; for token ids set vocab_size."
                )
            x = inputs.astype(jnp.promote_types(inputs.dtype, jnp.float32))
        make_cell = cell_factory(self.cell, self.hidden_size, self.cell_options)
        if self.block == "plain":
            stack = StackedRNN(
                make_cell,
                self.num_layers,
                self.bidirectional,
                self.residual,
                self.dropout,
                self.rnn_options,
                name="rnn",
            )
        else:
            stack = BlockStack(
                make_cell,
                self.make_cell(parent=None).hidden_size,
                kind=self.block,
                num_layers=self.num_layers,
                norm=self.norm,
                dropout=self.dropout,
                rnn_options=self.rnn_options,
                name="rnn",
            )
        carries, y, last = stack(
            x, lengths, train=train, initial_carries=initial_carries, probes=probes, return_last=True
        )
        if self.head == "last":
            feats = last
        elif self.head == "mean":
            feats = masked_mean(y, lengths)
        else:
            feats = y
        if self.dropout:
            feats = nn.Dropout(self.dropout, deterministic=not train)(feats)
        out = nn.Dense(self.num_outputs, name="head")(feats)
        return (out, carries) if return_carries else out


def count_params(params) -> int:
    """The number of scalars in a parameter pytree (what runs record as the model size)."""
    return sum(int(jnp.size(p)) for p in jax.tree.leaves(params))
