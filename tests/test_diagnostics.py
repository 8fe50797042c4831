"""Behaviour tests of the diagnostics (rnnlab.analysis): each number equals the slow way, jax.jacrev of the
unrolled map, or a hand computation; layers are found by running the model."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab
from rnnlab import SequenceModel, get_cell
from rnnlab.analysis import diagnostics as dg
from rnnlab.analysis.gradients import masked_time_mean

B, T, D, H = 2, 4, 2, 3
LENGTHS = jnp.array([4, 2])


def _batch(key=0):
    x = jax.random.normal(jax.random.key(key), (B, T, D))
    return {"inputs": x, "lengths": LENGTHS, "targets": jnp.arange(B, dtype=jnp.float32)}


def _mse(out, batch):
    return jnp.mean((out[:, 0] - batch["targets"]) ** 2)


def _init(model, batch, key=1):
    """Random parameters with the model's shapes (tracing only: far cheaper than compiling ``model.init``)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), batch["inputs"], batch["lengths"])["params"]
    leaves, treedef = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(key), len(leaves))
    return jax.tree.unflatten(
        treedef, [0.7 * jax.random.normal(k, s.shape, s.dtype) for k, s in zip(keys, leaves, strict=True)]
    )


def _slow_grad_norms(model, params, batch, g=None):
    """||dL/dh_t|| the slow way: the cell's equations unrolled in Python, one sequence at a time, with a
    perturbation delta_t added to h_t (the carry passed on to step t + 1; the output y_t is emitted before
    it). ``g``: :func:`_slow_grads` if already computed (e.g. inside a bigger jitted program)."""
    if g is None:
        g = jax.jit(functools.partial(_slow_grads, model))(params, batch)
    norms = np.linalg.norm(np.asarray(g), axis=-1)  # [B, T]
    valid = np.arange(T)[None] < np.asarray(batch["lengths"])[:, None]
    return (norms * valid).sum(0) / valid.sum(0)


def _slow_grads(model, params, batch):
    """dL/d(delta_t) [B, T, H] for :func:`_slow_grad_norms` (traceable; ``batch["lengths"]`` concrete)."""
    cp, head = params["rnn"]["layer0"]["cell"], params["head"]
    w, b, u = cp["input"]["kernel"], cp["input"]["bias"], cp["recurrent_kernel"]

    def step(c, h, x):
        if model.cell == "rnn":
            h = jnp.tanh(x @ w + b + h @ u)
            return c, h
        if model.cell == "gru":
            xr, xz, xn = jnp.split(x @ w + b, 3)
            hr, hz, hn = jnp.split(h @ u, 3)
            r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
            n = jnp.tanh(xn + r * (hn + cp["recurrent_bias"]))
            return c, (1 - z) * n + z * h
        zi, zf, zg, zo = jnp.split(x @ w + b + h @ u, 4)
        c = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
        return c, jax.nn.sigmoid(zo) * jnp.tanh(c)

    lengths = np.asarray(batch["lengths"])

    def loss(deltas):  # deltas: [B, T, H]
        outs = []
        for s in range(B):
            n = int(lengths[s])
            c = h = jnp.zeros(H)
            ys = []
            for t in range(n):
                c, h = step(c, h, batch["inputs"][s, t])
                ys.append(h)
                h = h + deltas[s, t]
            feats = ys[-1] if model.head == "last" else sum(ys) / n  # the output, before the last delta
            outs.append(feats @ head["kernel"] + head["bias"])
        return _mse(jnp.stack(outs), batch)

    return jax.grad(loss)(jnp.zeros((B, T, H)))


