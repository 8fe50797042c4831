"""Training: an explicit ``TrainState``, pure jitted ``train_step`` / ``eval_step``, and
``train_and_evaluate(config, workdir)``.

Shapes: **K** seeds, **B** batch, **T** time. Every leaf of the state has a leading seed axis ``[K, ...]``;
a train batch is ``[K, B, ...]`` (each seed its own data stream: seed k uses ``config.seed + k`` for its
initialisation and its iterator), an eval batch ``[B, ...]`` is shared by all seeds. ``num_seeds=1`` is the
same program with K = 1.

Randomness: seed k's root key is ``PRNGKey(config.seed + k)``, split into (init, train); step s uses
``fold_in(train_key, s)`` (dropout), so a resumed run draws exactly the same numbers.

Logging: a 'train/...' record averages the steps since the previous record (sums for the nonfinite counts);
a resumed run reproduces metrics.jsonl exactly when ``checkpoint_every`` is a multiple of ``log_every``.
Non-finite values are checked on the host at every record and before every checkpoint (no per-step sync):
the bad update is never applied, and with ``nonfinite='stop'`` the run raises naming the first bad step.

Files in ``workdir``: ``config.json`` (the resolved config), ``metrics.jsonl`` (deterministic: one record per
logged step and seed, keys 'train/...', 'eval/...'), ``tb/seed_<s>/`` (TensorBoard, also steps/s),
``checkpoints/<step>/`` (see ``rnnlab.checkpointing``), ``final_metrics.json`` (written when the run ends).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rnnlab import config as config_lib
from rnnlab import parallel
from rnnlab.training import checkpointing, losses, optim
from rnnlab.training import metrics as metrics_lib

CONFIG_FILE = "config.json"
FINAL_FILE = "final_metrics.json"
# Keys that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("train.progress", "train.steps")

ExtraMetricFn = Callable[["TrainState", Mapping[str, jax.Array]], Mapping[str, Any]]


class NonFiniteError(FloatingPointError):
    """A NaN/Inf loss or gradient with ``train.nonfinite='stop'``."""


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (a pytree; ``apply_fn`` is static).

    Attributes:
      step: int32 ``[]`` (``[K]`` with the seed axis), the number of steps taken.
      params: the model parameters.
      opt_state: the optax state.
      rng: uint32 ``[2]`` raw key; step s uses ``fold_in(rng, s)``.
      skipped: int32, updates dropped because the loss or gradient was not finite.
      carry: truncated BPTT (``train.tbptt``): the model's final carries of the last train chunk (leaves
        ``[B, ...]``, ``[K, B, ...]`` with the seed axis), the next chunk's initial carries; None otherwise.
      apply_fn: ``model.apply`` (for diagnostics that need to run the model).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    skipped: jax.Array
    carry: Any = None
    apply_fn: Callable = flax.struct.field(pytree_node=False, default=None)


# --------------------------------------------------------------------------------------------------------
# Model


def model_kwargs(model_config: Mapping, info) -> dict[str, Any]:
    """``config.model`` + a ``TaskInfo`` -> keyword arguments of ``rnnlab.models.SequenceModel``."""
    head = model_config["head"]
    if head == "auto":
        head = "last" if info.kind in ("classification", "regression") else "all"
    options = model_config["cell_options"]
    options = options.to_dict() if isinstance(options, ml_collections.ConfigDict) else dict(options)
    return {
        "cell": model_config["cell"],
        "hidden_size": model_config["hidden_size"],
        "num_layers": model_config["num_layers"],
        "cell_options": tuple(sorted(options.items())),
        "vocab_size": info.vocab_size,
        "embed_dim": model_config["embed_dim"] or None,
        "bidirectional": model_config["bidirectional"],
        "residual": model_config["residual"],
        "head": head,
        "num_outputs": info.num_outputs,
        "dropout": model_config["dropout"],
    }


def seq2seq_kwargs(model_config: Mapping, info) -> dict[str, Any]:
    """``config.model`` + a seq2seq ``TaskInfo`` -> keyword arguments of ``rnnlab.seq2seq.Seq2Seq``
    (``num_layers`` = encoder layers, ``bidirectional`` = the encoder)."""
    options = model_config["cell_options"]
    options = options.to_dict() if isinstance(options, ml_collections.ConfigDict) else dict(options)
    return {
        "input_vocab": info.vocab_size,
        "output_vocab": info.num_outputs,
        "cell": model_config["cell"],
        "hidden_size": model_config["hidden_size"],
        "cell_options": tuple(sorted(options.items())),
        "embed_dim": model_config["embed_dim"] or None,
        "encoder_layers": model_config["num_layers"],
        "bidirectional": model_config["bidirectional"],
        "attention": model_config["attention"],
        "dropout": model_config["dropout"],
    }


def build_model(model_config: Mapping, info):
    """The model described by ``config.model`` for the task ``info``: a ``Seq2Seq`` (encoder-decoder) for
    tasks of kind 'seq2seq', else a ``SequenceModel``."""
    if info.kind == "seq2seq":
        from rnnlab.seq2seq import Seq2Seq  # pylint: disable=import-outside-toplevel

        return Seq2Seq(**seq2seq_kwargs(model_config, info))
    from rnnlab.models import SequenceModel  # pylint: disable=import-outside-toplevel

    return SequenceModel(**model_kwargs(model_config, info))


def dummy_inputs(info) -> np.ndarray:
    """``inputs [1, 1(, D)]``: enough to initialise a model (parameters do not depend on B, T)."""
    if info.vocab_size is not None:
        return np.zeros((1, 1), np.int32)
    return np.zeros((1, 1, info.input_size), np.float32)


def dummy_args(info) -> tuple:
    """Positional arguments of ``model.init``: ``(inputs,)``, or ``(inputs, lengths, decoder_inputs)`` for
    seq2seq."""
    inputs = dummy_inputs(info)
    return (inputs, None, inputs) if info.kind == "seq2seq" else (inputs,)


def zero_carry(model, info, batch_size: int, num_seeds: int):
    """Zero initial carries ``[K, B, ...]`` of a model that takes ``initial_carries`` / ``return_carries``
    (shapes from ``jax.eval_shape``: nothing runs)."""
    inputs = np.zeros((batch_size,) + dummy_inputs(info).shape[1:], dummy_inputs(info).dtype)
    shapes = jax.eval_shape(
        lambda k: model.init_with_output(k, inputs, return_carries=True)[0][1], jax.random.key(0)
    )
    return jax.tree.map(lambda s: jnp.zeros((num_seeds, *s.shape), s.dtype), shapes)


@dataclasses.dataclass(frozen=True)
class ApplyFn:
    """``model.apply`` that compares equal for equal models (bound methods compare by identity), so states of
    equal models have equal tree structures and share compiled steps."""

    model: Any

    def __call__(self, *args, **kwargs):
        return self.model.apply(*args, **kwargs)


def _init_fn(model, tx: optax.GradientTransformation, inputs: np.ndarray | tuple) -> Callable:
    """``keys [K, 2] -> TrainState [K, ...]`` (jitted); ``inputs``: the init inputs, or a tuple of ``model.init``
    arguments (``dummy_args``)."""
    args = inputs if isinstance(inputs, tuple) else (inputs,)

    def init_one(key):
        init_key, train_key = jax.random.split(key)
        params = model.init({"params": init_key}, *args)["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            rng=train_key,
            skipped=jnp.zeros((), jnp.int32),
            apply_fn=ApplyFn(model),
        )

    # lax.map, not vmap: vmap would batch the orthogonal initialisers' QRs over seeds, and two batched LAPACK
    # calls running at once deadlock XLA's CPU thread pool (docs/known-issues/batched-lapack-deadlock.md).
    return jax.jit(lambda keys: jax.lax.map(init_one, keys))


def seed_keys(seeds: Sequence[int]) -> np.ndarray:
    """``[K, 2]`` uint32 root keys, ``PRNGKey(seed)`` for each seed."""
    return np.stack([np.asarray(jax.random.key_data(jax.random.key(s, impl="threefry2x32"))) for s in seeds])


def init_state(model, tx: optax.GradientTransformation, info, seeds: Sequence[int]) -> TrainState:
    """K independently initialised states stacked on a leading seed axis (one per entry of ``seeds``)."""
    return _init_fn(model, tx, dummy_args(info))(seed_keys(seeds))


def _freeze(x: Any) -> Any:
    if isinstance(x, (Mapping, ml_collections.ConfigDict)):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x


@dataclasses.dataclass(frozen=True)
class Engine:
    """The compiled pieces of a run: optimizer, data-parallel layout, init / train / eval programs."""

    tx: optax.GradientTransformation
    dp: parallel.DataParallel
    init: Callable
    train_step: Callable
    eval_step: Callable


@functools.lru_cache(maxsize=16)
def _cached_engine(
    model, loss, optim_frozen, total_steps, mode, inputs_spec, seq2seq=False, tbptt=False
) -> Engine:
    optim_config = dict(optim_frozen)
    tx = optim.make_optimizer(optim_config, total_steps)
    dp = parallel.DataParallel(mode)
    inputs = np.zeros(*inputs_spec)
    return Engine(
        tx=tx,
        dp=dp,
        init=_init_fn(model, tx, (inputs, None, inputs) if seq2seq else inputs),
        train_step=dp.compile_train(make_train_step(loss, tx, optim_config, total_steps, tbptt=tbptt)),
        eval_step=dp.compile_eval(make_eval_step(loss, ApplyFn(model), tbptt=tbptt)),
    )


def make_engine(
    model, loss: losses.Loss, optim_config: Mapping, total_steps: int, mode: str, info, *, tbptt: bool = False
) -> Engine:
    """The ``Engine`` for these settings; runs with equal settings in one process (a sweep over seeds, a resumed
    run, tests) reuse the same compiled programs. ``tbptt``: steps that carry the state across batches."""
    inputs = dummy_inputs(info)
    return _cached_engine(
        model,
        loss,
        _freeze(optim_config),
        total_steps,
        mode,
        (inputs.shape, inputs.dtype),
        info.kind == "seq2seq",
        bool(tbptt),
    )


# --------------------------------------------------------------------------------------------------------
# Steps (one seed; vmapped over seeds by make_train_step)


def apply_model(apply_fn: Callable, params, batch, *, train: bool, rngs=None, carry=None):
    """The model's outputs for a batch of any kind: seq2seq batches (with ``decoder_inputs``) are teacher-forced
    (``decoder_lengths`` = ``target_lengths``). With ``carry`` (truncated BPTT): ``(outputs, final carries)``
    from ``initial_carries=carry``."""
    variables = {"params": params}
    if "decoder_inputs" in batch:
        return apply_fn(
            variables,
            batch["inputs"],
            batch["lengths"],
            batch["decoder_inputs"],
            decoder_lengths=batch["target_lengths"],
            train=train,
            rngs=rngs,
        )
    if carry is None:
        return apply_fn(variables, batch["inputs"], batch["lengths"], train=train, rngs=rngs)
    return apply_fn(
        variables,
        batch["inputs"],
        batch["lengths"],
        train=train,
        rngs=rngs,
        initial_carries=carry,
        return_carries=True,
    )


def reset_carry(carry, reset: jax.Array | None):
    """Zero the carry rows where ``reset [B]`` is nonzero (a stream's first chunk of an epoch)."""
    if reset is None:
        return carry
    return jax.tree.map(lambda c: jnp.where((reset != 0).reshape((-1,) + (1,) * (c.ndim - 1)), 0, c), carry)


def _train_step_one(
    state: TrainState,
    batch,
    axis_name,
    *,
    loss: losses.Loss,
    tx: optax.GradientTransformation,
    clip: str,
    clip_value: float,
    lr_fn: Callable,
    tbptt: bool = False,
) -> tuple[TrainState, dict[str, jax.Array]]:
    dropout_key = jax.random.fold_in(state.rng, state.step)
    carry = reset_carry(state.carry, batch.get("reset")) if tbptt else None

    def objective(params):
        outputs = apply_model(
            state.apply_fn, params, batch, train=True, rngs={"dropout": dropout_key}, carry=carry
        )
        outputs, new_carry = outputs if tbptt else (outputs, None)
        stats = loss.stats(outputs, batch)
        num, den = stats["loss"]
        # Local numerator over the GLOBAL count: summing gradients over devices then gives the global mean.
        return num / jnp.maximum(parallel.psum_if(den, axis_name), 1e-30), (stats, new_carry)

    grads, (stats, new_carry) = jax.grad(objective, has_aux=True)(state.params)
    grads = parallel.psum_if(grads, axis_name)
    stats = parallel.psum_if(stats, axis_name)
    metrics = loss.finalize(stats)

    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    loss_finite = jnp.isfinite(metrics["loss"])
    grad_finite = jnp.isfinite(grad_norm)
    ok = loss_finite & grad_finite

    # A non-finite update is never applied (with nonfinite='stop' the host raises before saving anything).
    def keep(new, old):
        return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)

    new_state = state.replace(
        step=state.step + 1,
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        skipped=state.skipped + (~ok).astype(jnp.int32),
    )
    if tbptt:
        # Truncated BPTT: the next chunk starts from this chunk's final state as a constant (the carry is a step
        # input, so no gradient can cross the chunk boundary). After a skipped update it restarts from zero.
        new_state = new_state.replace(
            carry=jax.tree.map(
                lambda c: jnp.where(ok, jax.lax.stop_gradient(c), jnp.zeros_like(c)), new_carry
            )
        )
    metrics.update(
        grad_norm=grad_norm,
        update_norm=optax.tree.norm(updates),
        param_norm=optax.tree.norm(new_state.params),
        clip_fired=optim.clip_fired(clip, clip_value, grads).astype(jnp.float32),
        learning_rate=jnp.asarray(lr_fn(state.step), jnp.float32),
        nonfinite=(~ok).astype(jnp.float32),
        loss_nonfinite=(~loss_finite).astype(jnp.float32),
        grad_nonfinite=(~grad_finite).astype(jnp.float32),
    )
    return new_state, metrics


