"""rnnlab.apps.runs: ONE load_run (latest, 'best' or a step; any seed) that restores only the parameters and
compiles nothing, and evaluate_run (``rnnlab eval``) reproducing the end-of-training evaluation."""

import logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rnnlab.apps.runs import evaluate_run, load_run
from rnnlab.training import checkpointing, optim, steps, train_and_evaluate
from rnnlab.training import config as config_lib


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """3 steps of 2 seeds, evaluated and checkpointed at every step, the best by eval/loss tracked."""
    c = config_lib.default_config()
    c.task.params = {"length": 5, "num_eval": 8}
    c.num_seeds = 2
    c.parallel = "none"
    c.model.cell = "rnn"
    c.model.cell_options = {"recurrent_init": "gaussian"}
    c.model.hidden_size = 4
    c.train.steps = 3
    c.train.batch_size = 4
    c.train.eval_every = 1
    c.train.checkpoint_every = 1
    c.train.keep_checkpoints = 3
    c.train.best_metric = "eval/loss"
    c.train.log_every = 1
    c.train.progress = False
    workdir = str(tmp_path_factory.mktemp("runs") / "run")
    return workdir, train_and_evaluate(c, workdir)


def _saved_params(workdir, step):
    """The parameters of ``step`` as saved (the whole state, restored as written)."""
    return ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))[
        "params"
    ]


def test_load_run_latest_best_step_and_seed(run_dir):
    workdir, _ = run_dir
    latest = load_run(workdir)
    assert latest.step == 3 and latest.seeds == (0, 1) and latest.seed == 0
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), best_metric="eval/loss")
    best_step = ckpt.best_step()
    ckpt.close()
    assert load_run(workdir, "best").step == best_step
    second = load_run(workdir, 2, seed_index=1)
    assert second.step == 2 and second.seed == 1
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(a, b[1]),
        jax.device_get(second.params),
        _saved_params(workdir, 2),
    )
    with pytest.raises(ValueError, match="seed_index=2 but the run has 2 seed"):
        load_run(workdir, seed_index=2)


def test_load_run_builds_no_optimizer_and_compiles_nothing(run_dir, monkeypatch, caplog):
    def forbidden(*args, **kwargs):
        raise AssertionError("load_run must not build an optimizer or a train step")

    monkeypatch.setattr(optim, "make_optimizer", forbidden)
    monkeypatch.setattr(steps, "make_train_step", forbidden)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        run = load_run(run_dir[0])
    assert run.step == 3
    assert not [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]


def test_evaluate_run_equals_the_end_of_training_evaluation(run_dir):
    """Both test the checkpoint model selection picked (the best on validation), on the test split."""
    workdir, result = run_dir
    out = evaluate_run(workdir)
    assert out["step"] == result["selected_step"]
    assert set(out["per_seed"]) == {"0", "1"}
    for seed, metrics in result["per_seed"].items():
        tested = {k: v for k, v in metrics.items() if k.startswith("test/")}
        assert set(tested) == set(out["per_seed"][seed]) and tested
        for name, value in tested.items():
            assert out["per_seed"][seed][name] == pytest.approx(value, rel=1e-5), name
    validation = evaluate_run(workdir, split="validation")
    for name, value in validation.items():
        if name.startswith("eval/"):
            assert value == pytest.approx(result[name], rel=1e-5), name
