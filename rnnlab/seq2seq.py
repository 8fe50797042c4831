"""Encoder–decoder RNN with Luong attention and input feeding (Luong, Pham & Manning 2015, "Effective
approaches to attention-based neural machine translation").

Shape legend: B batch, S source length, T target length, E embedding size, H hidden size, V output vocabulary.

::

    encoder:  hbar_s = RNN(embed_in(x))_s                  [B, S, H]   (bidirectional: H/2 per direction)
    decoder:  h_t = cell(h_{t-1}, [embed_out(y_{t-1}); htilde_{t-1}])   (input feeding)
              a_t = softmax over valid source steps s of score(h_t, hbar_s)
              c_t = sum_s a_ts hbar_s
              htilde_t = tanh(W_c [c_t; h_t]);   logits_t = W_out htilde_t + b
    score:    'dot': h_t . hbar_s;   'general': h_t . (W_a hbar_s)   (W_a hbar_s is computed once, in encode)

Padded source steps get exactly zero attention; the encoder's exact masking makes their states zero too, so
padded source tokens cannot change any output. The decoder starts from the encoder's final carry (of the last
layer; both directions' carries concatenated when bidirectional). ``attention='none'`` gives the plain
encoder–decoder of Sutskever et al. (2014) / Cho et al. (2014): the decoder reads only ``embed_out(y_{t-1})``.

Input feeding makes step t depend on htilde_{t-1}, so teacher-forced decoding is a recurrence too: it runs
through :class:`rnnlab.RNN` with :class:`LuongAttentionCell`, a cell wrapper whose step attends over the
memory bound to it as an attribute (rnnlab keeps all time loops in :mod:`rnnlab.scan`). Step-by-step decoding
(:meth:`Seq2Seq.decode_step`) runs the very same cell once; :mod:`rnnlab.decoding` loops over it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.cells import CellLike, CellSpec, cell_factory
from rnnlab.cells.base import RecurrentCell
from rnnlab.layers import StackedRNN
from rnnlab.scan import RNN, check, loop_options, sequence_mask

Array = jax.Array
ATTENTIONS = ("general", "dot", "none")


def luong_attention(query: Array, keys: Array, values: Array, mask: Array) -> tuple[Array, Array]:
    """Masked dot-product attention of one decoder step over the source.

    Args:
      query: ``[B, H]``; keys, values: ``[B, S, H]``; mask: ``[B, S]`` bool, True on valid source steps.

    Returns:
      ``(context [B, H], weights [B, S])``; weights are exactly 0 on padded steps (all 0, and the context 0,
      for an empty source).
    """
    scores = jnp.einsum("bh,bsh->bs", query, keys)
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    weights = jnp.where(mask, jax.nn.softmax(scores, axis=-1), 0.0)
    return jnp.einsum("bs,bsh->bh", weights, values), weights


class LuongAttentionCell(RecurrentCell):
    """A decoder cell with Luong attention and input feeding, following the cell contract.

    The carry is ``(inner_carry, htilde [B, H])``; the output is htilde (the attentional vector).
    ``memory`` is a dict with ``keys``, ``values`` (``[B, S, H]``) and ``mask`` (``[B, S]``), bound when the
    cell is built for one batch. The attention weights of a step are sown as ``intermediates/attention``.

    Attributes:
      make_cell: the factory of the inner recurrent cell (output size H = ``hidden_size``).
      memory: the encoder's memory (see :meth:`Seq2Seq.encode`).
    """

    make_cell: Callable[..., RecurrentCell] | None = None
    memory: Any = None

    def setup(self):
        self.cell = self.make_cell()
        self.combine = nn.Dense(
            self.hidden_size, use_bias=False, name="combine", param_dtype=self.param_dtype
        )

    def init_carry(self, rng, batch_shape):
        htilde = jnp.zeros((*batch_shape, self.hidden_size), self.param_dtype)
        return self.cell.init_carry(rng, batch_shape), htilde

    def project_inputs(self, x):
        # Nothing can be hoisted: the step projects [x_t; htilde_{t-1}], which depends on the previous step.
        if self.is_initializing():
            # The time loop reads the parameters right after this call, so create all of them now.
            b = self.memory["values"].shape[0]
            self.step(self.init_carry(None, (b,)), jnp.zeros((b, x.shape[-1]), x.dtype))
        return x

    def step(self, carry, x):
        inner, htilde = carry
        inner, h = self.cell.step(inner, self.cell.project_inputs(jnp.concatenate([x, htilde], -1)))
        m = self.memory
        context, weights = luong_attention(h, m["keys"], m["values"], m["mask"])
        self.sow("intermediates", "attention", weights)
        htilde = jnp.tanh(self.combine(jnp.concatenate([context, h], -1)))
        return (inner, htilde), htilde

    def hidden(self, carry):
        return self.cell.hidden(carry[0])


class Decoder(nn.Module):
    """The word decoder of every encoder-decoder in rnnlab (translation here, image captioning in
    :mod:`rnnlab.captioning`): a cell built around the memory of the current batch, and the output layer.

    ``__call__(memory, carry, x, lengths, *, single_step, train)``: ``x: [B, T, E]`` through the time loop,
    or ``x: [B, E]`` for one step (``single_step=True``). Returns ``(carry, logits [B, (T,) V])``; padded
    steps (``lengths``) give exactly the output bias (the time loop zeroes their outputs).

    Attributes:
      make_cell: the factory of the recurrent cell (see :func:`rnnlab.cells.cell_factory`).
      attention: ``'none'`` (the plain cell), or ``'general'`` / ``'dot'``: a :class:`LuongAttentionCell`
        over ``memory['keys']``, ``memory['values']`` and ``memory['mask']`` (other memory keys are ignored).
      vocab_size: V.
      dropout: before the output layer (``train=True`` needs the 'dropout' rng).
      rnn_options: the time-loop options of the :class:`~rnnlab.scan.RNN`.
    """

    make_cell: Callable[..., RecurrentCell]
    attention: str
    vocab_size: int
    dropout: float = 0.0
    rnn_options: Any = ()

    @nn.compact
    def __call__(self, memory, carry, x, lengths=None, *, single_step: bool = False, train: bool = False):
        if self.attention == "none":
            cell = self.make_cell(name="cell")
        else:
            inner = self.make_cell(parent=None)
            cell = LuongAttentionCell(
                inner.hidden_size,
                param_dtype=inner.param_dtype,
                make_cell=self.make_cell,
                memory=memory,
                name="cell",
            )
        if single_step:
            carry, y = cell(carry, x)
        else:
            carry, y = RNN(cell, name="rnn", **dict(self.rnn_options))(x, lengths, carry)
        if self.dropout:
            y = nn.Dropout(self.dropout, deterministic=not train)(y)
        y = jnp.real(y) if jnp.iscomplexobj(y) else y
        return carry, nn.Dense(self.vocab_size, name="out")(y)


class Seq2Seq(nn.Module):
    """Embedding -> RNN encoder -> RNN decoder with teacher forcing and Luong attention (module docstring).

    Attributes:
      input_vocab, output_vocab: source and target vocabulary sizes (V = ``output_vocab``).
      cell: the decoder cell, and the encoder's: a registry name (built with ``hidden_size`` and
        ``cell_options``), a :class:`~rnnlab.cells.CellSpec` or a factory (see
        :func:`rnnlab.cells.cell_factory`). Its output size is H; each direction of a bidirectional encoder
        has H/2 (so H must be even, and the cell a name or a CellSpec, whose size can be halved).
      hidden_size, cell_options: for a registry name only.
      embed_dim: E (default H).
      encoder_layers: stacked encoder layers (the decoder has one).
      bidirectional: bidirectional encoder.
      attention: ``'general'`` (default), ``'dot'`` or ``'none'``.
      dropout: on embeddings, between encoder layers and before the output layer (``train=True`` needs the
        ``'dropout'`` rng).
      rnn_options: the time-loop options of every :class:`~rnnlab.scan.RNN` (a mapping; see
        :func:`rnnlab.scan.loop_options`).

    ``__call__(inputs [B,S] int, lengths [B], decoder_inputs [B,T] int, *, decoder_lengths=None, train=False)
    -> logits [B,T,V]``. For generation: :meth:`encode`, :meth:`init_decoder_carry`, :meth:`decode_step`
    (see :func:`rnnlab.decoding.seq2seq_step_fn`).
    """

    input_vocab: int
    output_vocab: int
    cell: CellLike = "lstm"
    hidden_size: int = 64
    cell_options: Any = ()
    embed_dim: int | None = None
    encoder_layers: int = 1
    bidirectional: bool = False
    attention: str = "general"
    dropout: float = 0.0
    rnn_options: Any = ()

    def __post_init__(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; valid: {', '.join(ATTENTIONS)}")
        cell = self._decoder_cell()(parent=None)  # validates the cell and its options
        check(cell, loop_options(self.rnn_options))
        if self.bidirectional and cell.hidden_size % 2:
            raise ValueError(
                f"a bidirectional encoder needs an even hidden_size (H/2 per direction), "
                f"got {cell.hidden_size}"
            )
        self._encoder_cell()
        super().__post_init__()

    def _decoder_cell(self) -> Callable[..., RecurrentCell]:
        return cell_factory(self.cell, self.hidden_size, self.cell_options)

    def _encoder_cell(self) -> Callable[..., RecurrentCell]:
        """The decoder's factory, with H/2 per direction for a bidirectional encoder."""
        factory = self._decoder_cell()
        if not self.bidirectional:
            return factory
        if not isinstance(factory, CellSpec):
            raise ValueError(
                "a bidirectional encoder halves the cell's hidden size per direction: pass cell as a "
                f"registry name or a CellSpec, not {factory!r}"
            )
        return dataclasses.replace(factory, hidden_size=factory.hidden_size // 2)

    def setup(self):
        h = self._decoder_cell()(parent=None).hidden_size
        e = self.embed_dim or h
        self.embed_in = nn.Embed(self.input_vocab, e)
        self.embed_out = nn.Embed(self.output_vocab, e)
        self.encoder = StackedRNN(
            self._encoder_cell(),
            self.encoder_layers,
            self.bidirectional,
            dropout=self.dropout,
            rnn_options=self.rnn_options,
        )
        if self.attention == "general":
            self.attention_keys = nn.Dense(h, use_bias=False)  # W_a, applied to the memory once
        self.drop = nn.Dropout(self.dropout)
        self.decoder = Decoder(
            self._decoder_cell(), self.attention, self.output_vocab, self.dropout, self.rnn_options
        )

    def encode(self, inputs: Array, lengths: Array | None = None, *, train: bool = False) -> dict:
        """Read the source.

        Args:
          inputs: ``[B, S]`` int; lengths: ``[B]`` valid lengths (S when None).

        Returns:
          memory: ``{'keys', 'values': [B, S, H], 'mask': [B, S] bool, 'final': the encoder's final carry
          (leaves [B, H])}`` — every leaf has the batch axis first, so decoders can tile or reorder it.
        """
        inputs = jnp.asarray(inputs)
        if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise ValueError(f"inputs must be int token ids [B, S], got {inputs.dtype} {inputs.shape}")
        x = self.drop(self.embed_in(inputs), deterministic=not train)
        carries, values = self.encoder(x, lengths, train=train)
        final = carries[-1]
        if self.bidirectional:
            final = jax.tree.map(lambda f, b: jnp.concatenate([f, b], -1), *final)
        b, s = inputs.shape
        mask = jnp.ones((b, s), bool) if lengths is None else sequence_mask(jnp.asarray(lengths), s)
        keys = self.attention_keys(values) if self.attention == "general" else values
        return {"keys": keys, "values": values, "mask": mask, "final": final}

    def init_decoder_carry(self, memory: dict):
        """The decoder's initial carry: the encoder's final carry (plus a zero htilde with attention)."""
        final = memory["final"]
        b = memory["mask"].shape[0]
        cell = self._decoder_cell()(parent=None)
        expected = cell.init_carry(None, (b,))
        if jax.tree.structure(final) != jax.tree.structure(expected) or any(
            f.shape != e.shape for f, e in zip(jax.tree.leaves(final), jax.tree.leaves(expected), strict=True)
        ):
            raise ValueError(
                "the encoder's final carry does not fit the decoder cell "
                f"({jax.tree.map(jnp.shape, final)} vs {jax.tree.map(jnp.shape, expected)}); "
                "with a bidirectional encoder, cell state sizes must be H/2 per direction."
            )
        if self.attention == "none":
            return final
        return final, jnp.zeros((b, cell.hidden_size), memory["values"].dtype)

    def decode_step(self, memory: dict, carry, token: Array):
        """One decoder step: ``token: [B]`` int (the previous output) -> ``(carry, logits [B, V])``."""
        return self.decoder(memory, carry, self.embed_out(jnp.asarray(token)), single_step=True)

    def __call__(
        self,
        inputs: Array,
        lengths: Array | None,
        decoder_inputs: Array,
        *,
        decoder_lengths: Array | None = None,
        train: bool = False,
    ) -> Array:
        """Teacher-forced logits ``[B, T, V]`` for ``decoder_inputs: [B, T]`` (the targets shifted right,
        starting with a start token). With ``decoder_lengths``, padded target steps give exactly the output
        bias."""
        memory = self.encode(inputs, lengths, train=train)
        carry = self.init_decoder_carry(memory)
        y = self.drop(self.embed_out(jnp.asarray(decoder_inputs)), deterministic=not train)
        _, logits = self.decoder(memory, carry, y, decoder_lengths, train=train)
        return logits


__all__ = ["ATTENTIONS", "Decoder", "LuongAttentionCell", "Seq2Seq", "luong_attention"]
