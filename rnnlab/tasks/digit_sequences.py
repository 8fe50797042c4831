"""Sequences made of digit images (pure NumPy): strips to caption, strips to transcribe, moving digits.

Shape legend: N digit images of h x w pixels, M examples, K = ``max_digits``, T frames, H x W canvas.

From digit images ``[N, h, w]`` with labels ``[N]`` (e.g. MNIST):

* :func:`make_strips`: 1-K digits side by side (optionally with blank gaps) -> an image ``[h, width]`` and
  its caption in number words, ``"seven two nine"`` (image captioning: one image -> words).
* :func:`strip_frames`: the same strips read column by column, frames ``[width, h]``, with the digit labels
  as an *unsegmented* target (CTC transcription: nothing says which columns belong to which digit).
* :func:`moving_digit_clips`: one digit moving in a straight line across a canvas, T frames ``[H, W]``;
  the class is the (direction, speed) pair (video classification). :func:`shuffle_frames` is the control
  that keeps every frame and destroys the order: the positions still reveal the axis and the speed of the
  motion but not its sense, which caps accuracy at 1/2 (measured: 0.46-0.52 on 4 directions, 1.0 in order),
  so accuracy above 1/2 must come from the order of the frames.

:func:`split_digits` cuts the digit images per class into disjoint pools; building every test strip or clip
from the test pool only means test examples use digit images never seen in training. Everything is seeded
(:func:`rnnlab.tasks.base.philox`) and identical on every machine.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnlab.tasks.base import philox

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: (row, column) steps of the 8 compass directions, counter-clockwise from east; 4 directions use every other
DIRECTIONS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
PAD = -1  # the padding value of digit and source arrays


def _as_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; float images -> float32 unchanged."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"digit images must be [N, h, w], got shape {images.shape}")
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)  # no copy: callers that draw many times pass float32


def split_digits(labels, fractions: dict[str, float] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint pools of digit-image indices, cut per class (each pool has every class in proportion).

    Args:
      labels: ``[N]`` digit labels; fractions: ``{split: fraction}`` (default 0.8 / 0.1 / 0.1 train /
        validation / test; the last split takes the rest); seed: the shuffle of each class.

    Returns:
      ``{split: sorted indices}``.
    """
    labels = np.asarray(labels)
    fractions = fractions or {"train": 0.8, "validation": 0.1, "test": 0.1}
    names = list(fractions)
    pools: dict[str, list] = {name: [] for name in names}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[philox(seed, int(c)).permutation(len(members))]
        start = 0
        for i, name in enumerate(names):
            stop = len(members) if i == len(names) - 1 else start + round(fractions[name] * len(members))
            pools[name].append(members[start:stop])
            start = stop
    return {name: np.sort(np.concatenate(parts)) for name, parts in pools.items()}


def caption(digits) -> str:
    """``[7, 2, 9]`` -> ``'seven two nine'``."""
    return " ".join(NUMBER_WORDS[int(d)] for d in digits)


@dataclasses.dataclass(frozen=True)
class Strips:
    """M strips of digits, left-aligned and zero-padded to the widest.

    Attributes:
      images: float32 ``[M, h, W]``; widths: int32 ``[M]`` (columns used by each strip);
      digits: int32 ``[M, K]`` labels left to right (``PAD`` after ``num_digits``); num_digits: int32 ``[M]``;
      sources: int ``[M, K]`` index of each digit's image in the input array (``PAD`` after ``num_digits``).
    """

    images: np.ndarray
    widths: np.ndarray
    digits: np.ndarray
    num_digits: np.ndarray
    sources: np.ndarray

    @property
    def captions(self) -> list[str]:
        return [caption(d[:n]) for d, n in zip(self.digits, self.num_digits, strict=True)]


def make_strips(
    images,
    labels,
    pool,
    num_strips: int,
    *,
    min_digits: int = 1,
    max_digits: int = 4,
    max_gap: int = 0,
    seed: int = 0,
) -> Strips:
    """Strips of ``min_digits``-``max_digits`` digit images drawn (with replacement) from ``pool``.

    Args:
      images: ``[N, h, w]`` (uint8 or float); labels: ``[N]``; pool: the indices to draw from (one split
        of :func:`split_digits`).
      num_strips: M; min_digits, max_digits: the number of digits, uniform in this range.
      max_gap: blank columns between neighbouring digits, uniform in ``[0, max_gap]``.
      seed: strips differ between seeds and are identical for the same seed.
    """
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    pix, labels, pool = _as_float(images), np.asarray(labels), np.asarray(pool)
    if pool.size == 0:
        raise ValueError("the pool of digit images is empty")
    _, h, w = pix.shape
    rng = philox(seed, 0x57)
    counts = rng.integers(min_digits, max_digits + 1, size=num_strips)
    sources = np.full((num_strips, max_digits), PAD, np.int64)
    gaps = np.zeros((num_strips, max_digits), np.int64)
    for i, n in enumerate(counts):
        sources[i, :n] = rng.choice(pool, size=n)
        gaps[i, 1:n] = rng.integers(0, max_gap + 1, size=n - 1)
    widths = counts * w + gaps.sum(1)
    strips = np.zeros((num_strips, h, max_digits * w + (max_digits - 1) * max_gap), np.float32)
    for i, n in enumerate(counts):
        col = 0
        for k in range(n):
            col += gaps[i, k]
            strips[i, :, col : col + w] = pix[sources[i, k]]
            col += w
    digits = np.where(sources >= 0, labels[np.maximum(sources, 0)], PAD).astype(np.int32)
    return Strips(strips, widths.astype(np.int32), digits, counts.astype(np.int32), sources)


