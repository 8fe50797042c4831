"""Orbax checkpoints: what is kept, restoring optax states, unreadable checkpoints, and SIGKILL + restart
through the CLI ending bit-identical to an uninterrupted run (damaged checkpoints: test_integrity.py)."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from test_integrity import flip_byte, tb_steps
from test_train import TinyRNN, tiny_config

from rnnlab import cli
from rnnlab.tasks import get_task
from rnnlab.training import checkpointing, optim, train_and_evaluate
from rnnlab.training.loop import FINAL_FILE
from rnnlab.training.state import abstract_params, init_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_state(seed=0):
    config = tiny_config()
    tx = optim.make_optimizer(config.optim, 10)
    return init_state(TinyRNN(), tx, get_task("adding", length=4).info, [seed])


def test_keeps_last_k_and_best(tmp_path):
    state = small_state()
    ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2, best_metric="eval/loss", best_mode="min")
    for step, loss in [(1, 5.0), (2, 1.0), (3, 4.0), (4, None), (5, 3.0)]:
        ckpt.save(
            step,
            state,
            {"iterators": [{"batch": step}]},
            {"seed": 0},
            metrics=None if loss is None else {"eval/loss": loss},
        )
    assert ckpt.all_steps() == [2, 4, 5]
    assert ckpt.best_step() == 2 and ckpt.latest_step() == 5
    restored, data, step = ckpt.restore(jax.eval_shape(lambda: state), step=2)
    assert step == 2 and data == {"iterators": [{"batch": 2}]}
    # The optax state comes back with its NamedTuple types (restored against the abstract target).
    assert jax.tree.structure(restored.opt_state) == jax.tree.structure(state.opt_state)
    assert any(
        isinstance(s, optax.ScaleByAdamState)
        for s in jax.tree.leaves(restored.opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
    )
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(state))
    # Only the parameters, against shapes from jax.eval_shape (no optimizer state is read or built).
    abstract = abstract_params(TinyRNN(), get_task("adding", length=4).info, 1)
    params, step = ckpt.restore_params(abstract, step=5)
    assert step == 5
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(params), jax.device_get(state.params))


def test_unreadable_checkpoint_names_directory_and_remedy(tmp_path):
    """An intact checkpoint that does not fit the model (damaged ones: test_integrity.py)."""
    config = tiny_config(steps=2, checkpoint_every=1)
    workdir = tmp_path / "run"
    train_and_evaluate(config, str(workdir), model=TinyRNN())
    config.train.steps = 4
    with pytest.raises(checkpointing.CheckpointError) as err:
        train_and_evaluate(config, str(workdir), model=TinyRNN(hidden_size=16))
    message = str(err.value)
    assert str(workdir / "checkpoints" / "2") in message and "Delete that step directory" in message
    assert "others here: [1]" in message
    assert not isinstance(err.value, checkpointing.DamagedCheckpointError)


def _cli(workdir, steps):
    return [
        sys.executable,
        "-m",
        "rnnlab",
        "train",
        "--config",
        "experiments/adding.py:8",
        "--workdir",
        workdir,
        f"--config.train.steps={steps}",
        "--config.train.batch_size=8",
        "--config.model.hidden_size=8",
        "--config.train.checkpoint_every=100",
        "--config.train.log_every=50",
        "--config.train.eval_every=0",
        "--config.train.eval_batches=1",
        "--config.task.params.num_eval=8",
        "--config.diagnostics.every=0",
        "--config.train.progress=false",
        "--config.train.best_metric=",
    ]


def _params(workdir):
    step = max(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
    state = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))
    return step, state


def test_sigkill_and_restart_through_the_cli_is_bit_identical(tmp_path, capsys):
    """kill -9 mid-run, the same command again: parameters, metrics.jsonl and TensorBoard equal an
    uninterrupted run's; then a byte flipped in the last checkpoint makes `rnnlab eval` refuse it."""
    steps = 400  # hundreds of steps/s here: the kill lands long before the end
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    proc = subprocess.Popen(_cli(killed, steps), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = os.path.join(killed, "checkpoints", "100")
    deadline = time.time() + 300
    while not os.path.isdir(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not os.path.exists(os.path.join(killed, FINAL_FILE))
    subprocess.run(_cli(killed, steps), cwd=ROOT, check=True, capture_output=True)
    subprocess.run(_cli(full, steps), cwd=ROOT, check=True, capture_output=True)
    step_a, a = _params(full)
    step_b, b = _params(killed)
    assert step_a == step_b == steps
    jax.tree.map(np.testing.assert_array_equal, a, b)
    with open(os.path.join(full, "metrics.jsonl")) as fa, open(os.path.join(killed, "metrics.jsonl")) as fb:
        assert fa.read() == fb.read()
    tb = [tb_steps(d) for d in (full, killed)]
    assert tb[0] == tb[1] and max(tb[1].values()) == 1

    flip_byte(tmp_path / "killed" / "checkpoints" / str(steps))
    assert cli.main(["eval", "--workdir", killed]) == 3
    err = capsys.readouterr().err
    assert (
        f"checkpoints/{steps} is damaged" in err and f"intact checkpoints of this run: [{steps - 100}]" in err
    )
