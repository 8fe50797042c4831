"""Learnable stand-ins for digit images in tests: noisy copies of random binary prototypes."""

import numpy as np


def prototype_digits(num_classes, n, shape, seed=0, flip=0.1):
    """``n`` images ``[n, *shape]`` (uint8, 0 or 255), label ``i % num_classes``: the prototype of the label
    with each pixel flipped with probability ``flip``."""
    rng = np.random.default_rng(seed)
    protos = rng.random((num_classes, *shape)) < 0.5
    labels = np.arange(n) % num_classes
    images = protos[labels] ^ (rng.random((n, *shape)) < flip)
    return images.astype(np.uint8) * 255, labels
