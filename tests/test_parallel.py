"""Data parallelism on 4 fake CPU devices: the sharded and pmap steps equal the single-device step (two
processes: test_multihost.py)."""

import functools

import jax
import numpy as np
import pytest
from test_train import TinyRNN, batches, tiny_config

from rnnlab.tasks import get_task
from rnnlab.training import losses, sharding, train_and_evaluate
from rnnlab.training.adapters import Adapter
from rnnlab.training.evaluation import Evaluator
from rnnlab.training.state import init_state
from rnnlab.training.steps import make_train_step


def run(mode, seeds=(0, 1), steps=2, batch_size=8, model=None):
    """``steps`` train steps of ``model`` (default: ``TinyRNN``) in ``mode``, then an evaluation: (params,
    last metrics, eval metrics, the DataParallel)."""
    config = tiny_config()
    task = get_task("adding", length=6)
    adapter = Adapter(model or TinyRNN())
    loss = losses.get_loss(task.info)
    dp = sharding.DataParallel(mode)
    step = make_train_step(adapter.forward, loss, config.optim, config.train.steps)
    state = dp.put_state(init_state(adapter.model, step.tx, task.info, list(seeds)))
    compiled = dp.compile_train(step)
    for b in batches(task, seeds, steps, batch_size):
        state, metrics = compiled(state, dp.put_batch(b))
    ev = Evaluator(adapter, loss, task, dp, batch_size, 2)(state.params, len(seeds))
    return jax.device_get(dp.get_state(state).params), jax.device_get(metrics), ev, dp


def assert_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5), a, b)


@functools.lru_cache
def reference():
    return run("none")


def assert_same_run(got, ref):
    """Two ``run`` results: equal parameters, train metrics and eval metrics (float32 rounding)."""
    assert got[3].size == 4
    assert_close(got[0], ref[0])
    for key in ("loss", "grad_norm", "update_norm", "param_norm"):
        np.testing.assert_allclose(got[1][key], ref[1][key], rtol=1e-5, atol=1e-6)
    for key in ref[2]:
        np.testing.assert_allclose(got[2][key], ref[2][key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # the same check on SequenceModel: test_engine_real_model.py (also at XLA's default level)
@pytest.mark.parametrize("mode", ["sharded", "pmap"])
def test_parallel_step_equals_single_device(mode):
    assert jax.device_count() == 4
    assert_same_run(run(mode), reference())


def test_sharded_batch_is_split_over_devices():
    dp = sharding.DataParallel("sharded")
    x = dp.put_batch({"inputs": np.zeros((2, 8, 3, 1))})["inputs"]
    assert {s.data.shape for s in x.addressable_shards} == {(2, 2, 3, 1)}
    y = dp.put_batch({"inputs": np.zeros((8, 3))}, seed_axis=False)["inputs"]
    assert {s.data.shape for s in y.addressable_shards} == {(2, 3)}


def test_batch_not_divisible_by_devices_is_a_clear_error(tmp_path):
    config = tiny_config()
    config.parallel = "sharded"
    config.train.batch_size = 6
    with pytest.raises(
        ValueError,
        match="train.batch_size=6 is not divisible by the 4 data-parallel devices: use a multiple of 4",
    ):
        train_and_evaluate(config, str(tmp_path / "run"), model=TinyRNN())
    assert not (tmp_path / "run").exists()
