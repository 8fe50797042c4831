"""Trained runs, loaded for use: ONE ``load_run`` serves ``rnnlab eval``, ``predict``, ``complete`` and
``translate``.

    run = load_run('runs/sentiment')              # config.json + the latest checkpoint's parameters
    run = load_run('runs/sentiment', step='best') # the best checkpoint by train.best_metric
    run.apply(inputs, lengths)                    # seed 0's outputs
    run.forward(batch)                            # seed 0's outputs on a batch of any task kind
    evaluate_run('runs/adding')                   # the test-split metrics of every seed (``rnnlab eval``)
    evaluate_run('runs/adding', split='validation')  # 'eval/...': what model selection saw

Loading builds the model from ``config.json`` and restores only the parameters from the Orbax checkpoint,
against their abstract shapes (``jax.eval_shape`` of the model's init): no optimizer, no train step, nothing
compiled. Runs of every kind load alike (truncated-BPTT checkpoints also hold a carry, which is not read).

Shape legend: K seeds, B batch, T time, D input features, C outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.training import builders, checkpointing, losses, sharding
from rnnlab.training import config as config_lib
from rnnlab.training.evaluation import Evaluator, summary
from rnnlab.training.loop import CHECKPOINTS, CONFIG_FILE
from rnnlab.training.state import abstract_params


@dataclasses.dataclass
class LoadedRun:
    """The trained models of a run directory, one seed selected.

    Attributes:
      config: the run's resolved config.
      task: the task built from ``config.task`` (with its saved vocabulary).
      model: the Flax module built from ``config.model``.
      step: the checkpoint's step.
      seeds: the run's K seeds (``config.seed + k``).
      stacked_params: every seed's parameters, leaves ``[K, ...]``.
      seed_index: which seed ``params``, ``seed`` and ``apply`` use.
    """

    config: Any
    task: Any
    model: Any
    step: int
    seeds: tuple[int, ...]
    stacked_params: Any
    seed_index: int = 0

    @functools.cached_property
    def params(self) -> Any:
        """The selected seed's parameters (no seed axis)."""
        return jax.tree.map(lambda x: x[self.seed_index], self.stacked_params)

    @property
    def seed(self) -> int:
        return self.seeds[self.seed_index]

    def apply(self, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """``inputs [B, T(, D)]``, ``lengths [B]`` -> outputs ``[B, C]`` or ``[B, T, C]`` (NumPy)."""
        return np.asarray(
            _apply(self.model, self.params, jnp.asarray(inputs), jnp.asarray(lengths, jnp.int32))
        )

    @functools.cached_property
    def adapter(self):
        """How the training loop called the model (``rnnlab.training.builders.make_adapter``)."""
        return builders.make_adapter(self.config, self.task.info, self.model)

    def forward(self, batch) -> Any:
        """The model's outputs on a batch of the task (the keys its kind has, e.g. a tagger's per-token
        features), as in evaluation; NumPy leaves."""
        return jax.tree.map(np.asarray, _forward(self.adapter, self.params, batch))


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, inputs, lengths):
    return model.apply({"params": params}, inputs, lengths, train=False)


@functools.partial(jax.jit, static_argnums=0)
def _forward(adapter, params, batch):
    return adapter.forward(params, batch, train=False)[0]


