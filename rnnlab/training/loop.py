"""``train_and_evaluate(config, workdir)``: the one training loop, for every kind of task (``adapters``).

Shapes: **K** seeds, **B** batch. Every leaf of the state has a leading seed axis ``[K, ...]``; a train batch
is ``[K, B, ...]`` (seed k uses ``config.seed + k`` for its initialisation and its data stream), an eval batch
``[B, ...]`` is shared by all seeds. ``num_seeds=1`` is the same program with K = 1.

Logging: a 'train/...' record averages the steps since the previous record (sums for the nonfinite counts);
a resumed run reproduces metrics.jsonl exactly when ``checkpoint_every`` is a multiple of ``log_every``.
Non-finite values are checked on the host at every record and before every checkpoint (no per-step sync):
the bad update is never applied, and with ``nonfinite='stop'`` the run raises naming the first bad step.

Model selection reads the 'validation' split only: the evaluations during training ('eval/...', every
``train.eval_every`` steps and at the end), the best checkpoint (``train.best_metric``) and early stopping
(after ``train.early_stop_patience`` evaluations without a new best; Prechelt 1998, "Early stopping - but
when?"). The 'test' split is evaluated once, at the end, on the selected checkpoint (the best if
``best_metric`` is set, else the last), so that its score is not itself selected: 'test/...', with the
adapter's end-of-run metrics (e.g. BLEU).

Nothing is written before every input has been checked (``rnnlab.training.preflight``).

Files in ``workdir``: ``config.json`` (the resolved config), ``metrics.jsonl`` (deterministic: one record per
logged step and seed, keys 'train/...', 'eval/...', and 'test/...' at the last step), ``tb/seed_<s>/``
(TensorBoard, also steps/s), ``checkpoints/<step>/`` (see ``rnnlab.training.checkpointing``),
``final_metrics.json`` (when the run ends), ``provenance.json`` (versions, machine, command, times:
``rnnlab.training.provenance``), ``hang_p<i>.txt`` (every thread's stack, when the watchdog stopped a run that
made no progress: ``rnnlab.training.watchdog``).
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
from rnnlab.training import (
    builders,
    checkpointing,
    losses,
    multihost,
    preflight,
    provenance,
    sharding,
    watchdog,
)
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
        seed_loop = sharding.seed_loop(config.seed_loop, config.parallel)
        self.step = make_train_step(self.adapter.forward, self.loss, config.optim, tc.steps, seed_loop)
        self.train_step = self.dp.compile_train(self.step)
        self.init = make_init(model, self.step.tx, example_args(task.info))
        self.evaluator = Evaluator(
            self.adapter,
            self.loss,
            task,
            self.dp,
            tc.eval_batch_size or tc.batch_size,
            tc.eval_batches,
            seed_loop,
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

    def abstract_state(self) -> TrainState:
        """The state's shapes (``jax.ShapeDtypeStruct`` leaves, replicated; nothing runs)."""
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.dp.replicated),
            jax.eval_shape(self.fresh_state, seed_keys(self.seeds)),
        )

    def check(self) -> None:
        """The preflight of the model on this task: its splits, one abstract train step on the next batch's
        shapes."""
        preflight.check_splits(self.task)
        batch = stack_seeds([preflight.peek(it) for it in self.iterators])
        preflight.check_train_step(self.step, self.abstract_state(), batch, self.task.info.name)

    def initial_state(self) -> tuple[TrainState, int]:
        """A fresh state, or the newest intact checkpoint's (with the iterators' positions) and its step."""
        keys = seed_keys(self.seeds)
        if self.ckpt.latest_step() is None:
            return self.fresh_state(keys), 0
        restored = self.ckpt.restore_latest_intact(self.abstract_state())
        if restored is None:  # every checkpoint was damaged (and set aside)
            return self.fresh_state(keys), 0
        state, data, step = restored
        states = checkpointing.iterator_states(data, self.ckpt.step_dir(step))
        for it, s in zip(self.iterators, states, strict=True):
            it.set_state(s)
        return state, step

    def selected(self, state, step: int) -> tuple[Any, int]:
        """The parameters model selection picked, placed by ``dp``, and their step: the best checkpoint's
        (by ``train.best_metric`` on the validation split) if set, else ``state``'s (the last)."""
        best = self.ckpt.best_step()
        if best is None or best == step:
            return state.params, step
        restored, _, _ = self.ckpt.restore(self.abstract_state(), best)
        return self.dp.put_state(restored).params, best

    def stop_early(self, step: int) -> bool:
        """Whether ``train.early_stop_patience`` evaluations have passed without a new best checkpoint."""
        tc = self.config.train
        best = self.ckpt.best_step()
        return (
            bool(tc.early_stop_patience)
            and best is not None
            and step - best >= tc.early_stop_patience * tc.eval_every
        )

    def test(self, params) -> dict[str, np.ndarray]:
        """The selected ``params`` (placed by ``dp``) on the test split: ``{'test/<name>': [K]}``, the
        adapter's end-of-run metrics included."""
        k = len(self.seeds)
        return {**self.evaluator(params, k, "test"), **self.evaluator.final(self.dp.get_state(params), k)}

    def next_batch(self) -> dict[str, np.ndarray]:
        return stack_seeds([next(it) for it in self.iterators])

    def save(self, step: int, state, metrics=None) -> None:
        data = checkpointing.data_state(step, [it.get_state() for it in self.iterators])
        self.ckpt.save(step, self.dp.get_state(state), data, self.config_json, metrics=metrics)

    def evaluate(self, params) -> dict[str, np.ndarray]:
        """``params`` (placed by ``dp``) on the validation split: ``{'eval/<name>': [K]}``."""
        return self.evaluator(params, len(self.seeds), "validation")

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
      Final metrics: 'step' (the last step: ``train.steps``, or where early stopping stopped), 'selected_step'
      (the checkpoint model selection picked), 'eval/<name>' (its validation metrics), 'test/<name>' (its test
      metrics), 'train/<name>' (the last train record), all means over seeds, 'early_stopped', and 'per_seed'
      (``{seed: {name: value}}``). Also written to ``workdir/final_metrics.json``.

    Raises:
      ValueError: invalid config, task parameters or cell options (every config problem listed; nothing
        written), or a workdir holding a run with another config.
      NotADirectoryError: ``workdir`` is a file.
      NonFiniteError: a NaN/Inf loss or gradient with ``train.nonfinite='stop'``.
      rnnlab.training.checkpointing.CheckpointError: an unreadable checkpoint in ``workdir``.
    """
    sharding.initialize_distributed()
    config = config_lib.resolve(config)
    config_lib.validate(config, num_devices=sharding.num_data_devices(config.parallel))
    preflight.check_workdir(workdir)
    task = task if task is not None else builders.load_task(config)
    model = model if model is not None else builders.load_model(config, task.info)
    if config.diagnostics.every and not extra_metrics:
        extra_metrics = [default_diagnostics(model, task.info, config)]
    config_path = os.path.join(workdir, CONFIG_FILE)
    preflight.check_saved_config(workdir, CONFIG_FILE, config)

    run = _Run(config, workdir, task, model, extra_metrics)
    final_path = os.path.join(workdir, FINAL_FILE)
    if os.path.exists(final_path):
        with open(final_path) as f:
            final = json.load(f)
        latest = run.ckpt.latest_step()
        if latest == final.get("step") and (latest == config.train.steps or final.get("early_stopped")):
            return final
    run.check()
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
            state, step, eval_out, last_train = _loop(run, state, start, writer, progress)
            run.dog.doing("final evaluation", step)
            params, selected = run.selected(state, step)
            if selected != step:  # the validation metrics of the checkpoint that is tested
                eval_out = run.evaluate(params)
            test_out = run.test(params)
            if writer is not None:
                for k, seed in enumerate(run.seeds):
                    writer.write(step, seed, {name: v[k] for name, v in test_out.items()})
        finally:
            progress.close()
            if writer is not None:
                writer.close()
            run.ckpt.close()
    result = summary(step, run.seeds, {**eval_out, **test_out})
    result.update(last_train)
    result.update(selected_step=int(selected), early_stopped=step < config.train.steps)
    if run.is_main:
        with open(final_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    return result


def _loop(run: _Run, state, start: int, writer, progress):
    """Steps ``start`` .. ``train.steps`` (or until early stopping); returns the final state, its step, the
    last validation metrics ``{name: [K]}`` and the last train record's means over seeds."""
    tc = run.config.train
    diagnose = bool(run.extra_metrics and run.config.diagnostics.every)
    state = run.dp.put_state(state)
    pending: list[tuple[int, dict]] = []
    last_train: dict[str, float] = {}
    eval_out: dict[str, np.ndarray] = {}
    tick = time.perf_counter()
    step = start
    stop = run.stop_early(start)  # resumed after early stopping had decided
    while step < tc.steps and not stop:
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
        do_eval = step == tc.steps or (tc.eval_every and step % tc.eval_every == 0)
        # before this step's checkpoint ranks it: true unless this evaluation is a new best
        may_stop = bool(do_eval) and run.stop_early(step)
        is_last = step == tc.steps or may_stop
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
            eval_out = run.evaluate(state.params)
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
        stop = may_stop and run.stop_early(step)
    if not eval_out:  # resumed at the very end: evaluate what was restored
        run.dog.doing("evaluation", step)
        eval_out = run.evaluate(state.params)
    return state, step, eval_out, last_train


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
