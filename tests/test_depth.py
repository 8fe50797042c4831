"""rnnlab.analysis.depth: per-layer / per-step gradient norms against jax.grad of the same nets written as
plain Python loops, the tied deep net == the tanh RNN identity, decay below 1 at small init, and the study."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlab.analysis import depth
from rnnlab.cells.vanilla import recurrent_initializer

H, L, B, D = 5, 6, 3, 2


def _unit(key, n):
    v = jax.random.normal(key, (n,))
    return v / jnp.linalg.norm(v)


def _deep_params(kind, key, radius=1.0):
    ks = jax.random.split(key, 4)
    init = recurrent_initializer("orthogonal", radius)
    draw = lambda k: jnp.stack([init(kk, (H, H)) for kk in jax.random.split(k, L)])
    params = {"w": draw(ks[0]), "b": 0.3 * jax.random.normal(ks[1], (L, H))}
    if kind == "highway":
        params |= {"w_t": draw(ks[2]), "b_t": -1.0 + 0.3 * jax.random.normal(ks[3], (L, H))}
    return params


def _loop_deep_norms(kind, params, h0, v):
    """||dL/dh_l||, l = 1..L: a Python loop over layers; for each l, jax.grad of the rest of the net."""
    layer = depth.LAYERS[kind]
    p = [{k: a[i] for k, a in params.items()} for i in range(L)]
    hs = [h0]
    for i in range(L):
        hs.append(layer(p[i], hs[-1]))

    def rest(h, start):
        for i in range(start, L):
            h = layer(p[i], h)
        return jnp.sum(h @ v)

    return np.array([np.linalg.norm(jax.grad(rest)(hs[i], i), axis=-1).mean() for i in range(1, L + 1)])


@pytest.mark.parametrize("kind", ["tanh", "highway"])
def test_deep_norms_equal_grad_of_a_python_loop(kind):
    params = _deep_params(kind, jax.random.PRNGKey(0))
    h0 = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (B, H)))
    v = _unit(jax.random.PRNGKey(2), H)
    got = np.asarray(depth.deep_grad_norms(kind, params, h0, v))
    np.testing.assert_allclose(got, _loop_deep_norms(kind, params, h0, v), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[-1], 1.0, rtol=1e-6)  # dL/dh_L = v, a unit vector, for every example


def _loop_rnn_norms(cell, params, x, v):
    """||dL/dh_t||, t = 1..T: a Python loop over cell.step; for each t, jax.grad of the remaining steps."""
    bound = lambda method, *a: cell.apply({"params": params}, *a, method=method)
    xp = [bound("project_inputs", x[:, t]) for t in range(x.shape[1])]
    carries = [cell.init_carry(None, (x.shape[0],))]
    for t in range(x.shape[1]):
        carries.append(bound("step", carries[-1], xp[t])[0])

    def rest(carry, start):
        for t in range(start, x.shape[1]):
            carry = bound("step", carry, xp[t])[0]
        return jnp.sum(bound("hidden", carry) @ v)

    return np.array(
        [
            np.linalg.norm(bound("hidden", jax.grad(rest)(carries[t], t)), axis=-1).mean()
            for t in range(1, x.shape[1] + 1)
        ]
    )


@pytest.mark.parametrize("name, options", [("rnn", {}), ("lstm", {"forget_bias": 2.0}), ("gru", {})])
def test_rnn_norms_equal_grad_of_a_python_loop_over_the_cell(name, options):
    x = jax.random.normal(jax.random.PRNGKey(3), (B, L, D))
    cell, params = depth.init_cell(name, jax.random.PRNGKey(4), x, hidden_size=H, **options)
    v = _unit(jax.random.PRNGKey(5), H)
    got = np.asarray(depth.rnn_grad_norms(cell, params, x, v))
    np.testing.assert_allclose(got, _loop_rnn_norms(cell, params, x, v), rtol=1e-4, atol=1e-7)


def test_tanh_rnn_on_zero_inputs_is_the_tied_deep_net():
    """The identity behind '100 steps ~ 100 layers': h_t = tanh(0 W_ih + b + h_{t-1} W) from h_0 is the deep
    tanh net with W_l = W and b_l = b for every layer, so the gradient norms agree layer for step."""
    x = jnp.zeros((B, L, D))
    cell, params = depth.init_cell("rnn", jax.random.PRNGKey(6), x, hidden_size=H, radius=1.3)
    params = {
        **params,
        "input": {**params["input"], "bias": 0.2 * jax.random.normal(jax.random.PRNGKey(7), (H,))},
    }
    h0 = jnp.tanh(jax.random.normal(jax.random.PRNGKey(8), (B, H)))
    v = _unit(jax.random.PRNGKey(9), H)
    tied = {
        "w": jnp.broadcast_to(params["recurrent_kernel"], (L, H, H)),
        "b": jnp.broadcast_to(params["input"]["bias"], (L, H)),
    }
    rnn = np.asarray(depth.rnn_grad_norms(cell, params, x, v, initial_carry=h0))
    deep = np.asarray(depth.deep_grad_norms("tanh", tied, h0, v))
    np.testing.assert_allclose(rnn, deep, rtol=1e-5, atol=1e-7)
    assert np.ptp(deep) > 0.01  # not trivially equal: the gradient changes with distance


def test_tanh_decays_below_one_at_small_init_and_never_faster_than_the_bound():
    """Orthogonal W with radius r: ||J_l|| <= ||W|| = r since tanh' <= 1, so each ratio
    ||dL/dh_(l-1)|| / ||dL/dh_l|| is <= r; at r = 0.5 both the deep net and the RNN decay."""
    r = 0.5
    x = jax.random.normal(jax.random.PRNGKey(10), (B, L, D))
    v = _unit(jax.random.PRNGKey(11), H)
    cell, params = depth.init_cell("rnn", jax.random.PRNGKey(12), x, hidden_size=H, radius=r)
    h0 = jnp.tanh(jax.random.normal(jax.random.PRNGKey(13), (B, H)))
    deep = {"w": _deep_params("tanh", jax.random.PRNGKey(14), r)["w"], "b": jnp.zeros((L, H))}
    for norms in (
        np.asarray(depth.rnn_grad_norms(cell, params, x, v)),
        np.asarray(depth.deep_grad_norms("tanh", deep, h0, v)),
    ):
        # per-example norms obey the bound; their batch means obey it too
        assert np.all(norms[:-1] <= r * norms[1:] * (1 + 1e-5))
        assert depth.geometric_rate(norms) < r + 1e-6
    assert depth.geometric_rate([0.125, 0.25, 0.5, 1.0]) == pytest.approx(0.5)
    assert depth.geometric_rate([0.0, 1e-3, 1e-2, 0.1, 1.0]) == pytest.approx(0.1)  # underflowed end left out
    assert np.isnan(depth.geometric_rate([0.0, 1.0]))


@pytest.mark.slow
def test_run_study_writes_figure_json_and_a_table_of_every_net(tmp_path):
    config = depth.default_config()
    config.width, config.depth, config.seeds, config.batch_size, config.radii = 4, 5, 3, 2, (0.5,)
    sections = depth.run_study(config, str(tmp_path), title="depth_vs_time", log=lambda *_: None)
    (section,) = sections
    assert os.path.exists(section.figures[0][0])
    for net in depth.NETS:
        assert f"| {net} |" in section.body
    with open(tmp_path / "depth_vs_time.json") as f:
        saved = json.load(f)
    assert len(saved["rows"]) == 2 * 3 * len(depth.NETS)  # radii 1 and 0.5, 3 seeds
    for net, curve in saved["curves"].items():
        assert len(curve) == 5 and curve[-1] == pytest.approx(1.0, rel=1e-5), net
    at_half = [r for r in saved["rows"] if r["radius"] == 0.5 and "tanh" in r["network"]]
    assert all(r["rate per layer/step (geometric mean)"] < 0.5 + 1e-5 for r in at_half)
