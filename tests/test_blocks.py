"""Residual blocks (rnnlab/blocks.py) and the minGRU chrono initialisation: the LRU block and the stacked
minGRU learn a short adding problem, masking equals each sequence alone, the recurrent parameter group, and
the config keys model.block / model.norm."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import fast_jit

import rnnlab
from rnnlab.blocks import BatchStatNorm, BlockStack
from rnnlab.tasks import get_task
from rnnlab.training import builders
from rnnlab.training.config import apply_overrides, default_config, validate
from rnnlab.training.optim import param_labels

# The adding problem at T = 30 (Arjovsky et al. 2016); mse_over_baseline 1 = always predicting 1. Measured
# (/tmp/sci2/thresh.py, seeds 0, 1, 2 of _train_adding): lru 0.080, 0.088, 0.022; mingru 0.060, 0.048, 0.016;
# BOUND = 0.3 leaves > 3x margin over the worst seed.
LENGTH, HIDDEN, BATCH, STEPS, LR, BOUND = 30, 16, 32, 200, 3e-3, 0.3


def _train_adding(model, steps=STEPS, seed=0):
    """Adam with global-norm clipping, as experiments/adding.py; returns the test MSE / baseline (1/6)."""
    task = get_task("adding", length=LENGTH, num_eval=256)
    data = task.iterator("train", BATCH, seed=seed)
    params = fast_jit(model.init)(jax.random.key(seed), next(data)["inputs"])["params"]
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(LR))

    def loss(p, b):
        return jnp.mean((model.apply({"params": p}, b["inputs"])[:, 0] - b["targets"]) ** 2)

    @fast_jit
    def step(p, s, b):
        g = jax.grad(loss)(p, b)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = opt.init(params)
    for _ in range(steps):
        params, state = step(params, state, next(data))
    test = next(task.iterator("test", 256, seed=0, num_epochs=1))
    return float(fast_jit(loss)(params, test)) / task.info.baseline


# The recipes of experiments/adding.py: the LRU block with batch statistics and near-real eigenvalues, the
# minGRU block of Feng et al. with LayerNorm and the default gate.
RECIPES = {
    "lru": {
        "cell": "lru",
        "block": "lru",
        "norm": "batch",
        "cell_options": (("max_phase", 0.01), ("r_max", 0.999), ("r_min", 0.9)),
    },
    "mingru": {"cell": "mingru", "block": "mingru", "norm": "layer"},
}


@pytest.mark.parametrize("recipe", RECIPES)
def test_block_learns_short_adding_problem(recipe):
    model = rnnlab.SequenceModel(hidden_size=HIDDEN, num_layers=2, **RECIPES[recipe])
    assert _train_adding(model) < BOUND


def test_mingru_chrono_init_gives_uniform_time_constants():
    """At zero input the retention 1 - z is 1 - 1/tau with tau uniform in [2, T_max] (Tallec & Ollivier
    2018), whatever the gate slope."""
    tmax, h = 100.0, 4000
    x = jnp.zeros((1, 2))
    for slope in (1.0, 3.0):
        cell = rnnlab.get_cell("mingru", h, chrono_tmax=tmax, gate_slope=slope)
        params = cell.init(jax.random.key(1), jnp.zeros((1, h)), x)
        a, _ = cell.apply(params, cell.apply(params, x, method="project_inputs"), method="linear_coeffs")
        tau = 1.0 / (1.0 - np.asarray(a[0], np.float64))
        assert tau.min() >= 2.0 - 1e-3 and tau.max() <= tmax + 1e-2
        np.testing.assert_allclose(
            np.quantile(tau, [0.1, 0.5, 0.9]), 2 + (tmax - 2) * np.array([0.1, 0.5, 0.9]), rtol=0.05
        )
    plain = rnnlab.get_cell("mingru", h)
    params = plain.init(jax.random.key(1), jnp.zeros((1, h)), x)
    a, _ = plain.apply(params, plain.apply(params, x, method="project_inputs"), method="linear_coeffs")
    np.testing.assert_allclose(a, 0.5)  # without chrono: half the state is forgotten every step


def test_mingru_chrono_tmax_is_validated():
    with pytest.raises(ValueError, match="chrono_tmax must be > 2"):
        rnnlab.get_cell("mingru", 4, chrono_tmax=1.5)


@pytest.mark.parametrize("block", ["lru", "mingru"])
def test_block_model_with_lengths_equals_each_sequence_alone(block):
    """Padding changes nothing. norm='layer': a padded batch equals each sequence run alone. norm='batch'
    shares statistics across the batch, so there a padded sequence (padding set to 100) is compared with the
    same sequence unpadded, each in a batch of one."""
    model = rnnlab.SequenceModel(cell="mingru", hidden_size=4, num_layers=2, block=block, num_outputs=2)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 3)), jnp.float32)
    params = fast_jit(model.init)(jax.random.key(0), x)
    batch = model.clone(norm="batch")
    padded = jnp.where(jnp.arange(5)[None, :, None] < 3, x[1:], 100.0)

    @fast_jit  # every call below in one program: one compilation, not one per eagerly dispatched op
    def outputs(params, x, padded):
        out = model.apply(params, x, jnp.asarray([5, 3]))
        alone = [model.apply(params, x[b : b + 1, :n])[0] for b, n in enumerate((5, 3))]
        return (
            out,
            jnp.stack(alone),
            batch.apply(params, padded, jnp.asarray([3])),
            batch.apply(params, x[1:, :3]),
        )

    out, alone, padded_out, unpadded_out = outputs(params, x, padded)
    np.testing.assert_allclose(out, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(padded_out, unpadded_out, rtol=1e-5, atol=1e-6)


def test_head_last_reads_the_residual_stream_at_the_last_valid_step():
    model = rnnlab.SequenceModel(cell="lru", hidden_size=4, block="lru", num_layers=2, num_outputs=1)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6, 2)), jnp.float32)
    lengths = jnp.asarray([6, 2, 0])
    params = fast_jit(model.init)(jax.random.key(0), x)
    stack = BlockStack(model.make_cell, 4, kind="lru", num_layers=2)

    @fast_jit  # one program: one compilation, not one per eagerly dispatched op
    def got_and_want(params, x):
        _, y = stack.apply({"params": params["params"]["rnn"]}, x, lengths)
        head = params["params"]["head"]
        want = jnp.stack([y[0, 5], y[1, 1], jnp.zeros(4)]) @ head["kernel"] + head["bias"]
        return model.apply(params, x, lengths), want

    got, want = got_and_want(params, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_batch_stat_norm_uses_only_valid_steps():
    """Zero mean and unit variance per feature over the valid (b, t); padding does not change the result."""
    x = jnp.asarray(np.random.default_rng(2).normal(3.0, 2.0, size=(3, 6, 4)), jnp.float32)
    mask = jnp.arange(6)[None, :] < jnp.asarray([6, 2, 0])[:, None]
    norm = BatchStatNorm()
    params = norm.init(jax.random.key(0), x, mask)
    y = np.asarray(norm.apply(params, x, mask))[np.asarray(mask)]
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-3)
    repadded = jnp.where(mask[..., None], x, 100.0)
    np.testing.assert_allclose(norm.apply(params, repadded, mask)[mask], y, atol=1e-6)


@pytest.mark.parametrize("norm, shared", [("layer", False), ("batch", True)])
def test_block_norm_batch_shares_statistics_across_the_batch(norm, shared):
    model = rnnlab.SequenceModel(cell="lru", hidden_size=4, block="lru", norm=norm)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5, 2)), jnp.float32)
    params = model.init(jax.random.key(0), x)
    together, alone = model.apply(params, x)[0], model.apply(params, x[:1])[0]
    assert (not np.allclose(together, alone, atol=1e-6)) == shared


def test_block_options_are_validated():
    with pytest.raises(ValueError, match="valid blocks: plain, lru, mingru"):
        rnnlab.SequenceModel(cell="lru", block="transformer")
    with pytest.raises(ValueError, match="unidirectional"):
        rnnlab.SequenceModel(cell="lru", block="lru", bidirectional=True)
    with pytest.raises(ValueError, match="valid norms: layer, batch"):
        rnnlab.SequenceModel(cell="lru", block="lru", norm="group")


def test_config_builds_the_block_model_and_validates_its_keys():
    info = get_task("adding", length=5).info
    config = apply_overrides(
        default_config(), {"model.cell": "mingru", "model.block": "mingru", "model.norm": "batch"}
    )
    model = builders.build_model(config.model, info)
    assert (model.block, model.norm) == ("mingru", "batch")
    params = model.init(jax.random.key(0), jnp.zeros((1, 5, info.input_size)))["params"]
    assert {"encoder", "layer0", "norm0", "mlp0", "mlp_norm0"} <= set(params["rnn"])
    with pytest.raises(ValueError, match="model.block='gru' is not one of: plain, lru, mingru"):
        validate(apply_overrides(default_config(), {"model.block": "gru"}))
    bad = apply_overrides(default_config(), {"model.cell": "gru"})
    bad.model.block, bad.model.bidirectional = "lru", True
    with pytest.raises(ValueError, match="unidirectional and always residual"):
        validate(bad)


def test_lru_recurrent_parameters_get_the_recurrent_learning_rate():
    """Orvieto et al. 2023 train nu, theta, gamma and B at a smaller rate without weight decay."""
    model = rnnlab.SequenceModel(cell="lru", hidden_size=4, block="lru")
    params = model.init(jax.random.key(0), jnp.zeros((1, 2, 2)))["params"]
    labels = {
        jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(param_labels(params))
    }
    recurrent = {k for k, v in labels.items() if v == "recurrent"}
    cell = "['rnn']['layer0']['cell']"
    assert recurrent == {f"{cell}['{n}']" for n in ("nu_log", "theta_log", "gamma_log")} | {
        f"{cell}['B']['kernel']"
    }
