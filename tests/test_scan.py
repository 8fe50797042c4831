"""The time loop: exact masking (a padded batch equals each sequence run alone), associative == sequential,
loop options (unroll, remat, chunked remat, hoisting) change nothing, probes give dL/d(carry_t), gates are
collected per step, and bad input fails with a message that names the fix."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELL_CASES,
    LENGTHS,
    LINEAR_CASES,
    B,
    D,
    H,
    T,
    assert_masked_equals_alone,
    assert_trees_close,
    call,
    cases,
    cpu_auto_backend,
    dot,
    fast_jit,
    init_params,
    loop_cell,
    make_cell,
    rand,
    rand_carry,
    take,
    x64,  # noqa: F401  (x64 is an autouse fixture)
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnlab
from rnnlab.scan import Backend, Plan, loop_options, resolve

# Masking, reversal and probes live in the loop, not in the cells: a tuple carry (LSTM), a plain one (GRU), a
# complex one (LRU) and a gated linear cell cover the carry structures the loop has to handle.
LOOP_CASES = [c for c in CELL_CASES if c[0] in ("lstm", "gru", "lru", "mingru")]
SEQ_AND_ASSOC = [pytest.param(n, o, "sequential", id=f"{i}-sequential") for i, n, o in LOOP_CASES] + [
    pytest.param(n, o, "associative", id=f"{i}-associative") for i, n, o in LINEAR_CASES
]


def _setup(name, options, x_seed=0, **rnn_kwargs):
    cell = make_cell(name, H, **options)
    rnn = rnnlab.RNN(cell, **rnn_kwargs)
    x = rand((B, T, D), x_seed)
    return cell, rnn, x, init_params(rnn, x)


# ------------------------------------------------------------------------------------------------------------
# Exact masking.


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name, options, mode", SEQ_AND_ASSOC)
def test_masked_batch_equals_each_sequence_alone(name, options, mode, reverse):
    """Lengths (T, 2, 0) from a non-zero initial carry: the length-0 sequence keeps it exactly."""
    cell, rnn, x, params = _setup(name, options, mode=mode, reverse=reverse)
    assert_masked_equals_alone(rnn, params, x, LENGTHS, rand_carry(cell, B, 7))


@pytest.mark.parametrize(
    "b, t, lengths", [(1, 1, None), (1, T, None), (B, 1, None), (B, 1, (1, 0, 1)), (1, T, (3,))]
)
@pytest.mark.parametrize("name, options, mode", [SEQ_AND_ASSOC[0], SEQ_AND_ASSOC[-1]])
def test_single_step_and_single_sequence_equal_the_python_loop(name, options, mode, b, t, lengths):
    cell = make_cell(name, H, **options)
    rnn = rnnlab.RNN(cell, mode=mode)
    x = rand((b, t, D), 1)
    params = init_params(rnn, x)
    carry0 = rand_carry(cell, b, 2)
    ns = [t if lengths is None else lengths[i] for i in range(b)]

    @fast_jit  # the loop and the Python reference loops in one program: one compilation, not one per op
    def loop_and_references(params, x, lengths_arr, carry0):
        refs = {
            i: loop_cell(cell, params["cell"], x[i : i + 1, :n], take(carry0, i))
            for i, n in enumerate(ns)
            if n
        }
        return call(rnn, params, x, lengths_arr, carry0), refs

    (carry, y), refs = loop_and_references(params, x, None if lengths is None else jnp.array(lengths), carry0)
    for i, n in enumerate(ns):
        assert np.all(np.asarray(y[i, n:]) == 0.0)
        if n == 0:
            assert_trees_close(take(carry, i), take(carry0, i), rtol=0, atol=0)
            continue
        ref_carry, ref_y = refs[i]
        assert_trees_close(take(carry, i), ref_carry)
        assert_trees_close(y[i : i + 1, :n], ref_y)


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_property_masked_batch_equals_each_sequence_alone(data):
    name, options, mode = data.draw(st.sampled_from([p.values for p in SEQ_AND_ASSOC]), label="cell")
    b = data.draw(st.integers(1, 3), label="B")
    t = data.draw(st.integers(1, 6), label="T")
    d = data.draw(st.integers(1, 3), label="D")
    lengths = tuple(data.draw(st.lists(st.integers(0, t), min_size=b, max_size=b), label="lengths"))
    reverse = data.draw(st.booleans(), label="reverse")
    cell = make_cell(name, H, **options)
    rnn = rnnlab.RNN(cell, mode=mode, reverse=reverse)
    x = rand((b, t, d), t)
    assert_masked_equals_alone(rnn, init_params(rnn, x, seed=d), x, lengths, rand_carry(cell, b, b))


def test_padded_probes_are_ignored():
    cell, rnn, x, params = _setup("lstm", {}, reverse=True)
    lengths = jnp.array(LENGTHS)
    junk = jax.tree.map(lambda p: p + 1.0, rnnlab.zero_probes(cell.init_carry(None, (B,)), T))
    valid = (np.arange(T)[None, :] < np.array(LENGTHS)[:, None])[..., None]
    masked_junk = jax.tree.map(lambda p: p * valid, junk)
    both = fast_jit(  # both runs in one program: one compilation
        lambda params, x, lengths, junk, masked_junk: (
            call(rnn, params, x, lengths, probes=junk),
            call(rnn, params, x, lengths, probes=masked_junk),
        )
    )
    with_junk, with_masked_junk = both(params, x, lengths, junk, masked_junk)
    assert_trees_close(with_junk, with_masked_junk)


# ------------------------------------------------------------------------------------------------------------
# Fast paths equal the reference loop: outputs, final carry and gradients.


def _outputs_and_grads(rnn, params, x, lengths, carry0, probes, seed=11):
    """Outputs, final carry and the gradients of a scalar loss w.r.t. params, x, initial carry and probes.

    Jitted as a whole (one compilation instead of one per eagerly dispatched op); ``lengths`` is an argument,
    not a closed-over constant (see test_concrete_lengths_inside_jit).
    """
    return _outputs_and_grads_of((rnn,), params, x, lengths, carry0, probes, seed)[0]


def _outputs_and_grads_of(rnns, params, x, lengths, carry0, probes, seed=11):
    """:func:`_outputs_and_grads` of several loops on the same inputs, in one program (one compilation)."""
    wy = rand((B, T, rnns[0].cell.hidden_size), seed)
    wc = rand_carry(rnns[0].cell, B, seed + 1)

    def loss(params, x, carry0, probes, lengths, rnn):
        carry, y = call(rnn, params, x, lengths, carry0, probes)
        return dot(y, wy) + dot(carry, wc), (carry, y)

    def all_grads(params, x, carry0, probes, lengths):
        grad = jax.grad(loss, argnums=(0, 1, 2, 3), has_aux=True)
        return [grad(params, x, carry0, probes, lengths, rnn) for rnn in rnns]

    return [(aux, grads) for grads, aux in fast_jit(all_grads)(params, x, carry0, probes, lengths)]


@pytest.mark.parametrize(
    "lengths, reverse",
    [(None, False), (LENGTHS, False), (LENGTHS, True)],
    ids=["full", "masked", "masked-reverse"],
)
@pytest.mark.parametrize("name, options", cases(LINEAR_CASES))
def test_associative_equals_sequential(name, options, lengths, reverse):
    cell, seq, x, params = _setup(name, options, mode="sequential", reverse=reverse)
    assoc = rnnlab.RNN(cell, mode="associative", reverse=reverse)
    lengths = None if lengths is None else jnp.array(lengths)
    carry0, probes = rand_carry(cell, B, 3), rnnlab.zero_probes(cell.init_carry(None, (B,)), T)
    (want, want_grads), (got, got_grads) = _outputs_and_grads_of(
        (seq, assoc), params, x, lengths, carry0, probes
    )
    assert_trees_close(got, want)
    assert_trees_close(got_grads[:3], want_grads[:3], rtol=1e-9)  # params, x, initial carry (probes: below)


@pytest.mark.parametrize("name, options", cases(LINEAR_CASES))
def test_associative_probe_gradients_equal_sequential(name, options):
    cell, seq, x, params = _setup(name, options, mode="sequential")
    assoc = rnnlab.RNN(cell, mode="associative")
    lengths, carry0 = jnp.array(LENGTHS), rand_carry(cell, B, 3)
    probes = rnnlab.zero_probes(cell.init_carry(None, (B,)), T)
    (_, want), (_, got) = _outputs_and_grads_of((seq, assoc), params, x, lengths, carry0, probes)
    assert_trees_close(got[3], want[3], rtol=1e-9)


LOOP_OPTIONS = [
    pytest.param({"unroll": 2}, id="unroll2"),
    pytest.param({"remat": True}, id="remat"),
    pytest.param({"remat": True, "remat_chunk": 3}, id="remat-chunk3"),
    pytest.param({"remat": True, "remat_chunk": 3, "reverse": True}, id="remat-chunk3-reverse"),
    pytest.param({"hoist": False}, id="no-hoist"),
    pytest.param({"backend": "xla"}, id="xla-backend"),  # the reference uses backend='auto' (fused LSTM)
]


@functools.cache
def _reference_run(name, reverse):
    """The default loop's outputs and gradients, computed once for all the options compared with it."""
    cell, ref, x, params = _setup(name, {}, mode="sequential", reverse=reverse)
    lengths, carry0 = jnp.array(LENGTHS), rand_carry(cell, B, 3)
    probes = rnnlab.zero_probes(cell.init_carry(None, (B,)), T)
    return (cell, x, params, lengths, carry0, probes), _outputs_and_grads(
        ref, params, x, lengths, carry0, probes
    )


