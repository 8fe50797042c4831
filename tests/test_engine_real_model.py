"""The training engine on the real model, not only a toy: ``SequenceModel`` with an LSTM, whose time loop
(backend 'auto') resolves to the fused custom-VJP kernel on CPU. Determinism, resume = uninterrupted, sharded
and pmap steps = the single-device step, K seeds in one step (vmapped or mapped) = separate runs.

conftest.py compiles at XLA's optimisation level 0 for speed; ``test_at_default_xla_optimisation_level``
re-runs the tests marked ``default_opt`` in a fresh process at the default level, where XLA fuses and
reorders more (fused = xla loss and gradients, resume = uninterrupted; sharded = single device runs at level 0
only, to keep make test within 10 minutes).
"""

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import cpu_auto_backend
from test_parallel import assert_same_run, run
from test_train import NaNTask, batches, setup, tiny_config

import rnnlab
from rnnlab.scan import dispatch
from rnnlab.tasks import get_task
from rnnlab.training import builders, losses, sharding, steps, train_and_evaluate
from rnnlab.training.adapters import Adapter
from rnnlab.training.config import validate
from rnnlab.training.metrics import read_jsonl
from rnnlab.training.steps import EvalStep

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OPT = os.environ.get("RNNLAB_XLA_DEFAULT_OPT") == "1"  # set by the subprocess below


def real_config(**train):
    config = tiny_config(**train)
    config.model.cell = "lstm"
    config.model.hidden_size = 8
    return config


@functools.lru_cache
def single_device_run():
    return run("none", model=real_model())


def real_model(**rnn):
    config = real_config()
    for key, value in rnn.items():
        config.model.rnn[key] = value
    return builders.build_model(config.model, get_task("adding", length=6).info)


def test_the_real_model_runs_a_whole_sequence_kernel_on_cpu():
    model = real_model()
    assert isinstance(model, rnnlab.SequenceModel) and model.cell == "lstm"
    assert rnnlab.RNN(model.make_cell(parent=None)).plan().backend is cpu_auto_backend()


@pytest.mark.default_opt
def test_fused_equals_xla_loss_and_gradients():
    """One batch through SequenceModel(LSTM) with each backend: same loss, same gradient for every
    parameter."""
    task = get_task("adding", length=6)
    batch = next(task.iterator("train", 8, 0))
    fused, xla = real_model(backend="fused"), real_model(backend="xla")
    params = fused.init(jax.random.key(0), batch["inputs"])["params"]

    def loss(model, p):
        out = model.apply({"params": p}, batch["inputs"], batch["lengths"])
        return jnp.mean(jnp.square(out[:, 0] - batch["targets"]))

    got = jax.jit(jax.value_and_grad(lambda p: loss(fused, p)))(params)
    want = jax.jit(jax.value_and_grad(lambda p: loss(xla, p)))(params)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got[1], want[1])


def test_same_config_gives_identical_metrics(tmp_path):
    config = real_config(steps=4, log_every=2, eval_every=2)
    config.num_seeds = 2
    for name in ("a", "b"):
        train_and_evaluate(config, str(tmp_path / name))
    a = (tmp_path / "a" / "metrics.jsonl").read_text()
    assert a == (tmp_path / "b" / "metrics.jsonl").read_text()
    assert {r["seed"] for r in read_jsonl(str(tmp_path / "a" / "metrics.jsonl"))} == {0, 1}


class Crash(Exception):
    pass


class CrashTask(NaNTask):
    """Train batch number ``crash_at`` raises ``Crash`` (a killed process)."""

    def __init__(self, task, crash_at):
        super().__init__(task, bad=-1)
        self.crash_at = crash_at

    def iterator(self, split, batch_size, seed, **kw):
        it = super().iterator(split, batch_size, seed, **kw)
        if split == "train":
            crash_at, inner_next = self.crash_at, type(it).__next__

            def crashing_next(self):
                if self.n == crash_at:
                    raise Crash()
                return inner_next(self)

            type(it).__next__ = crashing_next
        return it