def make_train_step(
    loss: losses.Loss,
    tx: optax.GradientTransformation,
    optim_config: Mapping,
    total_steps: int,
    *,
    tbptt: bool = False,
) -> Callable:
    """``train_step(state, batch, axis_name=None) -> (state, metrics)``, vmapped over the seed axis.

    ``tbptt``: truncated BPTT: the model starts from ``state.carry`` (zeroed on rows with ``batch['reset']``)
    and the new state holds its final carries.

    Args (of the returned function):
      state: ``TrainState`` with leaves ``[K, ...]``.
      batch: leaves ``[K, B, ...]``.
      axis_name: the pmap axis to sum over, or None.

    Returns:
      The new state and metrics ``{name: [K]}``: loss and task metrics, grad_norm (before clipping),
      update_norm, param_norm, clip_fired, learning_rate, nonfinite / loss_nonfinite / grad_nonfinite.
    """

    def step(state, batch, axis_name=None):
        one = functools.partial(
            _train_step_one,
            axis_name=axis_name,
            loss=loss,
            tx=tx,
            clip=optim_config["clip"],
            clip_value=optim_config["clip_value"],
            lr_fn=optim.learning_rate_fn(optim_config, total_steps),
            tbptt=tbptt,
        )
        return jax.vmap(one)(state, batch)

    return step


