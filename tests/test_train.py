"""The train step and loop: every parameter moves, no recompilation, seeds in one program, the non-finite
guard, determinism, the diagnostics hook, losses per task kind, and a state that is a pure pytree."""

import dataclasses
import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlab.tasks import get_task
from rnnlab.training import (
    NonFiniteError,
    TrainState,
    builders,
    checkpointing,
    losses,
    sharding,
    train_and_evaluate,
)
from rnnlab.training import config as config_lib
from rnnlab.training.adapters import Adapter
from rnnlab.training.evaluation import Evaluator
from rnnlab.training.loop import stack_seeds
from rnnlab.training.metrics import read_jsonl
from rnnlab.training.state import init_state
from rnnlab.training.steps import make_train_step


class TinyRNN(nn.Module):
    """A small Elman RNN with the SequenceModel call signature (fast to compile; for engine tests)."""

    hidden_size: int = 8
    num_outputs: int = 1
    vocab_size: int | None = None
    head: str = "last"

    @nn.compact
    def __call__(self, inputs, lengths=None, *, train=False, probes=None):
        x = nn.Embed(self.vocab_size, 4)(inputs) if self.vocab_size else inputs
        xp = nn.Dense(self.hidden_size, name="input_kernel")(x)
        w = self.param("recurrent_kernel", nn.initializers.orthogonal(), (self.hidden_size, self.hidden_size))
        b, t = xp.shape[:2]
        mask = jnp.ones((b, t)) if lengths is None else (jnp.arange(t)[None] < lengths[:, None])

        def step(h, inp):
            xt, mt = inp
            new = jnp.tanh(xt + h @ w)
            h = jnp.where(mt[:, None], new, h)
            return h, h

        h, ys = jax.lax.scan(step, jnp.zeros((b, self.hidden_size)), (xp.swapaxes(0, 1), mask.T))
        feats = ys.swapaxes(0, 1) if self.head == "all" else h
        return nn.Dense(self.num_outputs, name="head")(feats)


def tiny_config(**train_overrides):
    c = config_lib.default_config()
    c.task.name = "adding"
    c.task.params = {"length": 6}
    c.model.hidden_size = 8
    c.parallel = "none"
    c.optim.learning_rate = 1e-2
    c.train.steps = 10
    c.train.batch_size = 8
    c.train.log_every = 5
    c.train.eval_batches = 1
    c.train.progress = False
    for k, v in train_overrides.items():
        setattr(c.train, k, v)
    return config_lib.resolve(c)


def setup(config, seeds=(0,), model=None, seed_loop="vmap"):
    task = get_task(config.task.name, **config.task.params)
    model = model or TinyRNN()
    step = make_train_step(
        Adapter(model).forward, losses.get_loss(task.info), config.optim, config.train.steps, seed_loop
    )
    state = init_state(model, step.tx, task.info, list(seeds))
    return task, state, jax.jit(step, donate_argnums=0)


def batches(task, seeds, n, batch_size=8):
    its = [task.iterator("train", batch_size, s) for s in seeds]
    return [stack_seeds([next(it) for it in its]) for _ in range(n)]


def test_one_step_changes_every_parameter_and_second_step_does_not_recompile():
    config = tiny_config()
    task, state, step = setup(config)
    bs = batches(task, [0], 3)
    before = jax.device_get(state.params)
    state, metrics = step(state, bs[0])
    after = jax.device_get(state.params)
    moved = jax.tree.map(lambda a, b: bool(np.all(a != b)), before, after)
    assert all(jax.tree.leaves(moved)), moved
    assert int(state.step[0]) == 1
    for key in ("loss", "mse", "mse_over_baseline", "grad_norm", "update_norm", "param_norm", "clip_fired"):
        assert np.all(np.isfinite(metrics[key])), key
    np.testing.assert_allclose(metrics["mse_over_baseline"], metrics["mse"] * 6, rtol=1e-5)
    assert step._cache_size() == 1
    state, _ = step(state, bs[1])
    state, _ = step(state, bs[2])
    assert step._cache_size() == 1


