"""Cells: the time loop equals a Python loop over the cell, each cell computes its documented equations
(NumPy references, jax.experimental.rnn.lstm_ref), gradients match finite differences, initialisations are
what the docstrings say, and bad options fail with messages that name the fix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from helpers import (
    CELL_CASES,
    B,
    D,
    H,
    T,
    apply,
    assert_trees_close,
    cases,
    init_params,
    loop_cell,
    make_cell,
    rand,
    rand_carry,
    weighted_sum,
    x64,  # noqa: F401  (autouse fixture: every test runs in float64)
)
from jax.experimental.rnn import lstm_ref
from jax.test_util import check_grads

import rnnlab


def test_every_registered_cell_is_covered():
    assert {name for _, name, _ in CELL_CASES} == set(rnnlab.CELLS)


# ------------------------------------------------------------------------------------------------------------
# The time loop equals the cell stepped by hand.

# ------------------------------------------------------------------------------------------------------------
# Each cell computes the equations of its docstring (written here in NumPy float64).


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_step(name, opts, p, carry, x):
    """One step of the documented equations; ``carry`` as the cell stores it (LSTM: (c, h))."""
    p = jax.tree.map(np.asarray, p)
    slope = opts.get("gate_slope", 1.0)
    if name in ("rnn", "irnn"):
        act = np.tanh if name == "rnn" else (lambda z: np.maximum(z, 0.0))
        h = act(x @ p["input"]["kernel"] + p["input"]["bias"] + carry @ p["recurrent_kernel"])
        return h, h
    if name == "lstm":
        c, h = carry
        z = x @ p["input"]["kernel"] + p["input"]["bias"] + h @ p["recurrent_kernel"]
        if opts.get("cifg"):
            zf, zg, zo = np.split(z, 3, axis=-1)
        else:
            zi, zf, zg, zo = np.split(z, 4, axis=-1)
        if opts.get("peephole"):  # i, f see c_{t-1}; o sees c_t
            zf = zf + p["peephole"][1] * c
            if not opts.get("cifg"):
                zi = zi + p["peephole"][0] * c
        f = _sigmoid(slope * zf)
        i = 1.0 - f if opts.get("cifg") else _sigmoid(slope * zi)
        c = f * c + i * np.tanh(zg)
        if opts.get("peephole"):
            zo = zo + p["peephole"][2] * c
        h = _sigmoid(slope * zo) * np.tanh(c)
        return (c, h), h
    if name == "gru":
        return _numpy_gru_step(p, carry, x, slope)
    if name == "mingru":
        hs = carry.shape[-1]
        xp = x @ p["input"]["kernel"] + p["input"]["bias"]
        z = _sigmoid(slope * xp[:, :hs])
        h = (1.0 - z) * carry + z * xp[:, hs:]
        return h, h
    if name == "lru":
        n = p["nu_log"].shape[0]
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        bmat = p["B"]["kernel"][:, :n] + 1j * p["B"]["kernel"][:, n:]
        h = lam * carry + np.exp(p["gamma_log"]) * (x @ bmat)
        y = np.real(h @ (p["C_re"] + 1j * p["C_im"])) + x @ p["skip"]["kernel"]
        return h, y
    raise AssertionError(name)


def _numpy_gru_step(p, h, x, slope):
    """GRU, reset-after: n = tanh(n_x + r * (n_h + b_hn)); h_t = (1 - z) * n + z * h_{t-1}."""
    hs = h.shape[-1]
    xp = x @ p["input"]["kernel"] + p["input"]["bias"]
    hp = h @ p["recurrent_kernel"]
    r = _sigmoid(slope * (xp[:, :hs] + hp[:, :hs]))
    z = _sigmoid(slope * (xp[:, hs : 2 * hs] + hp[:, hs : 2 * hs]))
    n = np.tanh(xp[:, 2 * hs :] + r * (hp[:, 2 * hs :] + p["recurrent_bias"]))
    h = (1.0 - z) * n + z * h
    return h, h


@pytest.mark.parametrize("name, options", cases())
def test_rnn_equals_python_loop_over_cell_and_the_documented_equations(name, options):
    """RNN(cell) == a Python loop over cell.apply == the docstring's equations in NumPy, from a random
    carry."""
    cell = make_cell(name, H, **options)
    x = rand((B, T, D), 0)
    rnn = rnnlab.RNN(cell, mode="sequential")
    params = init_params(rnn, x)
    carry0 = rand_carry(cell, B, 3)
    carry, y = apply(rnn, params, x, initial_carry=carry0)

    loop_carry, loop_y = loop_cell(cell, params["cell"], x, carry0)
    assert_trees_close(y, loop_y)
    assert_trees_close(carry, loop_carry)

    ref, ref_ys = jax.tree.map(np.asarray, carry0), []
    for t in range(T):
        ref, y_t = _numpy_step(name, options, params["cell"], ref, np.asarray(x[:, t]))
        ref_ys.append(y_t)
    assert_trees_close(y, np.stack(ref_ys, 1))
    assert_trees_close(carry, ref)
    if name != "lru":  # h_t is the last output (the LRU's output is a readout of its complex state)
        assert_trees_close(cell.apply({"params": params["cell"]}, carry, method="hidden"), y[:, -1])


@pytest.mark.parametrize("slope", [1.0, 2.0])
def test_gru_equals_numpy_reset_after_gru(slope):
    cell = make_cell("gru", H, gate_slope=slope)
    x = rand((B, T, D), 2)
    rnn = rnnlab.RNN(cell)
    params = init_params(rnn, x)
    h, y = apply(rnn, params, x)
    ref = np.zeros((B, H))
    for t in range(T):
        ref, y_t = _numpy_gru_step(params["cell"], ref, np.asarray(x[:, t]), slope)
        np.testing.assert_allclose(y[:, t], y_t, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("backend", ["xla", "fused"])
def test_gru_equals_flax_gru_cell_with_mapped_weights(backend):
    """An independent implementation: Flax's ``nn.GRUCell`` (Dense layers ``ir, iz, in`` with biases,
    ``hr, hz`` without, ``hn`` with b_hn inside the reset product; flax/linen/recurrent.py), its random
    weights mapped as the gated.py docstring says, stepped by hand from a random carry."""
    flax_cell = nn.GRUCell(features=H, param_dtype=jnp.float64)
    x, h0 = rand((B, T, D), 8), rand((B, H), 9)
    fp = init_params(flax_cell, h0, x[:, 0])
    cat = lambda names, leaf: jnp.concatenate([fp[n][leaf] for n in names], axis=-1)
    params = {
        "cell": {
            "input": {"kernel": cat(("ir", "iz", "in"), "kernel"), "bias": cat(("ir", "iz", "in"), "bias")},
            "recurrent_kernel": cat(("hr", "hz", "hn"), "kernel"),
            "recurrent_bias": fp["hn"]["bias"],
        }
    }
    h, y = apply(rnnlab.RNN(make_cell("gru"), backend=backend), params, x, initial_carry=h0)
    ref = h0
    for t in range(T):
        ref, y_t = flax_cell.apply({"params": fp}, ref, x[:, t])
        np.testing.assert_allclose(y[:, t], y_t, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-13)


def test_lstm_equals_jax_experimental_lstm_ref():
    """cuDNN-layout weights mapped as the gated.py docstring says give lstm_ref's outputs and final (h, c)."""
    b, t, d, hs = 3, 5, 2, 3
    rng = np.random.default_rng(0)
    w_ih, w_hh = rng.normal(size=(4 * hs, d)), rng.normal(size=(4 * hs, hs)) * 0.5
    b_ih, b_hh = rng.normal(size=4 * hs), rng.normal(size=4 * hs)
    x = jnp.asarray(rng.normal(size=(b, t, d)))
    h0, c0 = jnp.asarray(rng.normal(size=(1, b, hs))), jnp.asarray(rng.normal(size=(1, b, hs)))
    lengths = jnp.array([5, 3, 1], jnp.int32)
    y_ref, h_n, c_n = lstm_ref(
        x,
        h0,
        c0,
        {0: jnp.asarray(w_ih)},
        {0: jnp.asarray(w_hh)},
        {0: jnp.asarray(b_ih)},
        {0: jnp.asarray(b_hh)},
        lengths,
        d,
        hs,
        1,
        0.0,
        False,
    )
    params = {"cell": {"input": {"kernel": w_ih.T, "bias": b_ih + b_hh}, "recurrent_kernel": w_hh.T}}
    rnn = rnnlab.RNN(make_cell("lstm", hs))
    (c, h), y = apply(rnn, params, x, lengths, initial_carry=(c0[0], h0[0]))
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, h_n[0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c, c_n[0], rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------------------------------------------------
# Gradients match central finite differences (float64).


@pytest.mark.parametrize("name, options", cases())
def test_gradients_match_finite_differences(name, options):
    cell = make_cell(name, H, **options)
    x = rand((B, T, D), 0)
    rnn = rnnlab.RNN(cell, mode="sequential")
    params = init_params(rnn, x)

    @jax.jit  # not fast_jit: check_grads differentiates it, and compiler options are top-level only
    def loss(params, x):
        carry, y = rnn.apply({"params": params}, x)
        return weighted_sum(y, 10) + weighted_sum(carry, 20)

    check_grads(loss, (params, x), order=1, modes=["rev"])


def test_gradients_match_finite_differences_with_lengths_and_reverse():
    cell = make_cell("lstm", H, peephole=True)
    x = rand((3, 4, D), 4)
    lengths = jnp.array([4, 2, 0])
    rnn = rnnlab.RNN(cell, reverse=True)
    params = init_params(rnn, x)
    carry0 = rand_carry(cell, 3, 6)

    @jax.jit  # not fast_jit: check_grads differentiates it, and compiler options are top-level only
    def loss(params, x, carry0, lengths):
        carry, y = rnn.apply({"params": params}, x, lengths, initial_carry=carry0)
        return weighted_sum(y, 10) + weighted_sum(carry, 20)

    check_grads(lambda *a: loss(*a, lengths), (params, x, carry0), order=1, modes=["rev"])


# ------------------------------------------------------------------------------------------------------------
# Initialisations are what the docstrings say.


def _init_cell(cell, d=D):
    return init_params(rnnlab.RNN(cell), jnp.zeros((1, 2, d)), noise=False)["cell"]


@pytest.mark.parametrize("forget_bias", [1.0, 2.5, 0.0])
@pytest.mark.parametrize("cifg", [False, True])
def test_lstm_bias_is_forget_bias_on_the_forget_gate_only(forget_bias, cifg):
    hs = H
    bias = np.asarray(_init_cell(make_cell("lstm", hs, forget_bias=forget_bias, cifg=cifg))["input"]["bias"])
    expected = np.zeros((3 if cifg else 4) * hs)
    f_slot = 0 if cifg else 1  # gates (f, g, o) with cifg, else (i, f, g, o)
    expected[f_slot * hs : (f_slot + 1) * hs] = forget_bias
    np.testing.assert_array_equal(bias, expected)


def test_lstm_default_forget_bias_is_one():
    bias = np.asarray(_init_cell(make_cell("lstm", H))["input"]["bias"])
    np.testing.assert_array_equal(bias[H : 2 * H], 1.0)


@pytest.mark.parametrize("cifg", [False, True])
def test_chrono_init_forget_bias_is_log_uniform_and_input_bias_its_negative(cifg):
    hs, tmax = 64, 20.0
    bias = np.asarray(
        _init_cell(make_cell("lstm", hs, chrono_tmax=tmax, forget_bias=5.0, cifg=cifg))["input"]["bias"]
    )
    if cifg:
        bf, rest = bias[:hs], bias[hs:]
    else:
        bi, bf, rest = bias[:hs], bias[hs : 2 * hs], bias[2 * hs :]
        np.testing.assert_array_equal(bi, -bf)
    np.testing.assert_array_equal(rest, 0.0)
    assert bf.min() >= 0.0 and bf.max() <= np.log(tmax - 1) + 1e-12  # forget_bias=5 is overridden
    # exp(b_f) ~ U[1, T_max - 1]: mean (T_max)/2 within 5 standard errors, and it is not a constant.
    u = np.exp(bf)
    assert abs(u.mean() - tmax / 2) < 5 * (tmax - 2) / np.sqrt(12 * hs)
    assert u.std() > 0.2 * (tmax - 2) / np.sqrt(12)


@pytest.mark.parametrize("slope", [1.0, 2.0])
def test_gru_chrono_init_biases_the_update_gate_only(slope):
    """b_z ~ log U[1, T_max - 1] / beta: at a zero input and state the update gate keeps h with the chrono
    time constants 1 / (1 - z) = 1 + u, u in [1, T_max - 1]; the reset and candidate biases stay 0."""
    hs, tmax = 64, 20.0
    bias = np.asarray(_init_cell(make_cell("gru", hs, chrono_tmax=tmax, gate_slope=slope))["input"]["bias"])
    br, bz, bn = bias[:hs], bias[hs : 2 * hs], bias[2 * hs :]
    np.testing.assert_array_equal(br, 0.0)
    np.testing.assert_array_equal(bn, 0.0)
    u = np.exp(slope * bz)
    assert u.min() >= 1.0 - 1e-6 and u.max() <= tmax - 1 + 1e-4
    assert abs(u.mean() - tmax / 2) < 5 * (tmax - 2) / np.sqrt(12 * hs)
    z = 1 / (1 + np.exp(-slope * bz))
    np.testing.assert_allclose(1 / (1 - z), 1 + u, rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(_init_cell(make_cell("gru", hs))["input"]["bias"]), 0.0)


def test_irnn_recurrent_kernel_is_identity_and_bias_zero():
    cell = make_cell("irnn", H)
    p = _init_cell(cell)
    np.testing.assert_array_equal(p["recurrent_kernel"], np.eye(H))
    np.testing.assert_array_equal(p["input"]["bias"], 0.0)
    # With zero input a non-negative state is carried unchanged (ReLU(I h) = h): the point of the IRNN.
    h0 = jnp.abs(rand((B, H), 0))
    h, y = apply(rnnlab.RNN(cell), {"cell": p}, jnp.zeros((B, T, D)), initial_carry=h0)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(y, np.broadcast_to(h0[:, None], (B, T, H)))


@pytest.mark.parametrize("radius", [1.0, 0.7, 1.3])
def test_orthogonal_recurrent_init_has_spectral_radius_radius(radius):
    w = np.asarray(_init_cell(make_cell("rnn", H, radius=radius))["recurrent_kernel"])
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(w)).max(), radius, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), radius, rtol=1e-10)  # a scaled rotation