@pytest.mark.parametrize("option", LOOP_OPTIONS)
@pytest.mark.parametrize("name", ["lstm", "lru"])
def test_loop_options_change_nothing(name, option):
    """T = 5 is not a multiple of remat_chunk = 3; lengths (5, 2, 0); a non-zero initial carry; probes."""
    (cell, x, params, lengths, carry0, probes), (want, want_grads) = _reference_run(
        name, option.get("reverse", False)
    )
    rnn = rnnlab.RNN(cell, mode="sequential", **option)
    got, got_grads = _outputs_and_grads(rnn, params, x, lengths, carry0, probes)
    assert_trees_close(got, want)
    assert_trees_close(got_grads, want_grads)


@pytest.mark.parametrize("option", [pytest.param(*p.values, id=p.id) for p in LOOP_OPTIONS])
def test_associative_mode_with_loop_options_equals_sequential(option):
    (cell, x, params, lengths, carry0, probes), (want, want_grads) = _reference_run(
        "lru", option.get("reverse", False)
    )
    rnn = rnnlab.RNN(cell, mode="associative", **option)
    got, got_grads = _outputs_and_grads(rnn, params, x, lengths, carry0, probes)
    assert_trees_close(got, want)
    assert_trees_close(got_grads, want_grads, rtol=1e-9)


