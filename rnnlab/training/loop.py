"""``train_and_evaluate(config, workdir)``: the one training loop, for every kind of task (``adapters``).

Shapes: **K** seeds, **B** batch. Every leaf of the state has a leading seed axis ``[K, ...]``; a train batch
is ``[K, B, ...]`` (seed k uses ``config.seed + k`` for its initialisation and its data stream), an eval batch
``[B, ...]`` is shared by all seeds. ``num_seeds=1`` is the same program with K = 1.

Logging: a 'train/...' record averages the steps since the previous record (sums for the nonfinite counts);
a resumed run reproduces metrics.jsonl exactly when ``checkpoint_every`` is a multiple of ``log_every``.
Non-finite values are checked on the host at every record and before every checkpoint (no per-step sync):
the bad update is never applied, and with ``nonfinite='stop'`` the run raises naming the first bad step.

Files in ``workdir``: ``config.json`` (the resolved config), ``metrics.jsonl`` (deterministic: one record per
logged step and seed, keys 'train/...', 'eval/...'), ``tb/seed_<s>/`` (TensorBoard, also steps/s),
``checkpoints/<step>/`` (see ``rnnlab.training.checkpointing``), ``final_metrics.json`` (when the run ends),
``provenance.json`` (versions, machine, command, times: ``rnnlab.training.provenance``), ``hang_p<i>.txt``
(every thread's stack, when the watchdog stopped a run that made no progress: ``rnnlab.training.watchdog``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.analysis import diagnostics
from rnnlab.models import count_params
from rnnlab.training import builders, checkpointing, losses, multihost, provenance, sharding, watchdog
from rnnlab.training import config as config_lib
from rnnlab.training import metrics as metrics_lib
from rnnlab.training.evaluation import Evaluator, summary
from rnnlab.training.state import TrainState, example_args, make_init, seed_keys
from rnnlab.training.steps import make_train_step

CONFIG_FILE = "config.json"
FINAL_FILE = "final_metrics.json"
CHECKPOINTS = "checkpoints"

ExtraMetricFn = Callable[[TrainState, Mapping[str, jax.Array]], Mapping[str, Any]]


class NonFiniteError(FloatingPointError):
    """A NaN/Inf loss or gradient with ``train.nonfinite='stop'``."""


def stack_seeds(batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """K batches -> one ``[K, B, ...]`` batch; per-seed differences in T are zero-padded (lengths mask
    them)."""
    out = {}
    for key in batches[0]:
        arrays = [np.asarray(b[key]) for b in batches]
        shape = np.max([a.shape for a in arrays], axis=0)
        arrays = [
            np.pad(a, [(0, s - d) for s, d in zip(shape, a.shape, strict=True)])
            if a.shape != tuple(shape)
            else a
            for a in arrays
        ]
        out[key] = np.stack(arrays)
    return out


def default_diagnostics(model, info, config) -> ExtraMetricFn:
    """The diagnostics recorder (``rnnlab.analysis``) as an extra metric, for ``diagnostics.every`` > 0."""
    loss_fn = diagnostics.model_loss_fn(model, losses.get_loss(info))
    return diagnostics.extra_metric(model, loss_fn, jacobian=config.diagnostics.jacobian)


class _Run:
    """Everything one ``train_and_evaluate`` call sets up before the loop (compiled steps, data, files)."""

    def __init__(self, config, workdir: str, task, model, extra_metrics: Sequence[ExtraMetricFn]):
        tc = config.train
        self.config, self.task = config, task
        self.seeds = [config.seed + k for k in range(config.num_seeds)]
        self.adapter = builders.make_adapter(config, task.info, model)
        self.loss = losses.get_loss(task.info)
        self.dp = sharding.DataParallel(config.parallel)
        step = make_train_step(self.adapter.forward, self.loss, config.optim, tc.steps)
        self.train_step = self.dp.compile_train(step)
        self.init = make_init(model, step.tx, example_args(task.info))
        self.evaluator = Evaluator(
            self.adapter, self.loss, task, self.dp, tc.eval_batch_size or tc.batch_size, tc.eval_batches
        )
        self.extra_metrics = list(extra_metrics)
        self.is_main = jax.process_index() == 0
        local_batch = tc.batch_size // jax.process_count() if config.parallel == "sharded" else tc.batch_size
        seed_offset = 1000 * jax.process_index()
        self.iterators = [self.adapter.train_iterator(task, local_batch, s + seed_offset) for s in self.seeds]
        self.ckpt = checkpointing.Checkpointer(
            os.path.join(workdir, CHECKPOINTS),
            keep=tc.keep_checkpoints,
            best_metric=tc.best_metric,
            best_mode=tc.best_mode,
        )
        self.config_json = config_lib.to_json_dict(config)
        self.dog = watchdog.Watchdog(workdir, tc.watchdog_s, self.ckpt.latest_step)

    def fresh_state(self, keys: np.ndarray) -> TrainState:
        """Initial parameters from ``keys [K, 2]``, and the adapter's initial carry for the global batch."""
        state = self.init(keys)
        return state.replace(carry=self.adapter.initial_carry(self.config.train.batch_size, len(self.seeds)))

    def initial_state(self) -> tuple[TrainState, int]:
        """A fresh state, or the newest intact checkpoint's (with the iterators' positions) and its step."""
        keys = seed_keys(self.seeds)
        if self.ckpt.latest_step() is None:
            return self.fresh_state(keys), 0
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.dp.replicated),
            jax.eval_shape(self.fresh_state, keys),
        )
        restored = self.ckpt.restore_latest_intact(abstract)
        if restored is None:  # every checkpoint was damaged (and set aside)
            return self.fresh_state(keys), 0
        state, data, step = restored
        states = checkpointing.iterator_states(data, self.ckpt.step_dir(step))
        for it, s in zip(self.iterators, states, strict=True):
            it.set_state(s)
        return state, step

    def next_batch(self) -> dict[str, np.ndarray]:
        return stack_seeds([next(it) for it in self.iterators])

    def save(self, step: int, state, metrics=None) -> None:
        data = checkpointing.data_state(step, [it.get_state() for it in self.iterators])
        self.ckpt.save(step, self.dp.get_state(state), data, self.config_json, metrics=metrics)

    def evaluate(self, state) -> dict[str, np.ndarray]:
        return self.evaluator(state.params, len(self.seeds))

    def diagnostics(self, step, state, batch, writer) -> None:
        canonical = self.dp.get_state(state)
        for k, seed in enumerate(self.seeds):
            one_state = jax.tree.map(lambda x: x[k], canonical)  # noqa: B023
            one_batch = {name: jnp.asarray(v[k]) for name, v in batch.items()}
            values = {}
            for fn in self.extra_metrics:
                values.update(jax.device_get(fn(one_state, one_batch)))
            if writer is not None:
                writer.write(step, seed, values)