def test_real_lstm_one_step_changes_every_parameter():
    config = tiny_config()
    config.model.cell = "lstm"
    task = get_task("adding", length=6)
    model = builders.build_model(config.model, task.info)
    _, state, step = setup(config, model=model)
    before = jax.device_get(state.params)
    state, _ = step(state, batches(task, [0], 1)[0])
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), before, jax.device_get(state.params))
    assert all(jax.tree.leaves(moved)), moved


def test_vmap_over_seeds_equals_separate_runs():
    config = tiny_config()
    seeds = [3, 4, 5]
    task, state, step = setup(config, seeds)
    w = np.asarray(state.params["recurrent_kernel"])
    assert not np.allclose(w[0], w[1])  # independent initialisations
    _, one, step1 = setup(config, [4])  # seed 4 alone initialises exactly as seed 4 among three
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(a[1], b[0]),
        jax.device_get(state.params),
        jax.device_get(one.params),
    )
    initial = jax.device_get(state)
    for b in batches(task, seeds, 3):
        state, m = step(state, b)
    for k, seed in enumerate(seeds):
        one = jax.tree.map(lambda x: jnp.asarray(x[k : k + 1]), initial)  # noqa: B023
        for b in batches(task, [seed], 3):
            one, m1 = step1(one, b)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a[k], b[0], rtol=1e-5, atol=1e-6),  # noqa: B023
            jax.device_get(state.params),
            jax.device_get(one.params),
        )
        np.testing.assert_allclose(m["loss"][k], m1["loss"][0], rtol=1e-5)
    assert step1._cache_size() == 1


class NaNTask:
    """Wraps a task; train batch number ``bad`` (0-based) gets NaN inputs. Iterators are resumable."""

    def __init__(self, task, bad):
        self.task, self.bad, self.info, self.splits = task, bad, task.info, task.splits

    def iterator(self, split, batch_size, seed, **kw):
        inner = self.task.iterator(split, batch_size, seed, **kw)
        if split != "train":
            return inner
        outer = self

        class It:
            n = 0

            def __iter__(self):
                return self

            def __next__(self):
                b = dict(next(inner))
                if self.n == outer.bad:
                    b["inputs"] = np.full_like(b["inputs"], np.nan)
                self.n += 1
                return b

            def get_state(self):
                return {"inner": inner.get_state(), "n": self.n}

            def set_state(self, s):
                inner.set_state(s["inner"])
                self.n = s["n"]

        return It()


def test_nonfinite_stops_and_last_checkpoint_restores(tmp_path):
    config = tiny_config(steps=20, checkpoint_every=5, log_every=2)
    task = NaNTask(get_task("adding", length=6), bad=7)  # step 8
    with pytest.raises(NonFiniteError, match=r"non-finite loss=nan .* at step 8"):
        train_and_evaluate(config, str(tmp_path), model=TinyRNN(), task=task)
    ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"))
    assert ckpt.all_steps() == [5]
    _, state, _ = setup(config)
    restored, data, step = ckpt.restore(jax.eval_shape(lambda: state))
    assert step == 5 and int(restored.step[0]) == 5
    assert isinstance(restored.opt_state[0], optax.ScaleByScheduleState | tuple)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored.params))
    assert checkpointing.iterator_states(data, "")[0]["n"] == 5


def test_nonfinite_skip_counts_and_continues(tmp_path):
    config = tiny_config(steps=10, log_every=5, nonfinite="skip")
    task = NaNTask(get_task("adding", length=6), bad=2)
    result = train_and_evaluate(config, str(tmp_path), model=TinyRNN(), task=task)
    assert math.isfinite(result["eval/loss"])
    records = [r for r in read_jsonl(str(tmp_path / "metrics.jsonl")) if "train/loss" in r]
    assert [r["train/nonfinite"] for r in records] == [1.0, 0.0]


