"""Sequence taggers with per-token features and an optional CRF output layer, and entity counts for BIO tags
that run inside a jitted step.

Shape legend: B batch, T tokens, Lc characters per token, E word embedding size, F character features,
H hidden size, C tags.

::

    x_t      = [embed(word_t); chars(token_t); embed_case(case_t)]        (each part optional but the word)
    e_t      = W (BiRNN(dropout(x)))_t + b                                [B, T, C] emissions
    tags     = argmax_c e_t[c] per step,  or  Viterbi under a linear-chain CRF (``crf=True``)

Named entities in tweets are mostly rare words, '<unk>' for a word vocabulary: the characters (suffixes,
capitals) and the token's shape still identify them. Characters are read per token by a CNN with max-pooling
over the characters (Chiu & Nichols 2016, "Named entity recognition with bidirectional LSTM-CNNs"; Ma & Hovy
2016, "End-to-end sequence labeling via bi-directional LSTM-CNNs-CRF") or by a bidirectional LSTM whose two
final states are concatenated (Lample et al. 2016, "Neural architectures for named entity recognition"); the
CRF (Lafferty et al. 2001; Huang, Xu & Yu 2015) scores tag transitions, so 'I-person' after 'O' costs what
the data say it should.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from rnnlab.cells import CellLike, cell_factory
from rnnlab.crf import CRF, CRFScores, viterbi
from rnnlab.layers import StackedRNN
from rnnlab.models import SequenceModel

Array = jax.Array
CHAR_ENCODERS = ("cnn", "lstm")


class CharEncoder(nn.Module):
    """``chars [B, T, Lc]`` int (0 = padding) -> ``[B, T, F]``: one vector per token from its characters;
    tokens without characters (padding) give zeros.

    Attributes:
      num_chars: the character vocabulary size (id 0 = padding).
      kind: ``'cnn'`` (embedding, a width-``width`` convolution, ReLU, max over the token's characters) or
        ``'lstm'`` (a bidirectional LSTM over the characters, F/2 per direction, final outputs concatenated).
      dim: character embedding size; features: F.
    """

    num_chars: int
    kind: str = "cnn"
    dim: int = 25
    features: int = 50
    width: int = 3

    @nn.compact
    def __call__(self, chars: Array) -> Array:
        chars = jnp.asarray(chars, jnp.int32)
        b, t, lc = chars.shape
        valid = chars > 0  # [B, T, Lc]
        x = nn.Embed(self.num_chars, self.dim, name="embed")(chars.reshape(b * t, lc))
        if self.kind == "cnn":
            y = nn.relu(nn.Conv(self.features, (self.width,), padding="SAME", name="conv")(x))
            y = jnp.where(valid.reshape(b * t, lc, 1), y, 0.0)  # ReLU >= 0: zeros never win the max
            out = y.max(axis=1)
        elif self.kind == "lstm":
            if self.features % 2:
                raise ValueError(f"a character BiLSTM needs an even number of features, got {self.features}")
            stack = StackedRNN(cell_factory("lstm", self.features // 2), 1, True, name="bilstm")
            _, _, out = stack(x, valid.reshape(b * t, lc).sum(-1), return_last=True)
        else:
            raise ValueError(f"unknown char encoder {self.kind!r}; valid: {', '.join(CHAR_ENCODERS)}")
        return out.reshape(b, t, self.features)


class Tagger(nn.Module):
    """Word ids (+ character ids, + case classes) -> a stacked (bi)RNN -> per-token tag scores (module
    docstring).

    Attributes:
      vocab_size, num_tags: V words, C tags.
      cell, hidden_size, num_layers, cell_options, bidirectional, dropout, rnn_options: the recurrent
        layers, as in :class:`rnnlab.SequenceModel` (``dropout`` also applies to the token features).
      embed_dim: E (default H).
      num_chars: character vocabulary size; 0 = no character features.
      char_encoder, char_dim, char_features: see :class:`CharEncoder`.
      num_case: case classes (id 0 = padding); 0 = no case feature. case_dim: their embedding size.
      crf: a linear-chain CRF on top (:class:`rnnlab.crf.CRF`).

    ``__call__(inputs [B, T] int, lengths [B] | None, features=None, *, train=False)``: ``features`` holds
    ``'chars'`` ``[B, T, Lc]`` and/or ``'case'`` ``[B, T]`` as configured. Returns the emissions
    ``[B, T, C]``, or :class:`rnnlab.crf.CRFScores` (emissions and the CRF's parameters) with ``crf=True``;
    :func:`best_tags` turns either into tags.
    """

    vocab_size: int
    num_tags: int
    cell: CellLike = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    cell_options: Any = ()
    embed_dim: int | None = None
    bidirectional: bool = True
    dropout: float = 0.0
    rnn_options: Any = ()
    num_chars: int = 0
    char_encoder: str = "cnn"
    char_dim: int = 25
    char_features: int = 50
    num_case: int = 0
    case_dim: int = 8
    crf: bool = False

    def __post_init__(self):
        if self.char_encoder not in CHAR_ENCODERS:
            raise ValueError(f"unknown char_encoder {self.char_encoder!r}; valid: {', '.join(CHAR_ENCODERS)}")
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs, lengths=None, features=None, *, train: bool = False):
        inputs = jnp.asarray(inputs)
        if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise ValueError(f"inputs must be int word ids [B, T], got {inputs.dtype} {inputs.shape}")
        features = dict(features or {})
        needed = [
            k for k, n in (("chars", self.num_chars), ("case", self.num_case)) if n and k not in features
        ]
        if needed:
            raise ValueError(f"this tagger reads the token features {needed}; pass them in `features`")
        embed_dim = (
            self.embed_dim
            or cell_factory(self.cell, self.hidden_size, self.cell_options)(parent=None).hidden_size
        )
        parts = [nn.Embed(self.vocab_size, embed_dim, name="embed")(inputs)]
        if self.num_chars:
            parts.append(
                CharEncoder(
                    self.num_chars, self.char_encoder, self.char_dim, self.char_features, name="chars"
                )(features["chars"])
            )
        if self.num_case:
            parts.append(nn.Embed(self.num_case, self.case_dim, name="case")(jnp.asarray(features["case"])))
        x = nn.Dropout(self.dropout, deterministic=not train)(jnp.concatenate(parts, -1))
        emissions = SequenceModel(
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            cell_options=self.cell_options,
            bidirectional=self.bidirectional,
            head="all",
            num_outputs=self.num_tags,
            dropout=self.dropout,
            rnn_options=self.rnn_options,
            name="sequence",
        )(x, lengths, train=train)
        return CRF(self.num_tags, name="crf").scores(emissions) if self.crf else emissions


def best_tags(outputs, lengths: Array | None = None) -> Array:
    """The predicted tags ``[B, T]`` int32 of a tagger's outputs: the argmax per step of emissions
    ``[B, T, C]``, the Viterbi sequence of :class:`rnnlab.crf.CRFScores` (0 on padded steps)."""
    if isinstance(outputs, CRFScores):
        return viterbi(outputs.params, outputs.emissions, lengths)[0]
    return jnp.argmax(outputs, axis=-1).astype(jnp.int32)


# --- entity counts inside jit -----------------------------------------------------------------------------


def bio_scheme(tag_names) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(prefix, kind)`` per tag id from BIO tag names: prefix 0 for 'O', 1 for 'B-X', 2 for 'I-X'; kind an
    int per entity type (0 for 'O'); None when the names are not a BIO scheme (then no entity counts)."""
    prefix, kind, kinds = [], [], {}
    for name in tag_names:
        if name == "O":
            prefix.append(0)
            kind.append(0)
            continue
        head, sep, k = str(name).partition("-")
        if head not in ("B", "I") or not sep or not k:
            return None
        prefix.append(1 if head == "B" else 2)
        kind.append(kinds.setdefault(k, len(kinds) + 1))
    return (tuple(prefix), tuple(kind)) if kinds else None


def _chunks(tags: Array, mask: Array, prefix: Array, kind: Array) -> tuple[Array, Array, Array]:
    """``(starts [B, T] bool, kinds [B, T], ends_after [B, T])``: where chunks start (conlleval's rule, as
    :func:`rnnlab.textmetrics.bio_entities`), each step's entity type, and the first chunk end at or after
    each step (T when none)."""
    p = jnp.where(mask, prefix[tags], 0)
    k = jnp.where(mask, kind[tags], 0)
    shift_r = lambda a: jnp.pad(a, ((0, 0), (1, 0)))[:, :-1]  # a[t-1], 0 at t = 0
    shift_l = lambda a: jnp.pad(a, ((0, 0), (0, 1)))[:, 1:]  # a[t+1], 0 at t = T-1
    starts = (p == 1) | ((p == 2) & ((shift_r(p) == 0) | (shift_r(k) != k)))
    continues = (shift_l(p) == 2) & (shift_l(k) == k)
    ends = (p != 0) & ~continues
    t = tags.shape[1]
    at = jnp.where(ends, jnp.arange(t), t)
    ends_after = jax.lax.cummin(at, axis=1, reverse=True)
    return starts, k, ends_after


def entity_counts(targets: Array, predictions: Array, mask: Array, scheme) -> tuple[Array, Array, Array]:
    """Entity counts of a batch of BIO tag sequences, jittable: ``(correct, true, predicted)`` scalars, the
    numbers conlleval sums (an entity is correct when its type and exact span match).

    Args:
      targets, predictions: ``[B, T]`` int tag ids; mask: ``[B, T]`` (steps that count; padding is 'O');
      scheme: :func:`bio_scheme` of the tag names.
    """
    prefix, kind = (jnp.asarray(np.asarray(a), jnp.int32) for a in scheme)
    mask = jnp.asarray(mask) > 0
    st, kt, et = _chunks(jnp.asarray(targets, jnp.int32), mask, prefix, kind)
    sp, kp, ep = _chunks(jnp.asarray(predictions, jnp.int32), mask, prefix, kind)
    correct = st & sp & (kt == kp) & (et == ep)
    return correct.sum(), st.sum(), sp.sum()


__all__ = ["CHAR_ENCODERS", "CharEncoder", "Tagger", "best_tags", "bio_scheme", "entity_counts"]
