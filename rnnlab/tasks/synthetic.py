"""Synthetic long-range tasks, generated on the fly (vectorised NumPy) or prepared as TFDS datasets.

Each task has a generator `gen(rng, B, **params) -> batch` and a trivial baseline with its formula:

| task | kind | inputs | baseline |
|---|---|---|---|
| adding | regression | float `[B, T, 2]` | MSE 1/6 (always predict 1 = E[target]) |
| copy | tagging | int `[B, T+20]`, V=10 | loss 10·ln 8 / (T+20) (blank, then uniform over 8 symbols) |
| temporal_order | classification | int `[B, T]`, V=9 | accuracy 1/4 (chance) |
| delayed_recall | classification | int `[B, lag+1]` | accuracy 1/num_symbols (chance) |

'train' is an endless stream: batch i comes from `philox(seed, i)`. 'test' is a fixed set of `num_eval` examples
from a seed that does not depend on the train seed, so every run is evaluated on the same data.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import tensorflow_datasets as tfds

from rnnlab.tasks.base import Task, TaskInfo, check_choice, philox, register_task
from rnnlab.tasks.pipeline import ArraySource, Loader, StreamIterator

EVAL_SEED = 0x7E57  # the test sets' seed: fixed, unrelated to any training seed


def _batch_positions(rng: np.random.Generator, B: int, low: int, high: int) -> np.ndarray:
    """`[B]` uniform integers in [low, high)."""
    return rng.integers(low, high, size=B)


# ------------------------------------------------------------------------------------------------ generators
def adding(rng: np.random.Generator, B: int, length: int = 100) -> dict[str, np.ndarray]:
    """Adding problem (Arjovsky et al. 2016): values U[0,1] and one marker in each half; target = sum of the two
    marked values. inputs `[B, T, 2]` float32, targets `[B]` float32. Baseline MSE Var(U1+U2) = 1/6."""
    T = length
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
    default_lengths: tuple[int, ...]  # TFDS builder configs
    length_param: str = "length"


SPECS = {
    "adding": _Spec(adding, _adding_info, (100, 200, 500, 1000)),
    "copy": _Spec(copy, _copy_info, (100, 200, 500, 1000)),
    "temporal_order": _Spec(temporal_order, _temporal_order_info, (100, 200, 500, 1000)),
    "delayed_recall": _Spec(delayed_recall, _delayed_recall_info, (10, 50, 100, 200, 500), "lag"),
}


# ------------------------------------------------------------------------------------------------ tasks
class SyntheticTask(Task):
    """A synthetic task: 'train' streams fresh batches, 'test' iterates a fixed seeded set.

    With `source='tfds'` both splits are read from the prepared TFDS dataset instead (see the builders below).
    """

    def __init__(
        self,
        name: str,
        params: dict,
        *,
        num_eval: int = 1000,
        source: str = "stream",
        data_dir=None,
        max_length: int | None = None,
    ):
        check_choice("source", source, ("stream", "tfds"), context=name)
        self.spec = SPECS[name]
        self.name, self.params, self.num_eval, self.source = name, params, int(num_eval), source
        self.data_dir = data_dir
        self.info = self.spec.info(**params)
        self._generate = functools.partial(self.spec.generate, **params)
        self._eval = None

    def generate(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        return self._generate(rng, batch_size)

    def eval_arrays(self) -> dict[str, np.ndarray]:
        """The fixed test set, generated in chunks of 1000 so it does not depend on how it is batched later."""
        if self._eval is None:
            chunks = [
                self._generate(philox(EVAL_SEED, c), min(1000, self.num_eval - c * 1000))
                for c in range(math.ceil(self.num_eval / 1000))
            ]
            self._eval = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        return self._eval

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True):
        """'train': endless generated stream (num_epochs / shuffle do not apply); 'test': the fixed set."""
        self.check_split(split)
        if self.source == "tfds":
            return self._tfds_iterator(split, batch_size, seed, num_epochs=num_epochs, shuffle=shuffle)
        if split == "train":
            return StreamIterator(self.generate, batch_size, seed)
        src = ArraySource(self.eval_arrays())
        return Loader(src, batch_size, seed, gather_fn=src.gather, num_epochs=num_epochs, shuffle=shuffle)

    def _tfds_iterator(self, split, batch_size, seed, *, num_epochs, shuffle):
        from rnnlab.tasks.datasets import open_split

        builder = BUILDERS[self.name]
        config = f"{self.spec.length_param}_{self.params[self.spec.length_param]}"
        extra = {k: v for k, v in self.params.items() if k != self.spec.length_param}
        if extra and extra != {"num_symbols": 8}:
            raise ValueError(f"prepared {self.name} data exists only for the default parameters, not {extra}")
        source = open_split(builder, config, split, self.data_dir)
        src = _DecodedArrays(source, self.info.kind)
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


def _register(name, description, **defaults):
    def factory(**params):
        own = {k: params.pop(k, v) for k, v in defaults.items()}
        return SyntheticTask(name, own, **params)

    # get_task checks parameter names against this signature
    import inspect

    params = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()]
    params += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
        for k, v in (("num_eval", 1000), ("source", "stream"), ("data_dir", None))
    ]
    factory.__signature__ = inspect.Signature(params)
    register_task(name, description)(factory)


_register(
    "adding", "adding problem: sum of two marked values among T (regression, MSE baseline 1/6)", length=100
)
_register(
    "copy", "copy memory: recall 10 symbols after T blanks (tagging, baseline 10 ln8/(T+20))", length=100
)
_register(
    "temporal_order", "temporal order of two symbols among distractors (4 classes, chance 1/4)", length=100
)
_register(
    "delayed_recall",
    "report the symbol seen `lag` steps earlier (classification, chance 1/S)",
    lag=50,
    num_symbols=8,
)


# ------------------------------------------------------------------------------------------------ TFDS
class SyntheticConfig(tfds.core.BuilderConfig):
    """One prepared length of a synthetic task."""

    def __init__(self, *, length: int, num_train: int = 10_000, num_test: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.length, self.num_train, self.num_test = length, num_train, num_test


class _SyntheticBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes `num_train` examples from the stream (seed 0) and the fixed `num_test` test set."""

    VERSION = tfds.core.Version("1.0.0")
    TASK = ""

    def _info(self):
        spec = SPECS[self.TASK]
        probe = spec.generate(philox(0), 1, **{spec.length_param: self.builder_config.length})
        features = {}
        for key in ("inputs", "targets"):
            x = probe[key][0]
            features[key] = (
                tfds.features.Tensor(shape=x.shape, dtype=x.dtype)
                if x.ndim
                else tfds.features.Scalar(dtype=x.dtype)
            )
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            homepage="https://arxiv.org/abs/1511.06464",
            description=(spec.generate.__doc__ or "").strip(),
            citation="@inproceedings{arjovsky2016unitary, title={Unitary Evolution Recurrent Neural Networks},"
            " author={Arjovsky, Martin and Shah, Amar and Bengio, Yoshua}, booktitle={ICML}, year={2016}}",
        )

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        return {
            "train": self._generate_examples(0, cfg.num_train),
            "test": self._generate_examples(EVAL_SEED, cfg.num_test),
        }

    def _generate_examples(self, seed, n):
        spec = SPECS[self.TASK]
        params = {spec.length_param: self.builder_config.length}
        for c in range(math.ceil(n / 1000)):
            b = spec.generate(philox(seed, c), min(1000, n - 1000 * c), **params)
            for i in range(len(b["targets"])):
                yield 1000 * c + i, {"inputs": b["inputs"][i], "targets": b["targets"][i]}


def _builder_class(task: str) -> type:
    spec = SPECS[task]
    configs = [
        SyntheticConfig(
            name=f"{spec.length_param}_{n}", length=n, description=f"{task} with {spec.length_param}={n}"
        )
        for n in spec.default_lengths
    ]
    cls_name = "Rnnlab" + "".join(p.title() for p in task.split("_"))
    return type(
        cls_name, (_SyntheticBuilder,), {"TASK": task, "BUILDER_CONFIGS": configs, "__module__": __name__}
    )


RnnlabAdding = _builder_class("adding")
RnnlabCopy = _builder_class("copy")
RnnlabTemporalOrder = _builder_class("temporal_order")
RnnlabDelayedRecall = _builder_class("delayed_recall")
BUILDERS = {
    "adding": RnnlabAdding,
    "copy": RnnlabCopy,
    "temporal_order": RnnlabTemporalOrder,
    "delayed_recall": RnnlabDelayedRecall,
}
