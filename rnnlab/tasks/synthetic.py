"""Synthetic long-range tasks, generated on the fly (vectorised NumPy) or read back from prepared data.

Each task has a generator `gen(rng, B, **params) -> batch` and a trivial baseline with its formula:

| task | kind | inputs | baseline |
|---|---|---|---|
| adding | regression | float `[B, T, 2]` | MSE 1/6 (always predict 1 = E[target]) |
| copy | tagging | int `[B, T+20]`, V=10 | loss 10·ln 8 / (T+20) (blank, then uniform over 8 symbols) |
| temporal_order | classification | int `[B, T]`, V=9 | accuracy 1/4 (chance) |
| delayed_recall | classification | int `[B, lag+1]` | accuracy 1/num_symbols (chance) |

'train' is endless: batch i comes from `philox(seed, i)`. 'validation' and 'test' are fixed sets of `num_eval`
examples each, from two seeds that do not depend on the train seed, so every run is selected and evaluated on
the same data (`fixed_set`). With `source='prepared'` all three splits are read from the dataset written by
`builders/synthetic.py` instead (prepared on first use).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from rnnlab.tasks.base import Task, TaskInfo, check_choice, philox
from rnnlab.tasks.batching import ArraySource, GeneratedBatches, Loader
from rnnlab.tasks.store import open_dataset, open_split

EVAL_SEED = 0x7E57  # the test sets' seed: fixed, unrelated to any training seed
VALIDATION_SEED = 0x7A11D  # the validation sets' seed
# Validation chunks are keyed by three words (seed, chunk, tag): no train batch, keyed (seed, i), equals one.
_VALIDATION_TAG = 0x5E1EC7
FIXED_CHUNK = 1000  # fixed sets are generated in chunks of this many examples


def fixed_set(generate, split: str, n: int) -> dict[str, np.ndarray]:
    """The fixed `split` ('validation' or 'test') set of `n` examples: `generate(rng, B)` called on chunks of
    `FIXED_CHUNK`, so the examples do not depend on how the set is batched later."""
    check_choice("fixed split", split, ("validation", "test"))

    def rng(c):
        return philox(EVAL_SEED, c) if split == "test" else philox(VALIDATION_SEED, c, _VALIDATION_TAG)

    chunks = [
        generate(rng(c), min(FIXED_CHUNK, n - c * FIXED_CHUNK)) for c in range(math.ceil(n / FIXED_CHUNK))
    ]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _batch_positions(rng: np.random.Generator, B: int, low: int, high: int) -> np.ndarray:
    """`[B]` uniform integers in [low, high)."""
    return rng.integers(low, high, size=B)


# ------------------------------------------------------------------------------------------------ generators
def adding(rng: np.random.Generator, B: int, length: int = 100) -> dict[str, np.ndarray]:
    """Adding problem (Arjovsky et al. 2016): values U[0,1] and one marker in each half; target = sum of the
    two marked values. inputs `[B, T, 2]` float32, targets `[B]` float32. Baseline MSE Var(U1+U2) = 1/6."""
    T = length
    if T < 2:
        raise ValueError(f"adding needs length >= 2 (one marker in each half), got {T}")
    values = rng.random((B, T), dtype=np.float32)
    half = T // 2
    i1 = _batch_positions(rng, B, 0, half)
    i2 = _batch_positions(rng, B, half, T)
    rows = np.arange(B)
    markers = np.zeros((B, T), np.float32)
    markers[rows, i1] = 1.0
    markers[rows, i2] = 1.0
    return {
        "inputs": np.stack([values, markers], axis=-1),
        "lengths": np.full(B, T, np.int32),
        "targets": values[rows, i1] + values[rows, i2],
    }


COPY_SYMBOLS, COPY_DELIM, COPY_LEN = 8, 9, 10


def copy(rng: np.random.Generator, B: int, length: int = 100) -> dict[str, np.ndarray]:
    """Copy memory (Arjovsky et al. 2016). 10 symbols from {1..8}, then blanks (0) with the delimiter (9) at
    step 10+T-1, then 10 blanks during which the symbols must be output. inputs/targets int32 `[B, T+20]`;
    targets are blank except the last 10 steps. All steps count. Baseline loss 10·ln 8 / (T+20)."""
    T = length
    if T < 1:
        raise ValueError(f"copy needs length >= 1 (the blanks before the delimiter), got {T}")
    total = T + 2 * COPY_LEN
    symbols = rng.integers(1, COPY_SYMBOLS + 1, size=(B, COPY_LEN), dtype=np.int32)
    inputs = np.zeros((B, total), np.int32)
    inputs[:, :COPY_LEN] = symbols
    inputs[:, COPY_LEN + T - 1] = COPY_DELIM
    targets = np.zeros((B, total), np.int32)
    targets[:, -COPY_LEN:] = symbols
    return {
        "inputs": inputs,
        "lengths": np.full(B, total, np.int32),
        "targets": targets,
        "target_mask": np.ones((B, total), np.float32),
    }


# temporal order vocabulary: 0 pad (unused), 1..4 distractors a-d, 5 X, 6 Y, 7 start E, 8 end B
TO_X, TO_Y, TO_START, TO_END, TO_VOCAB = 5, 6, 7, 8, 9


def temporal_order(rng: np.random.Generator, B: int, length: int = 100) -> dict[str, np.ndarray]:
    """Temporal order (Hochreiter & Schmidhuber 1997, exp. 6a; Pascanu et al. 2013). Distractors a-d between a
    start and an end symbol; X or Y at t1 in [0.1T, 0.2T) and at t2 in [0.5T, 0.6T). Class = order of the two
    relevant symbols: 0 XX, 1 XY, 2 YX, 3 YY. inputs int32 `[B, T]`. Baseline accuracy 1/4."""
    T = length
    if T < 20:
        raise ValueError(f"temporal_order needs length >= 20, got {T}")
    inputs = rng.integers(1, 5, size=(B, T), dtype=np.int32)
    inputs[:, 0], inputs[:, -1] = TO_START, TO_END
    t1 = _batch_positions(rng, B, T // 10, max(T // 5, T // 10 + 1))
    t2 = _batch_positions(rng, B, T // 2, max(6 * T // 10, T // 2 + 1))
    s1, s2 = rng.integers(0, 2, size=B), rng.integers(0, 2, size=B)
    rows = np.arange(B)
    inputs[rows, t1] = TO_X + s1
    inputs[rows, t2] = TO_X + s2
    return {"inputs": inputs, "lengths": np.full(B, T, np.int32), "targets": (2 * s1 + s2).astype(np.int32)}


def delayed_recall(
    rng: np.random.Generator, B: int, lag: int = 50, num_symbols: int = 8
) -> dict[str, np.ndarray]:
    """Delayed recall: symbol s in {1..S} at step 0, blanks (0), a query (S+1) at step `lag`; report s.
    inputs int32 `[B, lag+1]`, vocab S+2; targets int32 `[B]` = s-1. Baseline accuracy 1/S. The gradient of
    the loss reaches step 0 only through `lag` recurrent steps: a clean probe of vanishing gradients."""
    if lag < 1:
        raise ValueError(f"lag must be >= 1, got {lag}")
    if num_symbols < 1:
        raise ValueError(f"num_symbols must be >= 1, got {num_symbols}")
    s = rng.integers(1, num_symbols + 1, size=B, dtype=np.int32)
    inputs = np.zeros((B, lag + 1), np.int32)
    inputs[:, 0] = s
    inputs[:, lag] = num_symbols + 1
    return {"inputs": inputs, "lengths": np.full(B, lag + 1, np.int32), "targets": s - 1}


def _adding_info(length):
    return TaskInfo(
        "adding",
        "regression",
        input_size=2,
        vocab_size=None,
        num_outputs=1,
        baseline=1 / 6,
        baseline_metric="mse",
    )


def _copy_info(length):
    return TaskInfo(
        "copy",
        "tagging",
        input_size=None,
        vocab_size=10,
        num_outputs=10,
        baseline=COPY_LEN * math.log(COPY_SYMBOLS) / (length + 2 * COPY_LEN),
        baseline_metric="loss",
    )


def _temporal_order_info(length):
    return TaskInfo(
        "temporal_order",
        "classification",
        input_size=None,
        vocab_size=TO_VOCAB,
        num_outputs=4,
        baseline=0.25,
        baseline_metric="accuracy",
    )


def _delayed_recall_info(lag, num_symbols):
    return TaskInfo(
        "delayed_recall",
        "classification",
        input_size=None,
        vocab_size=num_symbols + 2,
        num_outputs=num_symbols,
        baseline=1 / num_symbols,
        baseline_metric="accuracy",
    )


@dataclasses.dataclass(frozen=True)
class _Spec:
    generate: object
    info: object
    default_lengths: tuple[int, ...]  # lengths prepared as dataset configs
    length_param: str = "length"
    description: str = ""

    def config_name(self, value: int) -> str:
        """The prepared dataset's config for a length (or lag), e.g. 'length_100'."""
        return f"{self.length_param}_{value}"


