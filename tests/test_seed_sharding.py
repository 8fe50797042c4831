"""K seeds sharded over 4 fake CPU devices (parallel='seeds'): the same states, metrics and evaluation as the
same seeds on one device, through the compiled step and through a whole run."""

import json

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

SEEDS = (0, 1, 2, 3)


def run(mode, seeds=SEEDS, steps=2):
    config = tiny_config()
    task = get_task("adding", length=6)
    adapter = Adapter(TinyRNN())
    loss = losses.get_loss(task.info)
    dp = sharding.DataParallel(mode)
    step = make_train_step(adapter.forward, loss, config.optim, config.train.steps)
    state = dp.put_state(init_state(adapter.model, step.tx, task.info, list(seeds)))
    compiled = dp.compile_train(step)
    for b in batches(task, seeds, steps):
        state, metrics = compiled(state, dp.put_batch(b))
    evaluation = Evaluator(adapter, loss, task, dp, 8, 2)(state.params, len(seeds))
    return state, jax.device_get(metrics), evaluation


def assert_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


def test_seeds_sharded_over_devices_equal_one_device():
    assert jax.device_count() == 4
    state, metrics, evaluation = run("seeds")
    # Each device holds one seed's state: the seed axis is split, not replicated.
    params = jax.tree.leaves(state.params)[0]
    assert {s.data.shape[0] for s in params.addressable_shards} == {1} and len(
        params.sharding.device_set
    ) == 4
    ref_state, ref_metrics, ref_evaluation = run("none")
    assert_close(jax.device_get(state), jax.device_get(ref_state))
    assert_close(metrics, ref_metrics)
    assert_close(evaluation, ref_evaluation)


def test_seeds_not_divisible_by_devices_is_a_clear_error():
    with pytest.raises(ValueError, match="num_seeds=2 is not divisible by the 4 devices of parallel='seeds'"):
        run("seeds", seeds=(0, 1))


@pytest.mark.slow  # ~25 s: two whole runs (train, evaluate, checkpoint)
def test_a_run_with_sharded_seeds_equals_one_device(tmp_path):
    results = {}
    for mode in ("seeds", "none"):
        config = tiny_config(steps=4)
        config.num_seeds, config.parallel = 4, mode
        train_and_evaluate(config, str(tmp_path / mode), model=TinyRNN())
        lines = (tmp_path / mode / "metrics.jsonl").read_text().splitlines()
        results[mode] = [json.loads(line) for line in lines]
    assert [r.keys() for r in results["seeds"]] == [r.keys() for r in results["none"]]
    for got, want in zip(results["seeds"], results["none"], strict=True):
        for key, value in want.items():
            if isinstance(value, float) and not key.endswith("steps_per_second"):
                np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
