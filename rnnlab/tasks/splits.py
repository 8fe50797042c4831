"""Fixed, seeded splits of a dataset, identical on every machine: the cuts a source does not define itself.

`seeded_split` cuts examples into named parts when a dataset is prepared; `carve_validation` takes a
validation split out of 'train' when a prepared dataset has only train / test, and `Subset` reads such a
part of a random-access source without copying it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnlab.tasks.base import philox

SPLIT_SEED = 20240101
TRAIN_VAL_TEST = {"train": 0.8, "validation": 0.1, "test": 0.1}
VALIDATION_FRACTION = 0.1  # of 'train', when a dataset defines no validation split


def seeded_split(n: int, fractions: dict[str, float], seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Cuts a fixed random permutation of range(n) into consecutive parts of the given fractions (the last
    part takes the rest); each part's indices are sorted."""
    order = philox(seed, n).permutation(n)
    out, start = {}, 0
    names = list(fractions)
    for i, name in enumerate(names):
        stop = n if i == len(names) - 1 else start + round(fractions[name] * n)
        out[name] = np.sort(order[start:stop])
        start = stop
    return out


def carve_validation(
    n_train: int, fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED
) -> dict[str, np.ndarray]:
    """{'train': kept indices, 'validation': carved indices} of a train split of `n_train` examples.

    A pure function of `n_train` (and the fixed seed): the same examples are held out on every call and
    machine. At least one example stays on each side when `n_train >= 2`.
    """
    n_val = min(max(round(fraction * n_train), 1), n_train - 1) if n_train >= 2 else 0
    held = seeded_split(n_train, {"validation": n_val / max(n_train, 1), "train": 1.0}, seed)
    return {"train": held["train"], "validation": held["validation"]}


class Subset:
    """The examples `indices` of a random-access `source`, itself random-access (`len`, `[i]`,
    `__getitems__`), in the order of `indices`."""

    def __init__(self, source, indices: Sequence[int]):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.source[int(self.indices[i])]

    def __getitems__(self, indices: Sequence[int]) -> list:
        wanted = [int(self.indices[i]) for i in indices]
        if hasattr(self.source, "__getitems__"):  # one batched read (array_record)
            return list(self.source.__getitems__(wanted))
        return [self.source[i] for i in wanted]