@pytest.mark.slow  # the claim is tested on SequenceModel in test_engine_real_model.py (same name)
def test_same_config_gives_identical_metrics(tmp_path):
    config = tiny_config(steps=6, log_every=2, eval_every=3)
    config.num_seeds = 2
    for name in ("a", "b"):
        train_and_evaluate(config, str(tmp_path / name), model=TinyRNN())
    a = (tmp_path / "a" / "metrics.jsonl").read_text()
    assert a == (tmp_path / "b" / "metrics.jsonl").read_text()
    records = [json.loads(line) for line in a.splitlines()]
    assert {r["seed"] for r in records} == {0, 1}
    assert {r["step"] for r in records} == {2, 3, 4, 6}
    assert json.loads((tmp_path / "a" / "config.json").read_text())["num_seeds"] == 2


@pytest.mark.slow  # the claim is tested on SequenceModel in test_engine_real_model.py (same name)
def test_resume_after_crash_equals_uninterrupted(tmp_path):
    config = tiny_config(steps=12, checkpoint_every=4, log_every=4)
    full = train_and_evaluate(config, str(tmp_path / "full"), model=TinyRNN())

    class Crash(Exception):
        pass

    class CrashTask(NaNTask):
        def iterator(self, split, batch_size, seed, **kw):
            it = super().iterator(split, batch_size, seed, **kw)
            if split == "train":
                orig = type(it).__next__

                def nxt(self):
                    if self.n == 6:
                        raise Crash()
                    return orig(self)

                type(it).__next__ = nxt
            return it

    with pytest.raises(Crash):
        train_and_evaluate(
            config,
            str(tmp_path / "resumed"),
            model=TinyRNN(),
            task=CrashTask(get_task("adding", length=6), bad=-1),
        )
    resumed = train_and_evaluate(
        config, str(tmp_path / "resumed"), model=TinyRNN(), task=NaNTask(get_task("adding", length=6), bad=-1)
    )
    assert resumed == full
    assert (tmp_path / "full" / "metrics.jsonl").read_text() == (
        tmp_path / "resumed" / "metrics.jsonl"
    ).read_text()


def test_diagnostics_hook_gets_one_seed_state_and_batch(tmp_path):
    config = tiny_config(steps=4, log_every=4)
    config.num_seeds = 2
    config.diagnostics.every = 2
    calls = []

    def hook(state, batch):
        calls.append((int(state.step), batch["inputs"].shape))
        out = TinyRNN().apply({"params": state.params}, batch["inputs"], batch["lengths"])
        return {"diag/out_norm": jnp.linalg.norm(out), "diag/vec": jnp.arange(3.0)}

    train_and_evaluate(config, str(tmp_path), model=TinyRNN(), extra_metrics=[hook])
    # Step 0 (the initialisation, before any update), then every 2 steps; once per seed.
    assert calls == [(0, (8, 6, 2))] * 2 + [(2, (8, 6, 2))] * 2 + [(4, (8, 6, 2))] * 2
    records = [r for r in read_jsonl(str(tmp_path / "metrics.jsonl")) if "diag/out_norm" in r]
    assert [(r["step"], r["seed"]) for r in records] == [(0, 0), (0, 1), (2, 0), (2, 1), (4, 0), (4, 1)]
    assert records[0]["diag/vec"] == [0.0, 1.0, 2.0]