@pytest.mark.default_opt
def test_resume_after_crash_equals_uninterrupted(tmp_path):
    """Crash after the step-2 checkpoint, resume: the same final metrics and metrics.jsonl, byte for byte
    (the best checkpoint by validation loss is tested in both)."""
    config = real_config(steps=4, checkpoint_every=2, log_every=2, eval_every=2, best_metric="eval/loss")
    adding = get_task("adding", length=6)
    full = train_and_evaluate(config, str(tmp_path / "full"), task=NaNTask(adding, bad=-1))
    with pytest.raises(Crash):
        train_and_evaluate(config, str(tmp_path / "resumed"), task=CrashTask(adding, crash_at=3))
    resumed = train_and_evaluate(config, str(tmp_path / "resumed"), task=NaNTask(adding, bad=-1))
    assert resumed == full
    assert (tmp_path / "full" / "metrics.jsonl").read_text() == (
        tmp_path / "resumed" / "metrics.jsonl"
    ).read_text()


@pytest.mark.parametrize("mode", ["sharded", "pmap"])
def test_parallel_step_equals_single_device(mode):
    assert_same_run(run(mode, model=real_model()), single_device_run())


@pytest.mark.parametrize("seed_loop", steps.SEED_LOOPS)
def test_seeds_in_one_step_equal_separate_runs(seed_loop):
    config = real_config()
    model = real_model()
    seeds = [3, 4]
    task, state, step = setup(config, seeds, model=model, seed_loop=seed_loop)
    initial = jax.device_get(state)
    for b in batches(task, seeds, 2):
        state, metrics = step(state, b)
    _, _, step1 = setup(config, [4], model=model)
    one = jax.tree.map(lambda x: jnp.asarray(x[1:2]), initial)
    for b in batches(task, [4], 2):
        one, metrics1 = step1(one, b)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a[1], b[0], rtol=1e-5, atol=1e-6),
        jax.device_get(state.params),
        jax.device_get(one.params),
    )
    np.testing.assert_allclose(metrics["loss"][1], metrics1["loss"][0], rtol=1e-5)


def test_the_eval_step_gives_the_same_sums_vmapped_and_mapped():
    model = real_model()
    task = get_task("adding", length=6)
    batch = next(task.iterator("validation", 8, 0))
    # seeds initialised with lax.map, as rnnlab does: a vmapped orthogonal init is a batched QR, the
    # LAPACK deadlock of docs/known-issues
    params = jax.lax.map(
        lambda k: model.init(k, batch["inputs"])["params"], jax.random.split(jax.random.key(0), 3)
    )
    loss = losses.get_loss(task.info)
    forward = Adapter(model).forward
    got = {how: jax.jit(EvalStep(forward, loss, how))(params, None, batch)[0] for how in steps.SEED_LOOPS}
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got["map"], got["vmap"])
    assert got["map"]["loss"][0].shape == (3,)


def test_auto_seed_loop_maps_on_cpu_and_vmaps_sharded_seeds():
    assert not dispatch.AUTO["cpu"].seeds_vmap and dispatch.AUTO["gpu"].seeds_vmap  # README "Speed"
    platform_default = "vmap" if dispatch.AUTO[dispatch.default_platform()].seeds_vmap else "map"
    assert sharding.seed_loop("auto", "sharded") == platform_default
    assert sharding.seed_loop("auto", "seeds") == "vmap"  # the seed axis is the sharded one
    assert sharding.seed_loop("vmap", "none") == "vmap"
    config = real_config()
    config.seed_loop, config.parallel = "map", "seeds"
    with pytest.raises(ValueError, match="seed_loop='map'"):
        validate(config)


def test_at_default_xla_optimisation_level():
    if DEFAULT_OPT:
        pytest.skip("already the subprocess")
    env = {
        **os.environ,
        "RNNLAB_XLA_DEFAULT_OPT": "1",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",  # without conftest's level-0 flags
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "default_opt", __file__]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout, out.stdout[-2000:]