@pytest.mark.parametrize("radius", [0.5, 1.2])
def test_identity_recurrent_init_is_radius_times_identity(radius):
    w = np.asarray(
        _init_cell(make_cell("rnn", H, recurrent_init="identity", radius=radius))["recurrent_kernel"]
    )
    np.testing.assert_array_equal(w, radius * np.eye(H))


@pytest.mark.parametrize("name, gates", [("lstm", 4), ("gru", 3)])
def test_gated_recurrent_kernels_are_orthogonal_per_gate(name, gates):
    hs = H
    w = np.asarray(_init_cell(make_cell(name, hs))["recurrent_kernel"])
    assert w.shape == (hs, gates * hs)
    for k in range(gates):
        blk = w[:, k * hs : (k + 1) * hs]
        np.testing.assert_allclose(blk.T @ blk, np.eye(hs), atol=1e-12)
    assert not np.allclose(w[:, :hs], w[:, hs : 2 * hs])  # independent blocks


def test_lru_ring_init():
    r_min, r_max, max_phase = 0.4, 0.9, np.pi / 3
    p = _init_cell(make_cell("lru", 64, r_min=r_min, r_max=r_max, max_phase=max_phase))
    lam = np.exp(-np.exp(np.asarray(p["nu_log"])) + 1j * np.exp(np.asarray(p["theta_log"])))
    mod = np.abs(lam)
    assert mod.min() >= r_min - 1e-12 and mod.max() <= r_max + 1e-12
    phase = np.exp(np.asarray(p["theta_log"]))
    assert phase.min() >= 0 and phase.max() <= max_phase + 1e-7
    np.testing.assert_allclose(np.exp(np.asarray(p["gamma_log"])), np.sqrt(1 - mod**2), rtol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# Bad options fail early with a message that names the problem and the fix.


def test_unknown_cell_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown cell 'lstmm'") as e:
        rnnlab.get_cell("lstmm", 4)
    for name in rnnlab.CELLS:
        assert name in str(e.value)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match="unknown option.*'forgetbias'.*'lstm'") as e:
        rnnlab.get_cell("lstm", 4, forgetbias=1.0)
    for opt in ("forget_bias", "chrono_tmax", "peephole", "cifg", "gate_slope"):
        assert opt in str(e.value)
    assert rnnlab.cell_options("lstm") == sorted(rnnlab.cell_options("lstm"))
    with pytest.raises(ValueError, match="valid options: .*radius"):
        rnnlab.get_cell("rnn", 4, peephole=True)  # an LSTM option is not an RNN option