@pytest.mark.parametrize("cell,head", [("lstm", "last"), ("rnn", "mean"), ("gru", "mean")])
def test_probe_grad_norms_equal_slow_perturbation_gradients(cell, head):
    model = SequenceModel(cell=cell, hidden_size=H, head=head, num_outputs=1)
    batch = _batch()
    params = _init(model, batch)
    fast_norms = functools.partial(dg.grad_norms_per_step, dg.model_loss_fn(model, _mse), model)
    # the probe norms and the slow gradients in one program: one compilation instead of two
    fast, g = jax.jit(lambda params: (fast_norms(params, batch), _slow_grads(model, params, batch)))(params)
    np.testing.assert_allclose(fast, _slow_grad_norms(model, params, batch, g), rtol=1e-4, atol=1e-7)
    # The probe is added to the carry after y_t is emitted, and both heads read outputs: the last step's
    # carry feeds nothing, so its gradient is exactly 0; every earlier step's is positive.
    assert np.all(np.asarray(fast)[:-1] > 0) and float(fast[-1]) == 0.0


def test_probe_norms_right_aligned_put_every_sequence_end_at_the_last_index():
    values = jnp.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 0.0, 0.0]])
    out = masked_time_mean(values, jnp.array([4, 2]), "end")
    np.testing.assert_allclose(out, [1.0, 2.0, (3 + 10) / 2, (4 + 20) / 2])
    start = masked_time_mean(values, jnp.array([4, 0]), "start")
    np.testing.assert_allclose(start, [1.0, 2.0, 3.0, 4.0])
    assert np.isnan(masked_time_mean(values, jnp.array([0, 0]), "start")).all()


def test_fit_decay_rate_recovers_a_geometric_rate_and_ignores_zeros_nans_and_masked_entries():
    norms = 3.0 * 0.8 ** np.arange(9, -1, -1.0)  # time order: distance 9 ... 0
    assert float(dg.fit_decay_rate(norms)) == pytest.approx(0.8, rel=1e-5)
    assert float(dg.fit_log_decay_rate(norms)) == pytest.approx(np.log(0.8), rel=1e-5)
    noisy = norms.copy()
    noisy[0], noisy[1], noisy[2] = 0.0, np.nan, 1e9
    mask = np.ones(10, bool)
    mask[2] = False
    assert float(dg.fit_decay_rate(noisy, mask)) == pytest.approx(0.8, rel=1e-5)
    assert np.isnan(float(dg.fit_decay_rate([1.0])))


def test_jacobian_products_of_a_diagonal_linear_step_decay_at_abs_a():
    a = jnp.array([0.7, -0.7, 0.7j], jnp.complex64)  # |a| = 0.7 whatever the phase
    xs = jnp.ones((12, 3), jnp.complex64)
    out = dg.state_jacobian_products(
        lambda h, x: a * h + x, jnp.zeros(3, jnp.complex64), xs, return_products=True
    )
    assert float(out["decay_rate"]) == pytest.approx(0.7, rel=1e-4)
    distance = np.arange(11, -1, -1)
    np.testing.assert_allclose(out["sigma_max"], 0.7**distance, rtol=1e-4)
    np.testing.assert_allclose(out["norm"], np.sqrt(6) * 0.7**distance, rtol=1e-4)  # 3 complex = 6 real
    assert out["products"].shape == (12, 6, 6)


