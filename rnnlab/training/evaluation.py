"""Evaluation of K stacked parameter sets on a task's split: the loss-based metrics (on 'validation' every
``train.eval_every`` steps; on 'test' once, at the end of a run, and by ``rnnlab eval``) and the adapter's
end-of-run metrics (on 'test').

Shapes: **K** seeds, **B** batch. Results are ``{'<prefix>/<name>': [K]}`` arrays, the prefix naming the split
(``split_prefix``): 'eval/' for validation (the split model selection reads), 'test/' for test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.training import losses, sharding
from rnnlab.training.adapters import Adapter
from rnnlab.training.steps import EvalStep

PREFIXES = {"validation": "eval", "test": "test"}


def split_prefix(split: str) -> str:
    """The metric prefix of ``split``: 'eval' (validation), 'test', else the split's own name."""
    return PREFIXES.get(split, split)


class Evaluator:
    """Metrics of ``params`` (leaves ``[K, ...]``, placed by ``dp``) on a split of ``task``.

    Args:
      adapter: how the model is called and where test batches come from.
      loss: the task's loss.
      task: the task.
      dp: the data-parallel layout (the eval step is compiled once, here).
      batch_size: examples per eval batch (B).
      num_batches: batches to evaluate; 0 = the whole split.
      seed_loop: how the K seeds run (``rnnlab.training.steps.SEED_LOOPS``).
    """

    def __init__(
        self,
        adapter: Adapter,
        loss: losses.Loss,
        task,
        dp: sharding.DataParallel,
        batch_size: int,
        num_batches: int,
        seed_loop: str = "vmap",
    ):
        self.adapter, self.loss, self.task, self.dp = adapter, loss, task, dp
        self.batch_size, self.num_batches = batch_size, num_batches
        self._step = dp.compile_eval(EvalStep(adapter.forward, loss, seed_loop))

    def __call__(self, params, num_seeds: int, split: str = "validation") -> dict[str, np.ndarray]:
        """Mean metrics over the evaluated batches: ``{'<split_prefix(split)>/<name>': [K]}``."""
        carry = self.adapter.initial_carry(self.batch_size, num_seeds)
        totals = None
        for i, batch in enumerate(self.adapter.eval_batches(self.task, self.batch_size, split)):
            if self.num_batches and i >= self.num_batches:
                break
            sums, carry = self._step(params, carry, self.dp.put_batch(batch, seed_axis=False))
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
        if totals is None:
            raise ValueError(f"the {split!r} split of task {self.task.info.name!r} is empty")
        prefix = split_prefix(split)
        return {f"{prefix}/{k}": np.asarray(v) for k, v in self.loss.finalize(jax.device_get(totals)).items()}

    def final(self, params, num_seeds: int) -> dict[str, np.ndarray]:
        """The adapter's end-of-run metrics of every seed, on the test split: ``{'test/<name>': [K]}`` (often
        none). ``params``: leaves ``[K, ...]`` on one device."""
        per_seed = [
            self.adapter.final_metrics(self.task, jax.tree.map(lambda x: x[k], params), self.batch_size)  # noqa: B023
            for k in range(num_seeds)
        ]
        return {f"test/{name}": np.array([m[name] for m in per_seed]) for name in per_seed[0]}


def summary(step: int, seeds: Sequence[int], values: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{'step', '<name>': mean over seeds, 'per_seed': {seed: {name: value}}}`` from ``values``
    (``{name: [K]}``), as ``train_and_evaluate`` and ``rnnlab eval`` return it."""
    result: dict[str, Any] = {"step": int(step)}
    result.update({k: float(np.mean(v)) for k, v in values.items()})
    result["per_seed"] = {
        str(seed): {name: float(v[i]) for name, v in values.items()} for i, seed in enumerate(seeds)
    }
    return result