@multihost.publishing_failures
def train_and_evaluate(
    config: Mapping,
    workdir: str,
    *,
    extra_metrics: Sequence[ExtraMetricFn] = (),
    model=None,
    task=None,
) -> dict[str, Any]:
    """Trains ``config.num_seeds`` models, evaluating and checkpointing as configured; resumes from
    ``workdir``.

    Args:
      config: a config (a ``ConfigDict`` from ``rnnlab.training.config``, or a dict merged onto
        ``default_config()``), validated before anything is written.
      workdir: the run directory (created).
      extra_metrics: functions ``fn(state, batch) -> {name: scalar or array}`` called every
        ``config.diagnostics.every`` steps (and at step 0), once per seed with that seed's unstacked
        ``TrainState`` and train batch (leaves ``[B, ...]``); their outputs go to the metrics files. Default
        (when ``diagnostics.every`` > 0): ``default_diagnostics`` (``rnnlab.analysis.diagnostics``).
      model: a Flax module to use instead of ``builders.build_model(config.model, task.info)`` (tests).
      task: a task to use instead of ``rnnlab.tasks.get_task(config.task.name, **config.task.params)``.

    Returns:
      Final metrics: 'step', 'eval/<name>' and 'train/<name>' (means over seeds) and 'per_seed'
      (``{seed: {name: value}}``). Also written to ``workdir/final_metrics.json``.

    Raises:
      ValueError: invalid config (every problem listed; nothing written).
      NonFiniteError: a NaN/Inf loss or gradient with ``train.nonfinite='stop'``.
      rnnlab.training.checkpointing.CheckpointError: an unreadable checkpoint in ``workdir``.
    """
    sharding.initialize_distributed()
    config = config_lib.resolve(config)
    config_lib.validate(config, num_devices=sharding.num_data_devices(config.parallel))
    task = task if task is not None else builders.load_task(config)
    model = model if model is not None else builders.build_model(config.model, task.info)
    if config.diagnostics.every and not extra_metrics:
        extra_metrics = [default_diagnostics(model, task.info, config)]
    config_path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(config_path):
        with open(config_path) as f:
            diffs = config_lib.config_diff(json.load(f), config)
        if diffs:
            raise ValueError(
                f"{workdir} holds a run with a different config ({'; '.join(diffs)}); use another "
                "--workdir, or delete this one to start over"
            )

    run = _Run(config, workdir, task, model, extra_metrics)
    final_path = os.path.join(workdir, FINAL_FILE)
    if os.path.exists(final_path) and run.ckpt.latest_step() == config.train.steps:
        with open(final_path) as f:
            return json.load(f)
    with run.dog, provenance.Session(workdir, enabled=run.is_main) as session:
        state, start = run.initial_state()
        if run.is_main:
            os.makedirs(workdir, exist_ok=True)
            with open(config_path, "w") as f:
                json.dump(run.config_json, f, indent=2, sort_keys=True)
        session.start(count_params(state.params) // len(run.seeds), start)
        writer = (
            metrics_lib.MetricWriter(workdir, resume_step=start if start else None) if run.is_main else None
        )
        progress = metrics_lib.Progress(
            config.train.steps, start, enabled=config.train.progress and run.is_main
        )
        try:
            state, eval_out, last_train = _loop(run, state, start, writer, progress)
            run.dog.doing("final evaluation", config.train.steps)
            final = run.evaluator.final(run.dp.get_state(state).params, len(run.seeds))
        finally:
            progress.close()
            if writer is not None:
                writer.close()
            run.ckpt.close()
    result = summary(config.train.steps, run.seeds, {**eval_out, **final})
    result.update(last_train)
    if run.is_main:
        with open(final_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    return result


def _loop(run: _Run, state, start: int, writer, progress):
    """Steps ``start`` .. ``train.steps``; returns the final state, the last eval metrics ``{name: [K]}`` and
    the last train record's means over seeds."""
    tc = run.config.train
    diagnose = bool(run.extra_metrics and run.config.diagnostics.every)
    state = run.dp.put_state(state)
    pending: list[tuple[int, dict]] = []
    last_train: dict[str, float] = {}
    eval_out: dict[str, np.ndarray] = {}
    tick = time.perf_counter()
    step = start
    while step < tc.steps:
        run.dog.doing("train step", step + 1)
        batch = run.next_batch()
        if step == 0 and diagnose:
            run.diagnostics(0, state, batch, writer)  # the initialisation, before the first update
        state, m = run.train_step(state, run.dp.put_batch(batch))
        step += 1
        pending.append((step, m))
        progress.update()
        if tc.nonfinite == "stop" and len(pending) == 1 and step == start + 1:
            _check_nonfinite(pending, run.seeds)  # fail fast on the first step
        if diagnose and step % run.config.diagnostics.every == 0:
            run.dog.doing("diagnostics", step)
            run.diagnostics(step, state, batch, writer)
        is_last = step == tc.steps
        do_eval = is_last or (tc.eval_every and step % tc.eval_every == 0)
        do_ckpt = (
            is_last
            or (tc.checkpoint_every and step % tc.checkpoint_every == 0)
            or (do_eval and tc.best_metric)
        )
        if (step % tc.log_every == 0 or is_last or do_ckpt) and tc.nonfinite == "stop":
            _check_nonfinite(pending, run.seeds)
        if step % tc.log_every == 0 or is_last:
            now = time.perf_counter()
            last_train = _log(pending, step, run.seeds, writer, progress, now - tick)
            pending, tick = [], now
        if do_eval:
            run.dog.doing("evaluation", step)
            eval_out = run.evaluate(state)
            if writer is not None:
                for k, seed in enumerate(run.seeds):
                    writer.write(step, seed, {name: v[k] for name, v in eval_out.items()})
                writer.flush()
        if do_ckpt:
            run.dog.doing("checkpoint", step)
            if writer is not None:
                writer.flush()  # every record up to this step is on disk before the checkpoint exists
            ckpt_metrics = (
                {**last_train, **{k: float(np.mean(v)) for k, v in eval_out.items()}} if do_eval else None
            )
            run.save(step, state, ckpt_metrics)
    if not eval_out:  # resumed at the very end: evaluate what was restored
        run.dog.doing("evaluation", step)
        eval_out = run.evaluate(state)
    return state, eval_out, last_train


def _log(pending, step, seeds, writer, progress, elapsed) -> dict[str, float]:
    stacked = {k: np.stack([np.asarray(m[k]) for _, m in pending]) for k in pending[0][1]}  # [n, K]
    summed = ("nonfinite", "loss_nonfinite", "grad_nonfinite")
    per_seed = {}
    for name, values in stacked.items():
        per_seed[f"train/{name}"] = values.sum(0) if name in summed else values.mean(0)
    if writer is not None:
        for k, seed in enumerate(seeds):
            writer.write(step, seed, {name: v[k] for name, v in per_seed.items()})
            writer.write_tensorboard(step, seed, {"train/steps_per_sec": len(pending) / max(elapsed, 1e-9)})
    means = {name: float(np.mean(v)) for name, v in per_seed.items()}
    progress.set_postfix({"loss": means["train/loss"]})
    return means


def _check_nonfinite(pending: list[tuple[int, dict]], seeds: Sequence[int]) -> None:
    for step, m in pending:
        bad = np.asarray(m["nonfinite"])
        if bad.any():
            k = int(np.argmax(bad))
            what = []
            if np.asarray(m["loss_nonfinite"])[k]:
                what.append(f"loss={float(np.asarray(m['loss'])[k])}")
            if np.asarray(m["grad_nonfinite"])[k]:
                what.append(f"gradient global norm={float(np.asarray(m['grad_norm'])[k])}")
            raise NonFiniteError(
                f"non-finite {' and '.join(what)} at step {step} (seed {seeds[k]}); the update was not "
                "applied and the last checkpoint is intact. Lower optim.learning_rate, clip gradients "
                "(optim.clip), or set train.nonfinite='skip' to skip such updates."
            )
