"""Digit sequences on synthetic "digits" (random blobs): captions match the pasted images, test strips use
held-out images only, everything is seeded, and the motion label is the motion of the digit."""

import numpy as np
import pytest

from rnnlab.tasks import digit_sequences as ds

N, h, w = 100, 5, 4


def fake_digits(seed=0):
    """N distinct random blobs, label = index mod 10 (uint8, like MNIST)."""
    rng = np.random.default_rng(seed)
    images = (rng.random((N, h, w)) < 0.5).astype(np.uint8) * 255
    images[:, 0, 0] = 255  # never an empty image: every digit is visible
    return images, np.arange(N) % 10


def test_split_is_disjoint_stratified_and_seeded():
    _, labels = fake_digits()
    pools = ds.split_digits(labels, seed=3)
    assert sorted(np.concatenate(list(pools.values())).tolist()) == list(range(N))
    for name, pool in pools.items():
        assert set(labels[pool]) == set(range(10)), name  # 10 per class: 8 / 1 / 1
    assert all(np.array_equal(pools[k], ds.split_digits(labels, seed=3)[k]) for k in pools)
    assert not np.array_equal(pools["train"], ds.split_digits(labels, seed=4)["train"])


def test_strips_captions_and_pixels_match_their_digits():
    images, labels = fake_digits()
    pools = ds.split_digits(labels, {"train": 0.5, "test": 0.5})
    strips = ds.make_strips(images, labels, pools["test"], 40, max_digits=4, max_gap=2, seed=1)
    assert set(strips.num_digits.tolist()) == {1, 2, 3, 4}
    used = strips.sources[strips.sources != ds.PAD]
    assert set(used.tolist()) <= set(pools["test"].tolist())  # held-out images only
    for i in range(40):
        n = strips.num_digits[i]
        words = strips.captions[i].split()
        assert words == [ds.NUMBER_WORDS[labels[s]] for s in strips.sources[i, :n]]
        assert np.all(strips.digits[i, n:] == ds.PAD)
        # The pasted columns, gaps removed, are exactly the source images side by side.
        strip = strips.images[i, :, : strips.widths[i]]
        assert np.all(strips.images[i, :, strips.widths[i] :] == 0)
        cols = [c for c in range(strip.shape[1]) if strip[:, c].any()]
        want = np.concatenate([images[s] / 255.0 for s in strips.sources[i, :n]], axis=1)
        np.testing.assert_array_equal(strip[:, cols], want[:, want.any(0)])
    frames, lengths = ds.strip_frames(strips)
    assert frames.shape == (40, strips.images.shape[2], h)
    np.testing.assert_array_equal(frames[3, :, 2], strips.images[3, 2, :])  # frame t = column t
    np.testing.assert_array_equal(lengths, strips.widths)


def test_strips_and_clips_are_deterministic():
    images, labels = fake_digits()
    pool = np.arange(N)
    a, b = (ds.make_strips(images, labels, pool, 10, seed=5) for _ in range(2))
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert not np.array_equal(a.sources, ds.make_strips(images, labels, pool, 10, seed=6).sources)
    kw = {"canvas": (16, 16), "num_frames": (4, 6), "seed": 2}
    c, d = (ds.moving_digit_clips(images, pool, 8, **kw) for _ in range(2))
    assert np.array_equal(c.frames, d.frames) and np.array_equal(c.labels, d.labels)


@pytest.mark.parametrize("directions", [4, 8])
def test_motion_label_is_the_displacement_per_frame(directions):
    images, _ = fake_digits()
    speeds = (1, 2)
    clips = ds.moving_digit_clips(
        images, np.arange(N), 96, canvas=(18, 18), num_frames=(3, 6), directions=directions, speeds=speeds
    )
    velocities = ds.motion_classes(directions, speeds)
    assert len(velocities) == 2 * directions and len(set(velocities)) == len(velocities)
    assert set(clips.labels.tolist()) == set(range(len(velocities)))
    for i in range(96):
        n = clips.lengths[i]
        steps = np.diff(clips.positions[i, :n], axis=0)
        assert np.all(steps == velocities[clips.labels[i]])
        digit = images[clips.sources[i]] / 255.0
        for t in range(n):
            r, c = clips.positions[i, t]
            frame = clips.frames[i, t].copy()
            np.testing.assert_array_equal(frame[r : r + h, c : c + w], digit)  # on the canvas, at its place
            frame[r : r + h, c : c + w] = 0
            assert not frame.any()
        assert not clips.frames[i, n:].any()


def frame_set(frames):
    return sorted(f.tobytes() for f in frames)


def test_shuffled_control_keeps_frames_and_labels_but_not_the_order():
    images, _ = fake_digits()
    clips = ds.moving_digit_clips(images, np.arange(N), 16, canvas=(16, 16), num_frames=(5, 6), seed=1)
    control = ds.shuffle_frames(clips, seed=0)
    np.testing.assert_array_equal(control.labels, clips.labels)
    reordered = 0
    for i, n in enumerate(clips.lengths):
        assert frame_set(control.frames[i, :n]) == frame_set(clips.frames[i, :n])
        reordered += not np.array_equal(control.positions[i, :n], clips.positions[i, :n])
    assert reordered >= 14


def test_canvas_too_small_is_an_error():
    images, _ = fake_digits()
    with pytest.raises(ValueError, match="does not fit"):
        ds.moving_digit_clips(images, np.arange(N), 1, canvas=(8, 8), num_frames=(10, 10), speeds=(1,))