def read_config(workdir: str):
    """The resolved and validated config of a run directory (keys added since the run take their defaults)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(
            f"run directory {workdir!r} not found: pass the --workdir of a `rnnlab train` run"
            if not os.path.exists(workdir)
            else f"{workdir!r} is a file, not a run directory: pass the --workdir of a `rnnlab train` run"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a run directory made by `rnnlab train`?")
    with open(path) as f:
        config = config_lib.resolve(json.load(f))
    config_lib.validate(config)
    return config


def load_run(
    workdir: str, step: int | str | None = None, seed_index: int = 0, *, task=None, model=None
) -> LoadedRun:
    """Loads ``workdir/config.json`` and the parameters of one checkpoint.

    Args:
      workdir: a run directory made by ``rnnlab train``.
      step: None (the latest checkpoint), ``'best'`` (the best by ``train.best_metric``) or a step number.
      seed_index: which of the run's seeds ``LoadedRun.params`` is (0 = ``config.seed``).
      task, model: use these instead of building them from the config (tests).

    Raises:
      FileNotFoundError: no config.json or no checkpoint in ``workdir``.
      ValueError: ``'best'`` without ``train.best_metric``, a step with no checkpoint, or ``seed_index``
        out of range.
      rnnlab.training.checkpointing.CheckpointError: the checkpoint cannot be read.
    """
    if not (step is None or step == "best" or (isinstance(step, int) and not isinstance(step, bool))):
        raise ValueError(f"step must be None, 'best' or a checkpoint step (an integer), got {step!r}")
    config = read_config(workdir)
    if not 0 <= seed_index < config.num_seeds:
        raise ValueError(f"seed_index={seed_index} but the run has {config.num_seeds} seed(s)")
    task = task if task is not None else builders.load_task(config)
    model = model if model is not None else builders.build_model(config.model, task.info)
    ckpt = checkpointing.Checkpointer(
        os.path.join(workdir, CHECKPOINTS),
        best_metric=config.train.best_metric,
        best_mode=config.train.best_mode,
    )
    try:
        if step == "best":
            step = ckpt.best_step()
            if step is None:
                raise ValueError(
                    f"{workdir} has no best checkpoint (train.best_metric is {config.train.best_metric!r}): "
                    "load the latest (no --best), or train with train.best_metric, e.g. 'eval/loss'"
                )
        elif step is not None and step not in ckpt.all_steps():
            raise ValueError(
                f"{workdir} has no checkpoint at step {step}; saved steps: {ckpt.all_steps() or 'none'}"
            )
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = abstract_params(model, task.info, config.num_seeds, device)
        params, step = ckpt.restore_params(abstract, step)
    finally:
        ckpt.close()
    seeds = tuple(config.seed + k for k in range(config.num_seeds))
    return LoadedRun(config, task, model, int(step), seeds, params, seed_index)


def evaluate_run(
    workdir: str,
    *,
    step: int | str | None = None,
    eval_batches: int | None = None,
    split: str = "test",
    task=None,
    model=None,
) -> dict[str, Any]:
    """The metrics of every seed of a saved checkpoint on ``split`` (``rnnlab eval``), as at the end of
    training (the test split of seq2seq runs: with exact match and BLEU of greedy and beam decoding).

    Args:
      workdir: a run directory.
      step: as in ``load_run``; None = the checkpoint training tested (the best by ``train.best_metric``
        when set, else the latest).
      eval_batches: batches to evaluate; None = ``config.train.eval_batches`` (0 = all).
      split: 'test' (metrics 'test/<name>'), 'validation' ('eval/<name>', what model selection read) or
        'train' ('train/<name>').

    Returns:
      ``{'step', '<prefix>/<name>' (mean over seeds), 'per_seed': {seed: {...}}}``; also written to
      ``workdir/eval_<step>.json`` (test) or ``workdir/eval_<step>_<split>.json``.
    """
    if eval_batches is not None and eval_batches < 0:
        raise ValueError(f"eval_batches must be >= 0 (0 = the whole split), got {eval_batches}")
    if step is None and read_config(workdir).train.best_metric:
        step = "best"
    run = load_run(workdir, step, task=task, model=model)
    run.task.check_split(split)
    tc = run.config.train
    evaluator = Evaluator(
        builders.make_adapter(run.config, run.task.info, run.model),
        losses.get_loss(run.task.info),
        run.task,
        sharding.DataParallel("none"),
        tc.eval_batch_size or tc.batch_size,
        tc.eval_batches if eval_batches is None else eval_batches,
        sharding.seed_loop(run.config.get("seed_loop", "auto"), "none"),
    )
    k = len(run.seeds)
    values = evaluator(run.stacked_params, k, split)
    if split == "test":
        values.update(evaluator.final(run.stacked_params, k))
    result = summary(run.step, run.seeds, values)
    name = f"eval_{run.step}.json" if split == "test" else f"eval_{run.step}_{split}.json"
    with open(os.path.join(workdir, name), "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    return result