def make_eval_step(loss: losses.Loss, apply_fn: Callable, *, tbptt: bool = False) -> Callable:
    """``eval_step(params, batch, axis_name=None) -> {name: (num [K], den [K])}``.

    ``params`` leaves ``[K, ...]``; ``batch`` leaves ``[B, ...]`` (shared by the seeds). Sums, so batches and
    devices add up; ``loss.finalize`` turns them into means. ``tbptt``: the first argument is
    ``(params, carry [K, B, ...])`` and the step returns ``(sums, carry)`` (the test stream read in order).
    """

    def one(params, batch, axis_name):
        outputs = apply_model(apply_fn, params, batch, train=False)
        return parallel.psum_if(loss.stats(outputs, batch), axis_name)

    def one_carried(params_carry, batch, axis_name):
        params, carry = params_carry
        outputs, carry = apply_model(
            apply_fn, params, batch, train=False, carry=reset_carry(carry, batch.get("reset"))
        )
        return parallel.psum_if(loss.stats(outputs, batch), axis_name), carry

    def step(params, batch, axis_name=None):
        return jax.vmap(one_carried if tbptt else one, in_axes=(0, None, None))(params, batch, axis_name)

    return step


# --------------------------------------------------------------------------------------------------------
# Host side: data


def _stack_seeds(batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """K batches -> one ``[K, B, ...]`` batch; per-seed differences in T are zero-padded (lengths mask them)."""
    out = {}
    for key in batches[0]:
        arrays = [np.asarray(b[key]) for b in batches]
        shape = np.max([a.shape for a in arrays], axis=0)
        arrays = [
            np.pad(a, [(0, s - d) for s, d in zip(shape, a.shape)]) if a.shape != tuple(shape) else a
            for a in arrays
        ]
        out[key] = np.stack(arrays)
    return out


def _pad_batch(batch: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """A short final eval batch -> ``size`` examples with ``example_mask`` marking the real ones."""
    n = len(batch["lengths"])
    out = {
        k: np.concatenate([v, np.repeat(v[:1], size - n, axis=0)]) if n < size else v
        for k, v in batch.items()
    }
    out["example_mask"] = (np.arange(size) < n).astype(np.float32)
    return out


def evaluate(
    eval_fn: Callable,
    dp: parallel.DataParallel,
    params,
    task,
    batch_size: int,
    num_batches: int,
    loss: losses.Loss,
    split: str = "test",
) -> dict[str, np.ndarray]:
    """Mean metrics over ``num_batches`` batches of ``split`` (0 = all): ``{name: [K]}``."""
    it = task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False)
    totals = None
    for i, batch in enumerate(it):
        if num_batches and i >= num_batches:
            break
        sums = eval_fn(params, dp.put_batch(_pad_batch(batch, batch_size), seed_axis=False))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    if totals is None:
        raise ValueError(f"the {split!r} split of task {task.info.name!r} is empty")
    return {k: np.asarray(v) for k, v in loss.finalize(jax.device_get(totals)).items()}


def evaluate_stream(
    eval_fn: Callable,
    dp: parallel.DataParallel,
    params,
    carry,
    task,
    batch_size: int,
    num_batches: int,
    loss: losses.Loss,
    split: str = "test",
) -> dict[str, np.ndarray]:
    """``evaluate`` for truncated BPTT: ``split`` read as B contiguous streams, chunk after chunk, the carry
    (``[K, B, ...]``, zero at the start) passed on (``eval_fn`` from ``make_eval_step(..., tbptt=True)``)."""
    it = task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False, stream=True)
    totals = None
    for i, batch in enumerate(it):
        if num_batches and i >= num_batches:
            break
        sums, carry = eval_fn((params, carry), dp.put_batch(batch, seed_axis=False))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    if totals is None:
        raise ValueError(f"the {split!r} split of task {task.info.name!r} is empty")
    return {k: np.asarray(v) for k, v in loss.finalize(jax.device_get(totals)).items()}


