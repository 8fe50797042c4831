"""Image captioning: an image encoder whose features start a recurrent decoder of words (Vinyals, Toshev,
Bengio & Erhan 2015, "Show and tell"; Karpathy & Fei-Fei 2015, "Deep visual-semantic alignments"), with
optional attention over the image's feature positions (Xu et al. 2015, "Show, attend and tell").

Shape legend: B batch, H x W image, S feature positions, F features, T caption length, E embedding size,
N hidden size, V vocabulary.

::

    features = encoder(image)                        [B, S, F]
    carry_0  = tanh(W_k flatten(features) + b_k)     one projection per leaf of the cell's carry
    h_t      = cell(h_{t-1}, embed(y_{t-1}))          attention 'none'
    logits_t = W_out h_t + b_out

With ``attention='general'`` or ``'dot'`` the decoder is :class:`rnnlab.seq2seq.LuongAttentionCell` over the
memory ``values = relu(W_v features)`` (``[B, S, N]``; keys ``W_a values`` for 'general'), the same cell the
translation model uses, so a caption is a translation from feature positions to words.

The carry is initialised from the image rather than fed the image as a first input: Vinyals et al. feed it
once as x_0, Karpathy & Fei-Fei add it as a bias at the first step; initialising the state is the same idea
without a special first step, so teacher forcing and :meth:`ImageCaptioner.decode_step` run one cell.
Teacher-forced decoding goes through :class:`rnnlab.RNN`; generation through :mod:`rnnlab.decoding` with
:func:`caption_step_fn` and :func:`caption_init_carry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab import decoding
from rnnlab.cells import cell_factory, get_cell
from rnnlab.encoders import flatten_features
from rnnlab.seq2seq import ATTENTIONS, Decoder

Array = jax.Array


class ImageCaptioner(nn.Module):
    """Encoder -> carry initialisation -> recurrent decoder with teacher forcing (module docstring).

    Attributes:
      vocab_size: V (the caption tokens, including the start, end and padding tokens the task defines).
      encoder: an image encoder ``[B, H, W(, Ch)] -> [B, S, F]`` (:mod:`rnnlab.encoders`).
      cell, cell_options: the decoder cell (``rnnlab.get_cell(cell, hidden_size, **cell_options)``).
      hidden_size: N; embed_dim: E (default N).
      attention: ``'none'`` (default), ``'general'`` or ``'dot'``.
      dropout: on the word embeddings and before the output layer (``train=True`` needs the 'dropout' rng).
      rnn_options: keyword arguments for the decoder's :class:`rnnlab.RNN`.

    ``__call__(images, decoder_inputs [B, T] int, decoder_lengths [B] | None, *, train=False) -> logits
    [B, T, V]``; for generation :meth:`encode`, :meth:`init_decoder_carry`, :meth:`decode_step`.
    """

    vocab_size: int
    encoder: nn.Module
    cell: str = "lstm"
    hidden_size: int = 64
    cell_options: Any = ()
    embed_dim: int | None = None
    attention: str = "none"
    dropout: float = 0.0
    rnn_options: Any = ()

    def __post_init__(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; valid: {', '.join(ATTENTIONS)}")
        get_cell(self.cell, self.hidden_size, parent=None, **dict(self.cell_options))  # validate early
        super().__post_init__()

    def _cell(self, **flax_kwargs):
        return get_cell(self.cell, self.hidden_size, **dict(self.cell_options), **flax_kwargs)

    def setup(self):
        n = self.hidden_size
        self.embed = nn.Embed(self.vocab_size, self.embed_dim or n)
        leaves = jax.tree.leaves(self._cell(parent=None).init_carry(None, (1,)))
        self.init_carry_proj = [nn.Dense(leaf.shape[-1]) for leaf in leaves]
        if self.attention != "none":
            self.memory_proj = nn.Dense(n)
        if self.attention == "general":
            self.attention_keys = nn.Dense(n, use_bias=False)  # W_a, applied to the memory once
        self.drop = nn.Dropout(self.dropout)
        self.decoder = Decoder(
            cell_factory(self.cell, self.hidden_size, self.cell_options),
            self.attention,
            self.vocab_size,
            self.dropout,
            self.rnn_options,
        )

    def encode(self, images: Array) -> dict:
        """``images [B, H, W(, Ch)]`` -> the decoder's memory: ``{'summary': [B, S*F]}`` plus, with
        attention, ``{'keys', 'values': [B, S, N], 'mask': [B, S] bool}`` (every leaf batch-first, so beam
        search can tile and reorder it)."""
        features = self.encoder(images)
        memory = {"summary": flatten_features(features)}
        if self.attention != "none":
            values = nn.relu(self.memory_proj(features))
            keys = self.attention_keys(values) if self.attention == "general" else values
            memory.update(keys=keys, values=values, mask=jnp.ones(values.shape[:2], bool))
        return memory

    def init_decoder_carry(self, memory: dict):
        """The decoder's first carry: ``tanh`` of a projection of the image summary for every carry leaf
        (plus a zero attentional vector with attention)."""
        summary = memory["summary"]
        b = summary.shape[0]
        zero = self._cell(parent=None).init_carry(None, (b,))
        leaves, treedef = jax.tree.flatten(zero)
        inner = jax.tree.unflatten(
            treedef,
            [jnp.tanh(p(summary)).astype(z.dtype) for p, z in zip(self.init_carry_proj, leaves, strict=True)],
        )
        if self.attention == "none":
            return inner
        return inner, jnp.zeros((b, self.hidden_size), memory["values"].dtype)

    def decode_step(self, memory: dict, carry, token: Array):
        """One decoder step: ``token [B]`` int (the previous word) -> ``(carry, logits [B, V])``."""
        return self.decoder(memory, carry, self.embed(jnp.asarray(token)), single_step=True)

    def __call__(
        self,
        images: Array,
        decoder_inputs: Array,
        decoder_lengths: Array | None = None,
        *,
        train: bool = False,
    ) -> Array:
        """Teacher-forced logits ``[B, T, V]`` for ``decoder_inputs [B, T]`` (the caption shifted right,
        starting with the start token); padded steps (``decoder_lengths``) give exactly the output bias."""
        memory = self.encode(images)
        carry = self.init_decoder_carry(memory)
        x = self.drop(self.embed(jnp.asarray(decoder_inputs)), deterministic=not train)
        _, logits = self.decoder(memory, carry, x, decoder_lengths, train=train)
        return logits


# --- generation with rnnlab.decoding ----------------------------------------------------------------------


def caption_step_fn(model: ImageCaptioner, params) -> jax.tree_util.Partial:
    """The step function of :func:`rnnlab.decoding.greedy` / ``beam_search``: ``(carry, tokens [B]) ->
    (carry, log_probs [B, V])``, the carry from :func:`caption_init_carry`. The captioner decodes exactly as
    a :class:`rnnlab.seq2seq.Seq2Seq` does (``decode_step`` over ``(memory, decoder_carry)``), so this is
    :func:`rnnlab.decoding.seq2seq_step_fn`."""
    return decoding.seq2seq_step_fn(model, params)


def caption_init_carry(model: ImageCaptioner, params, images: Array):
    """Encode ``images [B, H, W(, Ch)]`` into the ``(memory, decoder_carry)`` carry that
    :func:`caption_step_fn` reads."""
    variables = params if isinstance(params, Mapping) and "params" in params else {"params": params}
    memory = model.apply(variables, images, method="encode")
    return memory, model.apply(variables, memory, method="init_decoder_carry")


__all__ = ["ImageCaptioner", "caption_init_carry", "caption_step_fn"]