def _random_cell_params(cell, d, key, scale=0.7):
    shapes = jax.eval_shape(cell.init, jax.random.key(0), cell.init_carry(None, (1,)), jnp.zeros((1, d)))
    leaves, treedef = jax.tree.flatten(shapes["params"])
    keys = jax.random.split(jax.random.key(key), len(leaves))
    return jax.tree.unflatten(
        treedef, [scale * jax.random.normal(k, s.shape, s.dtype) for k, s in zip(keys, leaves, strict=True)]
    )


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_jacobian_products_equal_jacrev_of_the_unrolled_map(name):
    """Nonlinear cells: the backward product of per-step Jacobians equals ``jax.jacrev`` of the whole map
    h_t -> h_{T-1} unrolled over the remaining steps (for the LSTM through its full state (c, h), with c_t
    held: the h block of ds_{T-1}/ds_t)."""
    t_len = 6
    with jax.enable_x64(True):
        cell = get_cell(name, hidden_size=H, param_dtype=jnp.float64)
        cp = _random_cell_params(cell, D, 7)
        x = jax.random.normal(jax.random.key(8), (t_len, D), jnp.float64)
        out = jax.jit(  # one compilation, not one per eagerly dispatched op
            lambda cp, x: dg.cell_jacobian_products(cell, cp, x, return_products=True)
        )(cp, x)
        step = lambda c, x_t: cell.apply({"params": cp}, c, x_t[None])[0]
        with_hidden = (lambda c, h: (c[0], h)) if name == "lstm" else (lambda c, h: h)

        @jax.jit  # every reference Jacobian in one program: one compilation, not one per eagerly run op
        def references(x):
            carries, c = [], cell.init_carry(None, (1,))
            for t in range(t_len):
                c = step(c, x[t])
                carries.append(c)

            def unrolled(h, t):  # h_t -> h_{T-1}, everything else of the carry after step t held
                c = with_hidden(carries[t], h)
                for s in range(t + 1, t_len):
                    c = step(c, x[s])
                return cell.hidden(c)

            return [jax.jacrev(unrolled)(cell.hidden(carries[t]), t).reshape(H, H) for t in range(t_len)]

        refs = references(x)
        for t in range(t_len):
            ref = refs[t]
            np.testing.assert_allclose(out["products"][t], ref, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(out["norm"][t], np.linalg.norm(ref), rtol=1e-9)
            np.testing.assert_allclose(out["sigma_max"][t], np.linalg.norm(ref, 2), rtol=1e-9)
    assert not np.allclose(out["products"][0], 0.0)  # a non-trivial product


def test_layers_are_found_by_running_the_model():
    model = SequenceModel(cell="gru", hidden_size=H, num_layers=2, bidirectional=True, num_outputs=1)
    batch = _batch()
    params = _init(model, batch)
    layers, _ = dg.trace_layers(model, params, batch["inputs"], batch["lengths"])
    assert [(la.name, la.reverse) for la in layers] == [
        ("rnn/layer0/forward", False),
        ("rnn/layer0/backward", True),
        ("rnn/layer1/forward", False),
        ("rnn/layer1/backward", True),
    ]
    np.testing.assert_array_equal(layers[0].inputs, batch["inputs"])
    run = lambda la, p, x, lengths: rnnlab.RNN(la.cell, reverse=la.reverse).apply(
        {"params": {"cell": p}}, x, lengths
    )[1]
    below = jax.jit(  # the reference: both directions of layer 0 in one program (one compilation)
        lambda p0, p1, x, lengths: jnp.concatenate(
            [run(layers[0], p0, x, lengths), run(layers[1], p1, x, lengths)], -1
        )
    )(
        layers[0].params, layers[1].params, batch["inputs"], batch["lengths"]
    )  # layer 1 reads both directions of layer 0
    np.testing.assert_allclose(layers[2].inputs, below, rtol=1e-6)
    np.testing.assert_allclose(dg.layer_inputs(model, params, batch["inputs"], batch["lengths"], 1), below)
    stats = dg.gate_statistics(model, params, batch["inputs"], batch["lengths"])
    assert set(stats) == {la.name for la in layers} and set(stats["rnn/layer1/backward"]) == {"r", "z"}


def _mingru_with_constant_decay(a):
    """A minGRU model whose recurrence is h_t = a h_{t-1} + b_t exactly (z = 1 - a for every input)."""
    model = SequenceModel(cell="mingru", hidden_size=H, head="last", num_outputs=1)
    batch = _batch()
    params = _init(model, batch, 2)
    cell = params["rnn"]["layer0"]["cell"]["input"]
    z_logit = np.log((1 - a) / a)
    cell["kernel"] = cell["kernel"].at[:, :H].set(0.0)
    cell["bias"] = cell["bias"].at[:H].set(z_logit)
    return model, params, batch


def test_probe_and_jacobian_decay_rates_equal_a_for_a_linear_recurrence():
    model, params, batch = _mingru_with_constant_decay(0.6)
    loss_fn = dg.model_loss_fn(model, _mse)

    @jax.jit
    def both(params, batch):
        jac = dg.jacobian_products(model, params, batch["inputs"], batch["lengths"], index=1)
        full = {"inputs": batch["inputs"], "targets": batch["targets"]}  # equal lengths: exact geometric
        norms = dg.grad_norms_per_step(loss_fn, model, params, full)
        return jac, dg.fit_decay_rate(norms)

    jac, probe_rate = both(params, batch)
    assert float(jac["decay_rate"]) == pytest.approx(0.6, rel=1e-4)
    assert np.isnan(np.asarray(jac["norm"])[2:]).all()  # padded steps of the length-2 sequence
    assert float(probe_rate) == pytest.approx(0.6, rel=1e-4)


def test_a_cell_without_recurrent_weights_records_no_spectrum():
    """minGRU has no recurrent matrix: its record has no spectral keys (a report shows '–', not NaN)."""
    model, params, batch = _mingru_with_constant_decay(0.6)
    out = dg.record(model, params, batch, dg.model_loss_fn(model, _mse), jacobian=False)
    assert "decay_rate" in out and not any(k.startswith(("spectral", "sigma_max", "pascanu")) for k in out)
    json.loads(json.dumps(out))


def test_lru_jacobian_treats_the_complex_state_as_real_pairs():
    model = SequenceModel(cell="lru", hidden_size=2, num_outputs=1)
    batch = _batch()
    params = _init(model, batch, 3)
    cell = params["rnn"]["layer0"]["cell"]
    cell["nu_log"] = jnp.full_like(cell["nu_log"], np.log(-np.log(0.8)))  # |lambda| = 0.8
    jac = jax.jit(functools.partial(dg.jacobian_products, model))(params, batch["inputs"])
    assert float(jac["decay_rate"]) == pytest.approx(0.8, rel=1e-4)
    layer = dg.trace_layers(model, params, batch["inputs"])[0][0]
    spec = dg.recurrent_spectrum(layer.cell, layer.params)
    assert float(spec["spectral_radius"]) == pytest.approx(0.8, rel=1e-5)
    assert bool(spec["vanishing_guaranteed"]) and spec["pascanu_applies"]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_gate_statistics_equal_a_hand_computation_on_a_tiny_lstm():
    model = SequenceModel(cell="lstm", hidden_size=2, num_outputs=1)
    batch = _batch(4)
    params = _init(model, batch, 5)
    cp = params["rnn"]["layer0"]["cell"]
    cp["input"]["bias"] = 3.0 * jax.random.normal(jax.random.key(6), (8,))  # push some gates to saturation
    stats = jax.jit(functools.partial(dg.gate_statistics, model))(params, batch["inputs"], batch["lengths"])
    stats = stats["rnn/layer0"]

    w, b, u = (
        np.asarray(v, np.float64)
        for v in (cp["input"]["kernel"], cp["input"]["bias"], cp["recurrent_kernel"])
    )
    x, lengths = np.asarray(batch["inputs"], np.float64), np.asarray(batch["lengths"])
    gates = {g: np.zeros((B, T, 2)) for g in "ifo"}
    for s in range(B):
        c = h = np.zeros(2)
        for t in range(lengths[s]):
            zi, zf, zg, zo = np.split(x[s, t] @ w + b + h @ u, 4)
            i, f, o = _sigmoid(zi), _sigmoid(zf), _sigmoid(zo)
            c = f * c + i * np.tanh(zg)
            h = o * np.tanh(c)
            gates["i"][s, t], gates["f"][s, t], gates["o"][s, t] = i, f, o
    valid = np.arange(T)[None] < lengths[:, None]
    for name, g in gates.items():
        vals = [g[valid[:, t], t].ravel() for t in range(T)]
        np.testing.assert_allclose(stats[name]["mean_t"], [v.mean() for v in vals], rtol=1e-5)
        sat = [((v < 0.05) | (v > 0.95)).mean() for v in vals]
        np.testing.assert_allclose(stats[name]["saturated_t"], sat, atol=1e-6)
        np.testing.assert_allclose(stats[name]["mean"], g[valid].mean(), rtol=1e-5)
        np.testing.assert_allclose(
            stats[name]["saturated"], ((g[valid] < 0.05) | (g[valid] > 0.95)).mean(), atol=1e-6
        )
    assert 0 < float(stats["f"]["saturated"]) + float(stats["i"]["saturated"]) + float(
        stats["o"]["saturated"]
    )
    tau = 1.0 / (1.0 - gates["f"][valid].mean(0))
    np.testing.assert_allclose(stats["time_constant"]["mean"], tau.mean(), rtol=1e-5)
    np.testing.assert_allclose(stats["time_constant"]["median"], np.median(tau), rtol=1e-5)


@pytest.mark.parametrize("init,radius", [("identity", 0.5), ("orthogonal", 1.3)])
def test_spectral_radius_of_scaled_identity_and_orthogonal_kernels(init, radius):
    cell = get_cell("rnn", hidden_size=4, recurrent_init=init, radius=radius)
    cp = jax.jit(cell.init)(jax.random.key(0), cell.init_carry(None, (1,)), jnp.ones((1, 2)))["params"]
    spec = dg.recurrent_spectrum(cell, cp)
    assert float(spec["spectral_radius"]) == pytest.approx(radius, rel=1e-5)
    assert float(spec["sigma_max"]) == pytest.approx(radius, rel=1e-5)
    assert spec["pascanu_bound"] == 1.0 and spec["pascanu_applies"]
    assert bool(spec["vanishing_guaranteed"]) == (radius < 1.0)


def test_spectrum_per_gate_block_with_the_sigmoid_bound_and_a_non_normal_matrix():
    cell = get_cell("lstm", hidden_size=3)
    cp = jax.jit(cell.init)(jax.random.key(0), cell.init_carry(None, (1,)), jnp.ones((1, 2)))["params"]
    spec = dg.recurrent_spectrum(cell, cp)
    assert set(spec["blocks"]) == {"i", "f", "g", "o"}
    assert spec["blocks"]["f"]["pascanu_bound"] == 4.0 and spec["blocks"]["g"]["pascanu_bound"] == 1.0
    for blk in spec["blocks"].values():  # orthogonal blocks: all singular values 1
        assert float(blk["sigma_max"]) == pytest.approx(1.0, rel=1e-5)
    assert not bool(spec["vanishing_guaranteed"]) and not spec["pascanu_applies"]
    non_normal = dg.matrix_spectrum(jnp.array([[0.5, 10.0], [0.0, 0.5]]))
    assert float(non_normal["spectral_radius"]) == pytest.approx(0.5, rel=1e-5)
    assert float(non_normal["sigma_max"]) > 10.0
    jitted = jax.jit(dg.matrix_spectrum)(2.0 * jnp.eye(3))
    assert float(jitted["spectral_radius"]) == pytest.approx(2.0)


def test_record_is_a_flat_json_ready_dict():
    model = SequenceModel(cell="lstm", hidden_size=2, num_outputs=1)
    batch = _batch()
    params = _init(model, batch)
    out = dg.record(model, params, batch, dg.model_loss_fn(model, _mse))
    assert len(out["grad_norm_t"]) == T and len(out["jac_norm_t"]) == T
    for key in (
        "decay_rate",
        "jac_decay_rate",
        "gate_f_mean",
        "gate_f_saturated",
        "spectral_radius",
        "sigma_max_f",
        "forget_time_constant_mean",
        "vanishing_guaranteed",
    ):
        assert isinstance(out[key], float), key
    assert not any(key.startswith("clip") for key in out)  # training logs grad_norm and clip_fired per step
    json.loads(json.dumps(out))