# --------------------------------------------------------------------------------------------------------
# Host side: the loop


def _config_diff(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        path = prefix + key
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            diffs += _config_diff(va, vb, path + ".")
        elif va != vb and path not in RESUMABLE_CHANGES:
            diffs.append(f"{path}: {va!r} -> {vb!r}")
    return diffs


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
                f"non-finite {' and '.join(what)} at step {step} (seed {seeds[k]}); the update was not applied and "
                "the last checkpoint is intact. Lower optim.learning_rate, clip gradients (optim.clip), or set "
                "train.nonfinite='skip' to skip such updates."
            )


def _jsonable_config(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json())


class _Run:
    """The state of one ``train_and_evaluate`` call (split out to keep each piece short)."""

    def __init__(self, config, workdir, task, model, extra_metrics):
        self.config, self.workdir, self.task = config, workdir, task
        tc = config.train
        self.seeds = [config.seed + k for k in range(config.num_seeds)]
        self.info = task.info
        self.loss = losses.get_loss(self.info)
        self.tbptt = bool(tc.tbptt)
        self.engine = make_engine(
            model, self.loss, config.optim, tc.steps, config.parallel, self.info, tbptt=self.tbptt
        )
        self.dp, self.tx = self.engine.dp, self.engine.tx
        self.train_step, self.eval_step = self.engine.train_step, self.engine.eval_step
        self.model = model
        self.extra_metrics = list(extra_metrics)
        self.is_main = jax.process_index() == 0
        seed_offset = 1000 * jax.process_index()
        self.local_batch = (
            tc.batch_size // jax.process_count() if config.parallel == "sharded" else tc.batch_size
        )
        stream = {"stream": True} if self.tbptt else {}
        self.iterators = [
            task.iterator("train", self.local_batch, s + seed_offset, **stream) for s in self.seeds
        ]
        self.eval_batch_size = tc.eval_batch_size or tc.batch_size
        self.ckpt = checkpointing.Checkpointer(
            os.path.join(workdir, "checkpoints"),
            keep=tc.keep_checkpoints,
            best_metric=tc.best_metric,
            best_mode=tc.best_mode,
        )
        self.config_json = _jsonable_config(config)

    def fresh_state(self) -> TrainState:
        """Initial parameters (and, for truncated BPTT, zero carries for the global train batch)."""
        state = self.engine.init(seed_keys(self.seeds))
        if self.tbptt:
            state = state.replace(
                carry=zero_carry(self.model, self.info, self.config.train.batch_size, len(self.seeds))
            )
        return state

    def initial_state(self) -> tuple[TrainState, int]:
        state = self.fresh_state()
        if self.ckpt.latest_step() is None:
            return state, 0
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.dp.replicated), state
        )
        state, data, step = self.ckpt.restore(abstract)
        for it, s in zip(self.iterators, data["iterators"]):
            it.set_state(s)
        return state, step

    def next_batch(self) -> dict[str, np.ndarray]:
        return _stack_seeds([next(it) for it in self.iterators])

    def save(self, step: int, state, metrics=None) -> None:
        data = {"iterators": [it.get_state() for it in self.iterators]}
        self.ckpt.save(step, self.dp.get_state(state), data, self.config_json, metrics=metrics)

    def eval_metrics(self, state) -> dict[str, np.ndarray]:
        if self.tbptt:
            carry = zero_carry(self.model, self.info, self.eval_batch_size, len(self.seeds))
            out = evaluate_stream(
                self.eval_step,
                self.dp,
                state.params,
                carry,
                self.task,
                self.eval_batch_size,
                self.config.train.eval_batches,
                self.loss,
            )
        else:
            out = evaluate(
                self.eval_step,
                self.dp,
                state.params,
                self.task,
                self.eval_batch_size,
                self.config.train.eval_batches,
                self.loss,
            )
        return {f"eval/{k}": v for k, v in out.items()}

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