SPECS = {
    "adding": _Spec(
        adding,
        _adding_info,
        (100, 200, 500, 1000),
        description="adding problem: sum of two marked values among T (regression, MSE baseline 1/6)",
    ),
    "copy": _Spec(
        copy,
        _copy_info,
        (100, 200, 500, 1000),
        description="copy memory: recall 10 symbols after T blanks (tagging, baseline 10 ln8/(T+20))",
    ),
    "temporal_order": _Spec(
        temporal_order,
        _temporal_order_info,
        (100, 200, 500, 1000),
        description="temporal order of two symbols among distractors (4 classes, chance 1/4)",
    ),
    "delayed_recall": _Spec(
        delayed_recall,
        _delayed_recall_info,
        (10, 50, 100, 200, 500),
        "lag",
        description="report the symbol seen `lag` steps earlier (classification, chance 1/S)",
    ),
}


# ------------------------------------------------------------------------------------------------ tasks
SOURCES = ("generated", "prepared")
# earlier spellings of `source`, still found in saved run configs
_SOURCE_ALIASES = {"stream": "generated", "tfds": "prepared"}


class SyntheticTask(Task):
    """A synthetic task: 'train' generates fresh batches, 'validation' and 'test' iterate fixed seeded sets.

    With `source='prepared'` the three splits are read from the prepared dataset `dataset` (a
    `store.DatasetSpec`), which is prepared on first use when `download` is set.
    """

    def __init__(
        self,
        name: str,
        params: dict,
        *,
        num_eval: int = 1000,
        source: str = "generated",
        data_dir=None,
        download: bool = True,
        dataset=None,
    ):
        source = _SOURCE_ALIASES.get(source, source)
        check_choice("source", source, SOURCES, context=name)
        for key, value in {**params, "num_eval": num_eval}.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"task {name!r}: {key} must be an integer, got {value!r}")
        if num_eval < 1:
            raise ValueError(
                f"task {name!r}: num_eval must be >= 1 (examples per eval split), got {num_eval}"
            )
        SPECS[name].generate(philox(0), 1, **params)  # the generator's own checks, on one example
        self.spec = SPECS[name]
        self.name, self.params, self.num_eval, self.source = name, params, int(num_eval), source
        self.data_dir, self.download, self.dataset = data_dir, download, dataset
        self.info = self.spec.info(**params)
        self._generate = functools.partial(self.spec.generate, **params)
        self._fixed = {}

    def generate(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        return self._generate(rng, batch_size)

    def eval_arrays(self, split: str = "test") -> dict[str, np.ndarray]:
        """The fixed `split` set ('validation' or 'test') of `num_eval` examples."""
        if split not in self._fixed:
            self._fixed[split] = fixed_set(self._generate, split, self.num_eval)
        return self._fixed[split]

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True):
        """'train': endless generated batches (num_epochs / shuffle do not apply); 'validation', 'test': the
        fixed sets."""
        self.check_split(split)
        if self.source == "prepared":
            return self._prepared_iterator(split, batch_size, seed, num_epochs=num_epochs, shuffle=shuffle)
        if split == "train":
            return GeneratedBatches(self.generate, batch_size, seed)
        src = ArraySource(self.eval_arrays(split))
        return Loader(src, batch_size, seed, gather_fn=src.gather, num_epochs=num_epochs, shuffle=shuffle)

    def _prepared_iterator(self, split, batch_size, seed, *, num_epochs, shuffle):
        length = self.params[self.spec.length_param]
        extra = {k: v for k, v in self.params.items() if k != self.spec.length_param}
        if extra and extra != {"num_symbols": 8}:
            raise ValueError(f"prepared {self.name} data exists only for the default parameters, not {extra}")
        config = self.spec.config_name(length)
        builder = open_dataset(self.dataset, config, self.data_dir, download=self.download)
        src = _DecodedArrays(open_split(self.dataset, builder, split), self.info.kind)
        return Loader(
            src,
            batch_size,
            seed,
            gather_fn=src.gather,
            num_epochs=num_epochs,
            shuffle=shuffle,
            drop_remainder=split == "train" and num_epochs is None,
        )


class _DecodedArrays:
    """A prepared synthetic split read fully into memory (fixed shapes, so batches are plain gathers)."""

    def __init__(self, source, kind):
        examples = [source[i] for i in range(len(source))]
        self.arrays = {k: np.stack([np.asarray(e[k]) for e in examples]) for k in examples[0]}
        T = self.arrays["inputs"].shape[1]
        self.arrays["lengths"] = np.full(len(examples), T, np.int32)
        if kind == "tagging":
            self.arrays["target_mask"] = np.ones(self.arrays["targets"].shape, np.float32)

    def __len__(self):
        return len(self.arrays["inputs"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.arrays.items()}

    def gather(self, idx):
        return {k: v[idx] for k, v in self.arrays.items()}
