"""The optax chain: optimizers, schedules, clipping, and the recurrent parameter group."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlab.training import config as config_lib
from rnnlab.training import optim

PARAMS = {
    "cell": {"recurrent_kernel": jnp.ones((2, 2)), "input_kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
    "head": {"kernel": jnp.ones((2, 1))},
}
GRADS = {
    "cell": {
        "recurrent_kernel": jnp.full((2, 2), 0.5),
        "input_kernel": jnp.full((3, 2), 0.5),
        "bias": jnp.full(2, 0.5),
    },
    "head": {"kernel": jnp.full((2, 1), 0.5)},
}


def optim_config(**kw):
    c = config_lib.default_config().optim
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def update(cfg, grads=GRADS, params=PARAMS, steps=1):
    tx = optim.make_optimizer(cfg, 100)
    state = jax.jit(tx.init)(params)
    step = jax.jit(tx.update)
    for _ in range(steps):
        updates, state = step(grads, state, params)
    return updates


def test_param_labels_find_recurrent_kernels():
    labels = optim.param_labels(PARAMS)
    assert labels["cell"]["recurrent_kernel"] == "recurrent"
    assert {labels["cell"]["input_kernel"], labels["cell"]["bias"], labels["head"]["kernel"]} == {"default"}


def test_recurrent_learning_rate_scale():
    u = update(optim_config(name="sgd", learning_rate=0.1, clip="none", recurrent_lr_scale=0.25))
    np.testing.assert_allclose(u["cell"]["input_kernel"], -0.05)
    np.testing.assert_allclose(u["cell"]["recurrent_kernel"], -0.0125)


def test_weight_decay_skips_recurrent_weights_and_biases():
    zero = {k: {n: jnp.zeros_like(v) for n, v in d.items()} for k, d in GRADS.items()}
    u = update(optim_config(name="sgd", learning_rate=1.0, clip="none", weight_decay=0.1), grads=zero)
    np.testing.assert_allclose(u["cell"]["input_kernel"], -0.1)
    np.testing.assert_allclose(u["head"]["kernel"], -0.1)
    np.testing.assert_allclose(u["cell"]["recurrent_kernel"], 0.0)
    np.testing.assert_allclose(u["cell"]["bias"], 0.0)
    u = update(
        optim_config(
            name="adamw", learning_rate=1.0, clip="none", weight_decay=0.1, recurrent_weight_decay=0.3
        ),
        grads=zero,
    )
    np.testing.assert_allclose(u["cell"]["recurrent_kernel"], -0.3)
    np.testing.assert_allclose(u["cell"]["input_kernel"], -0.1)


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam", "adamw"])
def test_every_optimizer_descends(name):
    u = update(optim_config(name=name, learning_rate=0.01), steps=2)
    for leaf in (u["cell"]["recurrent_kernel"], u["head"]["kernel"]):
        assert np.all(np.asarray(leaf) < 0)


def test_clipping_and_clip_fired():
    norm = float(optax.tree.norm(GRADS))  # sqrt(13 * 0.25)
    u = update(optim_config(name="sgd", learning_rate=1.0, clip="global_norm", clip_value=norm / 2))
    np.testing.assert_allclose(optax.tree.norm(u), norm / 2, rtol=1e-6)
    assert bool(optim.clip_fired("global_norm", norm / 2, GRADS))
    assert not bool(optim.clip_fired("global_norm", norm * 2, GRADS))
    u = update(optim_config(name="sgd", learning_rate=1.0, clip="value", clip_value=0.2))
    np.testing.assert_allclose(u["cell"]["bias"], -0.2)
    assert bool(optim.clip_fired("value", 0.2, GRADS)) and not bool(optim.clip_fired("value", 0.6, GRADS))
    assert not bool(optim.clip_fired("none", 0.0, GRADS))


def test_schedules():
    s = optim.make_schedule("warmup_cosine", 1.0, 100, warmup_steps=10, min_lr_ratio=0.1)
    np.testing.assert_allclose([s(0), s(5), s(10), s(100)], [0.0, 0.5, 1.0, 0.1], atol=1e-6)
    s = optim.make_schedule("step", 1.0, 100, warmup_steps=4, boundaries=(10, 20), decay_factor=0.5)
    np.testing.assert_allclose([s(2), s(4), s(9), s(10), s(19), s(20)], [0.5, 1.0, 1.0, 0.5, 0.5, 0.25])
    s = optim.make_schedule("constant", 0.3, 100)
    np.testing.assert_allclose([s(0), s(99)], [0.3, 0.3])


def test_registries_name_the_valid_choices():
    with pytest.raises(
        ValueError, match="unknown optimizer 'adagrad'; valid: sgd, momentum, rmsprop, adam, adamw"
    ):
        optim.make_base_optimizer("adagrad", 0.1)
    with pytest.raises(ValueError, match="unknown schedule 'linear'; valid: constant, warmup_cosine, step"):
        optim.make_schedule("linear", 0.1, 10)
    with pytest.raises(ValueError, match="unknown clip 'norm'; valid: none, global_norm, value"):
        optim.make_clip("norm", 1.0)
    assert config_lib.default_config().optim.name in optim.OPTIMIZERS
