"""Image encoders for recurrent models of images and frame sequences.

Shape legend: B batch, T frames, H x W image (Ch channels, 1 when the image is ``[.., H, W]``), S feature
positions, F features per position, C classes.

An encoder maps ``images: [B, H, W]`` (or ``[B, H, W, Ch]``) to a *set of feature vectors* ``[B, S, F]``:
the cells of a CNN feature map (S = H' W', row-major), or S = 1 for an MLP. Keeping the positions apart lets a
decoder attend over them (Xu et al. 2015, "Show, attend and tell") and lets :func:`flatten_features` keep
where things are, which global average pooling would discard (the order of digits in a strip, the position
of a moving digit).

* :class:`ConvEncoder`: stages of 3x3 convolution, ReLU and 2x2 max-pooling (LeCun et al. 1998).
* :class:`MLPEncoder`: the flattened image through ReLU layers.
* :class:`FrameEncoder`: any encoder applied to every frame of ``[B, T, H, W]``, giving ``[B, T, F]``.
* :class:`VideoClassifier`: frames -> :class:`FrameEncoder` -> :class:`rnnlab.SequenceModel` -> C classes
  (the "long-term recurrent convolutional network" of Donahue et al. 2015).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.models import SequenceModel

Array = jax.Array
ENCODERS = ("conv", "mlp")  # the image encoders a config names (rnnlab.training.builders.make_encoder)


def _with_channels(images: Array) -> Array:
    """``[B, H, W]`` -> ``[B, H, W, 1]``; ``[B, H, W, Ch]`` unchanged; as float32 (or wider)."""
    images = jnp.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images must be [B, H, W] or [B, H, W, Ch], got shape {images.shape}")
    return images.astype(jnp.promote_types(images.dtype, jnp.float32))


def flatten_features(features: Array) -> Array:
    """``[B, S, F]`` -> ``[B, S * F]``: one vector per image that keeps every position apart."""
    return features.reshape(features.shape[0], -1)


class ConvEncoder(nn.Module):
    """``images [B, H, W(, Ch)] -> features [B, S, F]``, S = (H / 2^k)(W / 2^k) for k stages, F =
    ``out_dim`` (or the last stage's channels when ``out_dim`` is None).

    Attributes:
      features: channels of each stage (3x3 conv, ReLU, 2x2 max-pool with 'SAME' padding).
      out_dim: a per-position Dense + ReLU projection to this size, or None.
    """

    features: Sequence[int] = (16, 32)
    out_dim: int | None = None

    @nn.compact
    def __call__(self, images: Array) -> Array:
        x = _with_channels(images)
        for i, f in enumerate(self.features):
            x = nn.relu(nn.Conv(f, (3, 3), name=f"conv{i}")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        if self.out_dim is not None:
            x = nn.relu(nn.Dense(self.out_dim, name="out")(x))
        return x


class MLPEncoder(nn.Module):
    """``images [B, H, W(, Ch)] -> features [B, 1, out_dim]``: the flattened pixels through ReLU layers.

    Attributes:
      hidden: sizes of the hidden layers; out_dim: F.
    """

    hidden: Sequence[int] = (128,)
    out_dim: int = 64

    @nn.compact
    def __call__(self, images: Array) -> Array:
        x = _with_channels(images)
        x = x.reshape(x.shape[0], -1)
        for i, h in enumerate((*self.hidden, self.out_dim)):
            x = nn.relu(nn.Dense(h, name=f"dense{i}")(x))
        return x[:, None, :]


class FrameEncoder(nn.Module):
    """``frames [B, T, H, W(, Ch)] -> [B, T, F]``: ``encoder`` on every frame (one batched call over B*T
    images), its ``[S, F']`` features flattened per frame, then optionally a Dense + ReLU to ``out_dim``.

    Padded frames are encoded too (their features are ignored downstream through ``lengths``).
    """

    encoder: nn.Module
    out_dim: int | None = None

    @nn.compact
    def __call__(self, frames: Array) -> Array:
        frames = jnp.asarray(frames)
        if frames.ndim not in (4, 5):
            raise ValueError(f"frames must be [B, T, H, W] or [B, T, H, W, Ch], got shape {frames.shape}")
        b, t = frames.shape[:2]
        feats = flatten_features(self.encoder(frames.reshape(b * t, *frames.shape[2:])))
        feats = feats.reshape(b, t, -1)
        if self.out_dim is not None:
            feats = nn.relu(nn.Dense(self.out_dim, name="out")(feats))
        return feats


class VideoClassifier(nn.Module):
    """Frames -> per-frame features -> recurrent layers -> class logits.

    ``__call__(frames [B, T, H, W(, Ch)], lengths [B] | None, *, train=False) -> logits [B, C]``.

    Attributes:
      encoder: the per-frame image encoder (``[N, H, W] -> [N, S, F]``).
      num_classes: C.
      frame_features: the per-frame Dense size (None: the flattened encoder features).
      cell, hidden_size, num_layers, cell_options, bidirectional, head, dropout, rnn_options: as in
        :class:`rnnlab.SequenceModel` (``head`` 'last' or 'mean').
    """

    encoder: nn.Module
    num_classes: int
    frame_features: int | None = 64
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    cell_options: Any = ()
    bidirectional: bool = False
    head: str = "last"
    dropout: float = 0.0
    rnn_options: Any = ()

    @nn.compact
    def __call__(self, frames: Array, lengths: Array | None = None, *, train: bool = False) -> Array:
        feats = FrameEncoder(self.encoder, self.frame_features, name="frames")(frames)
        model = SequenceModel(
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            cell_options=self.cell_options,
            bidirectional=self.bidirectional,
            head=self.head,
            num_outputs=self.num_classes,
            dropout=self.dropout,
            rnn_options=self.rnn_options,
            name="sequence",
        )
        return model(feats, lengths, train=train)


__all__ = ["ENCODERS", "ConvEncoder", "FrameEncoder", "MLPEncoder", "VideoClassifier", "flatten_features"]