def test_remat_chunk_without_remat_changes_nothing():
    cell, ref, x, params = _setup("gru", {})
    chunked = rnnlab.RNN(cell, remat_chunk=3)
    # both in one program: one compilation
    got, want = fast_jit(lambda params, x: (call(chunked, params, x), call(ref, params, x)))(params, x)
    assert_trees_close(got, want)


# ------------------------------------------------------------------------------------------------------------
# Probes: grad w.r.t. zero probes is dL/d(carry_t), computed here the slow way.


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize(
    "name, options, mode",
    [
        SEQ_AND_ASSOC[0],
        SEQ_AND_ASSOC[1],
        SEQ_AND_ASSOC[2],
        *(pytest.param(*p.values, id=p.id) for p in SEQ_AND_ASSOC[-2:]),
    ],
)
def test_probe_gradients_equal_loss_gradient_wrt_each_carry(name, options, mode, reverse):
    cell, rnn, x, params = _setup(name, options, mode=mode, reverse=reverse)
    lengths = LENGTHS[:2] + (3,)
    x0 = rand_carry(cell, B, 4)
    wy, wc = rand((B, T, H), 5), rand_carry(cell, B, 6)
    one_carry = cell.init_carry(None, (B,))

    def loss(probes):
        carry, y = call(rnn, params, x, jnp.array(lengths), x0, probes)
        return dot(y, wy) + dot(carry, wc)

    # The slow way: each sequence b alone, a perturbation added to the carry after each step, in the order the
    # cell reads the steps (reversed for reverse=True), differentiated w.r.t. each perturbation.
    orders = [np.arange(n)[::-1] if reverse else np.arange(n) for n in lengths]

    @fast_jit  # the probe gradients and every slow gradient in one program: one compilation, not one per op
    def got_and_slow(zero_probes):
        slow = []
        for b, order in enumerate(orders):

            def slow_loss(perts, b=b, order=order):
                carry, y = loop_cell(cell, params["cell"], x[b : b + 1, order], take(x0, b), perts)
                return dot(y, wy[b : b + 1, order]) + dot(carry, take(wc, b))

            zeros = [jax.tree.map(jnp.zeros_like, take(one_carry, b)) for _ in order]
            slow.append(jax.grad(slow_loss)(zeros))
        return jax.grad(loss)(zero_probes), slow

    got, slows = got_and_slow(rnnlab.zero_probes(one_carry, T))

    for b, n in enumerate(lengths):
        for step, t in enumerate(orders[b]):
            assert_trees_close(
                jax.tree.map(lambda g, b=b, t=t: g[b : b + 1, t], got), slows[b][step], rtol=1e-9
            )
        for leaf in jax.tree.leaves(got):
            assert np.all(np.asarray(leaf[b, n:]) == 0.0), "probe gradients on padded steps must be 0"