def default_diagnostics(model, info, config) -> ExtraMetricFn:
    """``rnnlab.diagnostics``' recorder as an extra metric (used when ``config.diagnostics.every`` > 0)."""
    from rnnlab import diagnostics  # pylint: disable=import-outside-toplevel

    loss_fn = diagnostics.model_loss_fn(model, losses.get_loss(info))
    return diagnostics.extra_metric(model, loss_fn, jacobian=config.diagnostics.jacobian)


def train_and_evaluate(
    config: Mapping | ml_collections.ConfigDict,
    workdir: str,
    *,
    extra_metrics: Sequence[ExtraMetricFn] = (),
    model=None,
    task=None,
) -> dict[str, Any]:
    """Trains ``config.num_seeds`` models, evaluating and checkpointing as configured; resumes from ``workdir``.

    Args:
      config: a config (merged onto ``rnnlab.config.default_config()`` and validated before anything is
        written).
      workdir: the run directory (created).
      extra_metrics: functions ``fn(state, batch) -> {name: scalar or array}`` called every
        ``config.diagnostics.every`` steps, once per seed with that seed's unstacked ``TrainState`` and
        train batch (leaves ``[B, ...]``); their outputs go to the metrics files. Default (when
        ``diagnostics.every`` > 0): ``default_diagnostics`` (``rnnlab.diagnostics``).
      model: a Flax module to use instead of ``build_model(config.model, task.info)`` (tests).
      task: a task to use instead of ``rnnlab.tasks.get_task(config.task.name, **config.task.params)``.

    Returns:
      Final metrics: 'step', 'eval/<name>' and 'train/<name>' (means over seeds) and 'per_seed'
      (``{seed: {name: value}}``). Also written to ``workdir/final_metrics.json``.

    Raises:
      ValueError: invalid config (every problem listed; nothing written).
      NonFiniteError: a NaN/Inf loss or gradient with ``train.nonfinite='stop'``.
      rnnlab.checkpointing.CheckpointError: an unreadable checkpoint in ``workdir``.
    """
    parallel.initialize_distributed()
    config = config_lib.resolve(config)
    config_lib.validate(config, num_devices=parallel.num_data_devices(config.parallel))
    if task is None:
        from rnnlab.tasks import get_task  # pylint: disable=import-outside-toplevel

        try:
            task = get_task(config.task.name, **config.task.params.to_dict())
        except (ValueError, TypeError) as e:
            raise ValueError(f"invalid config:\n  - task.params: {e}") from e
    if config.train.tbptt and task.info.kind != "lm":
        raise ValueError(
            f"invalid config:\n  - train.tbptt needs a language-model task (kind lm); "
            f"{task.info.name!r} is {task.info.kind!r}"
        )
    if model is None:
        model = build_model(config.model, task.info)
    if config.diagnostics.every and not extra_metrics:
        extra_metrics = [default_diagnostics(model, task.info, config)]
    config_path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(config_path):
        with open(config_path) as f:
            diffs = _config_diff(json.load(f), _jsonable_config(config))
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
    state, start = run.initial_state()
    if run.is_main:
        os.makedirs(workdir, exist_ok=True)
        with open(config_path, "w") as f:
            json.dump(run.config_json, f, indent=2, sort_keys=True)
    writer = metrics_lib.MetricWriter(workdir, resume_step=start if start else None) if run.is_main else None
    progress = metrics_lib.Progress(config.train.steps, start, enabled=config.train.progress and run.is_main)
    try:
        result = _loop(run, state, start, writer, progress)
        if task.info.kind == "seq2seq":
            _add_decode_metrics(result, run, run.final_state)
    finally:
        progress.close()
        if writer is not None:
            writer.close()
        run.ckpt.close()
    if run.is_main:
        with open(final_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    return result


def _loop(run: _Run, state, start: int, writer, progress) -> dict[str, Any]:
    tc = run.config.train
    state = run.dp.put_state(state)
    pending: list[tuple[int, dict]] = []
    last_train: dict[str, float] = {}
    eval_out: dict[str, np.ndarray] = {}
    tick = time.perf_counter()
    step = start
    while step < tc.steps:
        batch = run.next_batch()
        if step == 0 and run.extra_metrics and run.config.diagnostics.every:
            run.diagnostics(0, state, batch, writer)  # the initialisation, before the first update
        state, m = run.train_step(state, run.dp.put_batch(batch))
        step += 1
        pending.append((step, m))
        progress.update()
        if tc.nonfinite == "stop" and len(pending) == 1 and step == start + 1:
            _check_nonfinite(pending, run.seeds)  # fail fast on the first step
        if run.extra_metrics and run.config.diagnostics.every and step % run.config.diagnostics.every == 0:
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
            eval_out = run.eval_metrics(state)
            if writer is not None:
                for k, seed in enumerate(run.seeds):
                    writer.write(step, seed, {name: v[k] for name, v in eval_out.items()})
                writer.flush()
        if do_ckpt:
            if writer is not None:
                writer.flush()  # every record up to this step is on disk before the checkpoint exists
            ckpt_metrics = (
                {**last_train, **{k: float(np.mean(v)) for k, v in eval_out.items()}} if do_eval else None
            )
            run.save(step, state, ckpt_metrics)
    run.final_state = state  # the caller's state was donated to the train step
    if not eval_out:  # resumed at the very end: evaluate what was restored
        eval_out = run.eval_metrics(state)
    result: dict[str, Any] = {"step": step}
    result.update({k: float(np.mean(v)) for k, v in eval_out.items()})
    result.update(last_train)
    result["per_seed"] = {
        str(seed): {name: float(v[i]) for name, v in eval_out.items()} for i, seed in enumerate(run.seeds)
    }
    return result


def _add_decode_metrics(result: dict[str, Any], run: _Run, state) -> None:
    """Seq2seq: adds test-split exact match and corpus BLEU of greedy and beam-search decoding
    (``rnnlab.generate.translation_metrics``, ``train.beam_size``): 'eval/<name>' means and per seed."""
    from rnnlab import generate  # pylint: disable=import-outside-toplevel

    canonical = run.dp.get_state(state)
    per_seed = []
    for k in range(len(run.seeds)):
        params = jax.tree.map(lambda x: x[k], canonical.params)  # noqa: B023
        per_seed.append(
            generate.translation_metrics(
                run.model,
                params,
                run.task,
                batch_size=run.eval_batch_size,
                beam_size=run.config.train.beam_size,
            )
        )
    for name in per_seed[0]:
        result[f"eval/{name}"] = float(np.mean([m[name] for m in per_seed]))
        for seed, m in zip(run.seeds, per_seed):
            result["per_seed"][str(seed)][f"eval/{name}"] = m[name]


def evaluate_checkpoint(
    workdir: str,
    *,
    step: int | None = None,
    best: bool = False,
    eval_batches: int | None = None,
    model=None,
    task=None,
) -> dict[str, Any]:
    """Evaluates a saved checkpoint of ``workdir`` on the test split.

    Args:
      workdir: a run directory (with ``config.json`` and ``checkpoints/``).
      step: which checkpoint; None = the latest (or the best with ``best=True``).
      best: use the best checkpoint by ``train.best_metric``.
      eval_batches: batches to use; None = ``config.train.eval_batches`` (0 = all).

    Returns:
      ``{'step', 'eval/<name>' (mean over seeds), 'per_seed': {seed: {...}}}``; also written to
      ``workdir/eval_<step>.json``.
    """
    config_path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{config_path} not found: is {workdir} a run directory made by `rnnlab train`?"
        )
    with open(config_path) as f:
        config = config_lib.resolve(json.load(f))
    config.parallel = "none" if config.parallel == "pmap" else config.parallel
    config_lib.validate(config)
    if task is None:
        from rnnlab.tasks import get_task  # pylint: disable=import-outside-toplevel

        task = get_task(config.task.name, **config.task.params.to_dict())
    if model is None:
        model = build_model(config.model, task.info)
    run = _Run(config, workdir, task, model, ())
    if best:
        step = run.ckpt.best_step()
    state = run.fresh_state()
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=run.dp.replicated), state
    )
    state, _, step = run.ckpt.restore(abstract, step)
    run.ckpt.close()
    if eval_batches is not None:
        run.config.train.eval_batches = eval_batches
    out = run.eval_metrics(state)
    result: dict[str, Any] = {"step": int(step)}
    result.update({k: float(np.mean(v)) for k, v in out.items()})
    result["per_seed"] = {
        str(seed): {name: float(v[i]) for name, v in out.items()} for i, seed in enumerate(run.seeds)
    }
    if task.info.kind == "seq2seq":
        _add_decode_metrics(result, run, state)
    with open(os.path.join(workdir, f"eval_{step}.json"), "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    return result
