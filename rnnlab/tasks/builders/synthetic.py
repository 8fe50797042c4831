"""The synthetic tasks prepared as TFDS datasets: `rnnlab_<task>`, one config per length (or lag).

'train' holds `num_train` examples of the seed-0 training stream; 'validation' and 'test' are the tasks' fixed
sets (`synthetic.fixed_set`), so prepared and generated runs are selected and evaluated on the same data.
"""

from __future__ import annotations

import math

import tensorflow_datasets as tfds

from rnnlab.tasks.base import philox
from rnnlab.tasks.synthetic import FIXED_CHUNK, SPECS, fixed_set

VERSION = "1.1.0"


class SyntheticConfig(tfds.core.BuilderConfig):
    """One prepared length of a synthetic task."""

    def __init__(
        self,
        *,
        length: int,
        num_train: int = 10_000,
        num_validation: int = 1000,
        num_test: int = 1000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.length, self.num_train = length, num_train
        self.num_validation, self.num_test = num_validation, num_test


class _SyntheticBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes `num_train` examples of the training stream (seed 0) and the fixed validation / test sets."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {"1.1.0": "a 'validation' split (the fixed validation set)", "1.0.0": "train and test"}  # noqa: RUF012
    TASK = ""

    def _generate(self, rng, batch_size):
        spec = SPECS[self.TASK]
        return spec.generate(rng, batch_size, **{spec.length_param: self.builder_config.length})

    def _info(self):
        spec = SPECS[self.TASK]
        probe = self._generate(philox(0), 1)
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
            citation="@inproceedings{arjovsky2016unitary, title={Unitary Evolution Recurrent Neural "
            "Networks}, author={Arjovsky, Martin and Shah, Amar and Bengio, Yoshua}, booktitle={ICML}, "
            "year={2016}}",
        )

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        return {
            "train": self._train_examples(cfg.num_train),
            "validation": self._generate_examples(
                fixed_set(self._generate, "validation", cfg.num_validation)
            ),
            "test": self._generate_examples(fixed_set(self._generate, "test", cfg.num_test)),
        }

    def _train_examples(self, n):
        # chunk c is batch c of the seed-0 stream with batch size FIXED_CHUNK
        for c in range(math.ceil(n / FIXED_CHUNK)):
            yield from self._generate_examples(
                self._generate(philox(0, c), min(FIXED_CHUNK, n - FIXED_CHUNK * c)), c
            )

    def _generate_examples(self, batch, chunk=0):
        for i in range(len(batch["targets"])):
            yield FIXED_CHUNK * chunk + i, {"inputs": batch["inputs"][i], "targets": batch["targets"][i]}


def _builder_class(task: str) -> type:
    spec = SPECS[task]
    configs = [
        SyntheticConfig(
            name=spec.config_name(n), length=n, description=f"{task} with {spec.length_param}={n}"
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