def strip_frames(strips: Strips) -> tuple[np.ndarray, np.ndarray]:
    """The strips as frame sequences for CTC: ``(frames [M, W, h] float32, lengths [M] int32)``; frame t
    is column t of the strip. The targets are ``strips.digits`` (``strips.num_digits`` of them each)."""
    return np.ascontiguousarray(np.swapaxes(strips.images, 1, 2)), strips.widths.copy()


def motion_classes(directions: int = 8, speeds=(1, 2)) -> list[tuple[int, int]]:
    """The (row, column) velocity of each class: class ``d * len(speeds) + s`` moves in direction d (of
    ``DIRECTIONS``: every other one when ``directions == 4``, east and west when it is 2) by ``speeds[s]``
    pixels per frame. With 2 directions every class differs from another only in the sense of the motion, so
    the shuffled-frame control stays at chance (1 / 2 for one speed)."""
    if directions not in (2, 4, 8):
        raise ValueError(f"directions must be 2, 4 or 8, got {directions}")
    dirs = DIRECTIONS[:: 8 // directions]
    return [(dr * s, dc * s) for dr, dc in dirs for s in speeds]


@dataclasses.dataclass(frozen=True)
class Clips:
    """M clips of one moving digit, zero-padded to the longest.

    Attributes:
      frames: float32 ``[M, T, H, W]``; lengths: int32 ``[M]``; labels: int32 ``[M]`` (motion classes);
      positions: int32 ``[M, T, 2]`` the digit's top-left (row, column) in every valid frame (0 after);
      sources: int ``[M]`` the digit image's index in the input array.
    """

    frames: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    sources: np.ndarray


def moving_digit_clips(
    images,
    pool,
    num_clips: int,
    *,
    canvas: tuple[int, int] = (64, 64),
    num_frames: tuple[int, int] = (10, 18),
    directions: int = 8,
    speeds=(1, 2),
    seed: int = 0,
) -> Clips:
    """Clips of one digit (from ``pool``) moving at a constant velocity without leaving the canvas.

    The class is uniform over :func:`motion_classes`; the number of frames uniform in ``num_frames``
    (inclusive); the start uniform over the positions from which the whole path stays on the canvas.

    Raises:
      ValueError: the canvas cannot hold the longest, fastest path.
    """
    pix, pool = _as_float(images), np.asarray(pool)
    _, h, w = pix.shape
    big_h, big_w = canvas
    t_min, t_max = num_frames
    velocities = motion_classes(directions, speeds)
    reach = max(abs(v) for vel in velocities for v in vel) * (t_max - 1)
    if h + reach > big_h or w + reach > big_w:
        raise ValueError(
            f"a {h}x{w} digit moving {reach} pixels does not fit a {big_h}x{big_w} canvas; "
            "enlarge the canvas or use fewer frames / lower speeds"
        )
    rng = philox(seed, 0xC11)
    labels = rng.integers(0, len(velocities), size=num_clips)
    lengths = rng.integers(t_min, t_max + 1, size=num_clips)
    sources = rng.choice(pool, size=num_clips)
    frames = np.zeros((num_clips, t_max, big_h, big_w), np.float32)
    positions = np.zeros((num_clips, t_max, 2), np.int32)
    for i in range(num_clips):
        vel = np.array(velocities[labels[i]])
        travel = vel * (lengths[i] - 1)
        low = np.maximum(0, -travel)
        high = np.array([big_h - h, big_w - w]) - np.maximum(0, travel)
        start = rng.integers(low, high + 1)
        for t in range(lengths[i]):
            r, c = start + t * vel
            positions[i, t] = (r, c)
            frames[i, t, r : r + h, c : c + w] = pix[sources[i]]
    return Clips(frames, lengths.astype(np.int32), labels.astype(np.int32), positions, sources)


def shuffle_frames(clips: Clips, seed: int = 0) -> Clips:
    """The control: each clip's valid frames (and their positions) in a random order; labels unchanged."""
    rng = philox(seed, 0x5F)
    frames, positions = clips.frames.copy(), clips.positions.copy()
    for i, n in enumerate(clips.lengths):
        order = rng.permutation(n)
        frames[i, :n] = clips.frames[i, order]
        positions[i, :n] = clips.positions[i, order]
    return dataclasses.replace(clips, frames=frames, positions=positions)


__all__ = [
    "DIRECTIONS",
    "NUMBER_WORDS",
    "PAD",
    "Clips",
    "Strips",
    "caption",
    "make_strips",
    "motion_classes",
    "moving_digit_clips",
    "shuffle_frames",
    "split_digits",
    "strip_frames",
]