# ------------------------------------------------------------------------------------------------------------
# Gate intermediates.


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_lstm_gates_are_collected_per_step(reverse):
    _, rnn, x, params = _setup("lstm", {}, reverse=reverse)
    lengths = (T, 2, 1)
    (_, y), state = fast_jit(  # one compilation, not one per eagerly dispatched op
        lambda params, x, lengths: rnn.apply({"params": params}, x, lengths, mutable=["intermediates"])
    )(params, x, jnp.array(lengths))
    gates = state["intermediates"]["gates"][0]
    np.testing.assert_array_equal(
        state["intermediates"]["mask"][0], np.arange(T)[None] < np.array(lengths)[:, None]
    )
    p = jax.tree.map(np.asarray, params["cell"])
    for b, n in enumerate(lengths):  # by hand, on the valid steps in reading order
        c, h = np.zeros(H), np.zeros(H)
        for t in range(n)[::-1] if reverse else range(n):
            zi, zf, zg, zo = np.split(
                np.asarray(x[b, t]) @ p["input"]["kernel"] + p["input"]["bias"] + h @ p["recurrent_kernel"], 4
            )
            i, f, o = _sigmoid(zi), _sigmoid(zf), _sigmoid(zo)
            c = f * c + i * np.tanh(zg)
            h = o * np.tanh(c)
            for k, want in (("i", i), ("f", f), ("o", o)):
                np.testing.assert_allclose(gates[k][b, t], want, rtol=1e-12)
            np.testing.assert_allclose(y[b, t], h, rtol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# Dispatch: one resolve() turns (platform, cell, options) into one plan.


@pytest.mark.parametrize(
    "platform, name, options, want",
    [
        ("cpu", "lstm", {}, None),  # the compiled kernels where they build, else fused (see the test)
        ("cpu", "lstm", {"backend": "fused"}, Plan(Backend.FUSED, hoist=False)),
        ("gpu", "lstm", {}, Plan(Backend.FUSED, hoist=True)),
        ("cpu", "lru", {}, Plan(Backend.XLA, hoist=False)),
        ("gpu", "lru", {}, Plan(Backend.ASSOCIATIVE, hoist=True)),
        ("tpu", "mingru", {}, Plan(Backend.ASSOCIATIVE, hoist=True)),
        ("gpu", "mingru", {"mode": "sequential"}, Plan(Backend.XLA, hoist=True)),
        ("cpu", "lru", {"mode": "associative", "remat": True}, Plan(Backend.ASSOCIATIVE, hoist=True)),
        ("cpu", "rnn", {"hoist": True, "unroll": 2}, Plan(Backend.XLA, hoist=True, unroll=2)),
        ("gpu", "gru", {"remat": True}, Plan(Backend.XLA, hoist=True, remat=True)),
        ("gpu", "gru", {"remat_chunk": 8}, Plan(Backend.XLA, hoist=False, remat=True, chunk=8)),
        ("cpu", "lstm", {"backend": "xla", "hoist": True}, Plan(Backend.XLA, hoist=True)),
    ],
)
def test_resolve_turns_platform_cell_and_options_into_one_plan(platform, name, options, want):
    if want is None:
        want = Plan(cpu_auto_backend(), hoist=False)
    assert rnnlab.RNN(make_cell(name), **options).plan(platform=platform) == want
    assert resolve(make_cell(name), loop_options(options), platform) == want


@pytest.mark.parametrize("name", ["lstm", "lru"])
def test_collecting_gates_runs_the_per_step_loop(name):
    assert rnnlab.RNN(make_cell(name)).plan(platform="gpu", collect=True) == Plan(Backend.XLA, hoist=True)


@pytest.mark.parametrize(
    "options, fragment",
    [
        (
            {"remat_chunks": 8},
            r"unknown rnn_options key\(s\) 'remat_chunks'; valid: backend, mode, hoist, unroll",
        ),
        ("fast", "rnn_options must be a mapping"),
        ({"unroll": 0}, "unroll must be a positive integer"),
        ({"hoist": "yes"}, "hoist must be True, False or 'auto'"),
        ({"remat_chunk": -1}, r"remat_chunk must be an integer >= 0"),
        ({"backend": "tpu"}, "unknown backend 'tpu'; valid: auto, xla, fused, native, cudnn"),
    ],
)
def test_loop_options_fail_with_a_clear_error(options, fragment):
    with pytest.raises(ValueError, match=fragment):
        loop_options(options)


# ------------------------------------------------------------------------------------------------------------
# Bad input.


@pytest.fixture()
def lstm_rnn():
    _, rnn, x, params = _setup("lstm", {})
    return rnn, params, x


@pytest.mark.parametrize("shape", [(T, D), (B, T, D, 1)])
def test_wrong_rank_of_x(lstm_rnn, shape):
    rnn, params, _ = lstm_rnn
    with pytest.raises(ValueError, match=r"x of shape \[B, T, D\].*rank.*x\[None\]"):
        call(rnn, params, jnp.zeros(shape))


@pytest.mark.parametrize("hoist", [True, False])
@pytest.mark.parametrize("name, options", cases())
def test_feature_size_differing_from_init(name, options, hoist):
    _, rnn, _, params = _setup(name, options, hoist=hoist)
    with pytest.raises(ValueError, match=r"input feature size D = 4 differs.*re-initialise the model"):
        call(rnn, params, jnp.zeros((B, T, 4)))


@pytest.mark.parametrize(
    "lengths, fragment",
    [
        ((2, -1, 0), "lengths must be >= 0, got a minimum of -1"),
        ((2, T + 1, 0), f"lengths must be <= T = {T} .*got a maximum of {T + 1}.*pad x"),
        ((2, 1), rf"lengths must have shape \[B\] = \({B},\), got \(2,\).*one length per sequence"),
        (((1, 2, 3),), r"lengths must have shape \[B\]"),
        ((1.0, 2.0, 0.0), "lengths must be integers"),
    ],
)
def test_bad_lengths(lstm_rnn, lengths, fragment):
    rnn, params, x = lstm_rnn
    with pytest.raises(ValueError, match=fragment):
        call(rnn, params, x, jnp.array(lengths))


def test_concrete_lengths_inside_jit(lstm_rnn):
    """Regression: the eager checks on lengths must not concretize a lengths array closed over by jit."""
    rnn, params, x = lstm_rnn
    for lengths in (np.array(LENGTHS), jnp.array(LENGTHS)):
        want = call(rnn, params, x, lengths)
        assert_trees_close(jax.jit(lambda p, lengths=lengths: call(rnn, p, x, lengths))(params), want)
        negative = -lengths
        with pytest.raises(ValueError, match="lengths must be >= 0"):
            jax.jit(lambda p, negative=negative: call(rnn, p, x, negative))(params)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_associative_mode_needs_a_linear_cell(name):
    rnn = rnnlab.RNN(make_cell(name), mode="associative")
    with pytest.raises(
        ValueError,
        match=r"mode='associative' needs a linear cell \(lru, mingru\).*"
        r"use mode='sequential'",
    ):
        jax.eval_shape(rnn.init, jax.random.key(0), jnp.zeros((B, T, D)))


def test_unknown_mode_lists_valid_modes():
    rnn = rnnlab.RNN(make_cell("gru"), mode="parallel")
    with pytest.raises(ValueError, match="unknown mode 'parallel'; valid: auto, sequential, associative"):
        jax.eval_shape(rnn.init, jax.random.key(0), jnp.zeros((B, T, D)))


def test_inputs_with_a_dtype_other_than_param_dtype():
    cell = rnnlab.get_cell("mingru", H, param_dtype=jnp.bfloat16)
    rnn = rnnlab.RNN(cell)
    x = jnp.ones((B, T, D), jnp.float32)
    _, y = rnn.apply(rnn.init(jax.random.key(0), x), x)
    assert y.dtype == jnp.float32