@pytest.mark.parametrize("name", sorted(rnnlab.CELLS))
@pytest.mark.parametrize("hidden", [0, -3, 2.5, True])
def test_non_positive_hidden_size_is_rejected(name, hidden):
    with pytest.raises(ValueError, match="hidden_size must be a positive integer.*hidden_size=128"):
        rnnlab.get_cell(name, hidden)


@pytest.mark.parametrize(
    "name, options, fragment",
    [
        ("lstm", {"chrono_tmax": 2.0}, "chrono_tmax must be > 2"),
        ("gru", {"chrono_tmax": 1.5}, "chrono_tmax must be > 2"),
        ("lstm", {"gate_slope": 0.0}, "gate_slope must be > 0"),
        ("gru", {"gate_slope": -1.0}, "gate_slope must be > 0"),
        ("mingru", {"gate_slope": 0.0}, "gate_slope must be > 0"),
        ("rnn", {"radius": 0.0}, "radius must be > 0"),
        ("rnn", {"activation": "gelu"}, "unknown activation 'gelu'; valid: tanh, relu"),
        ("rnn", {"recurrent_init": "xavier"}, "valid: orthogonal, gaussian, identity"),
        ("lru", {"r_min": 0.5, "r_max": 0.4}, "need 0 <= r_min < r_max < 1"),
        ("lru", {"r_max": 1.0}, "need 0 <= r_min < r_max < 1"),
        ("lru", {"state_size": 0}, "state_size must be positive"),
    ],
)
def test_invalid_option_values_are_rejected(name, options, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        rnnlab.get_cell(name, 4, **options)


@pytest.mark.parametrize("name, gates", [("lstm", 4), ("gru", 3)])
def test_gated_recurrent_init_identity_is_identity_per_gate_block(name, gates):
    cell = rnnlab.get_cell(name, 3, recurrent_init="identity", radius=0.5)
    x = jnp.ones((2, 2))
    params = cell.init(jax.random.key(0), cell.init_carry(None, (2,)), x)["params"]
    np.testing.assert_array_equal(params["recurrent_kernel"], np.tile(0.5 * np.eye(3), (1, gates)))
    with pytest.raises(ValueError, match="unknown recurrent_init 'eye'.*orthogonal"):
        rnnlab.get_cell(name, 3, recurrent_init="eye")
    with pytest.raises(ValueError, match="gate_slope must be > 0"):
        rnnlab.get_cell(name, 3, gate_slope=0.0)