def test_losses_per_kind():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    cls = losses.Loss("classification")
    out = cls.finalize(cls.stats(logits, {"targets": jnp.array([0, 0, 0])}))
    expect = np.mean(-jax.nn.log_softmax(logits)[:, 0])
    np.testing.assert_allclose(out["loss"], expect, rtol=1e-6)
    np.testing.assert_allclose(out["accuracy"], 2 / 3)

    seq = jnp.stack([logits, logits])  # [B=2, T=3, C=2]
    batch = {"targets": jnp.zeros((2, 3), jnp.int32), "lengths": jnp.array([3, 1])}
    lm = losses.Loss("lm", token_unit="char")
    out = lm.finalize(lm.stats(seq, batch))
    ce = -jax.nn.log_softmax(logits)[:, 0]
    np.testing.assert_allclose(out["loss"], (ce.sum() + ce[0]) / 4, rtol=1e-6)
    np.testing.assert_allclose(out["bits_per_char"], out["loss"] / np.log(2), rtol=1e-6)
    # a word-level model reports perplexity and bits per word, never bits per character
    words = losses.Loss("lm", token_unit="word").finalize(lm.stats(seq, batch))
    assert set(out) ^ set(words) == {"bits_per_char", "bits_per_word", "perplexity"}
    np.testing.assert_allclose(words["bits_per_word"], out["bits_per_char"], rtol=1e-6)
    np.testing.assert_allclose(words["perplexity"], np.exp(out["loss"]), rtol=1e-6)
    batch["target_mask"] = jnp.array([[0, 0, 1], [0, 0, 0]], jnp.float32)
    out = lm.finalize(lm.stats(seq, batch))
    np.testing.assert_allclose(out["loss"], ce[2], rtol=1e-6)

    reg = losses.get_loss(get_task("adding", length=4).info)
    out = reg.finalize(
        reg.stats(
            jnp.array([[1.0], [0.0]]),
            {"targets": jnp.array([0.0, 0.0]), "example_mask": jnp.array([1.0, 0.0])},
        )
    )
    np.testing.assert_allclose(out["mse"], 1.0)
    np.testing.assert_allclose(out["mse_over_baseline"], 6.0, rtol=1e-6)


def test_model_kwargs_from_config():
    config = config_lib.default_config()
    config.model.cell_options = {"forget_bias": 1.0}
    config.model.rnn.remat_chunk = 16
    config.model.rnn.hoist = "false"
    info = get_task("copy", length=4).info
    kw = builders.model_kwargs(config.model, info)
    assert kw["head"] == "all" and kw["vocab_size"] == 10 and kw["num_outputs"] == 10
    assert kw["cell_options"] == (("forget_bias", 1.0),) and kw["embed_dim"] is None
    rnn = dict(kw["rnn_options"])
    assert rnn["remat_chunk"] == 16 and rnn["hoist"] is False and rnn["backend"] == "auto"
    assert builders.model_kwargs(config.model, get_task("adding", length=4).info)["head"] == "last"
    model = builders.build_model(config.model, info)  # the options reach every rnnlab.RNN of the model
    assert model.rnn_options == kw["rnn_options"] and hash(model) == hash(
        builders.build_model(config.model, info)
    )


def test_state_is_a_pure_pytree_shared_by_equal_models():
    """No static fields (no apply_fn): separately built equal models give equal tree structures, and a state
    passes through jit as plain arrays."""
    config = tiny_config()
    _, a, _ = setup(config)
    _, b, _ = setup(config, model=TinyRNN())
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert [f.name for f in dataclasses.fields(TrainState)] == [
        "step",
        "params",
        "opt_state",
        "rng",
        "skipped",
        "carry",
    ]
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(jax.jit(lambda s: s)(a)))


def test_eval_pads_last_batch():
    config = tiny_config()
    task, state, _ = setup(config)
    dp = sharding.DataParallel("none")
    loss = losses.get_loss(task.info)
    # 1000 test examples: 3 batches of 400 (the last padded) == the exact mean over all examples.
    got = Evaluator(Adapter(TinyRNN()), loss, task, dp, 400, 0)(state.params, 1)
    exact = Evaluator(Adapter(TinyRNN()), loss, task, dp, 500, 0)(state.params, 1)
    np.testing.assert_allclose(got["eval/mse"], exact["eval/mse"], rtol=1e-5)
