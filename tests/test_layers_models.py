"""Layers and models: bidirectional / stacked layers mask exactly and match jax.experimental.rnn.lstm_ref, the
SequenceModel heads do what models.py documents, embeddings, residual connections and dropout behave, and
bad configurations fail with a message that names the fix."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from helpers import (
    CELL_CASES,
    LENGTHS,
    B,
    D,
    H,
    T,
    apply,
    assert_masked_equals_alone,
    assert_trees_close,
    call,
    fast_jit,
    init_params,
    make_cell,
    rand,
    rand_carry,
    x64,  # noqa: F401  (autouse fixture: every test runs in float64)
)
from jax.experimental.rnn import lstm_ref

import rnnlab

F64 = {"param_dtype": jnp.float64}
C = 2  # outputs


def _model(**kwargs):
    kwargs = {"cell": "gru", "hidden_size": H, "cell_options": F64, "num_outputs": C, **kwargs}
    return rnnlab.SequenceModel(**kwargs)


# ------------------------------------------------------------------------------------------------------------
# Layers.


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_masked_batch_equals_each_sequence_alone(merge):
    fwd, bwd = make_cell("lstm"), make_cell("gru")
    layer = rnnlab.Bidirectional(rnnlab.RNN(fwd), rnnlab.RNN(bwd, reverse=True), merge=merge)
    x = rand((B, T, D), 0)
    params = init_params(layer, x)
    assert_masked_equals_alone(layer, params, x, LENGTHS, (rand_carry(fwd, B, 1), rand_carry(bwd, B, 2)))
    (_, _), y = apply(layer, params, x)
    _, yf = apply(rnnlab.RNN(fwd), params["forward"], x)
    _, yb = apply(rnnlab.RNN(bwd, reverse=True), params["backward"], x)
    assert_trees_close(y, jnp.concatenate([yf, yb], -1) if merge == "concat" else yf + yb)


def test_stacked_bidirectional_lstm_equals_lstm_ref():
    """Two bidirectional layers with ragged lengths; cuDNN weights mapped as in the gated.py docstring."""
    layers, lengths = 2, (T, 3, 1)
    stack = rnnlab.StackedRNN(
        functools.partial(rnnlab.get_cell, "lstm", H, **F64), num_layers=layers, bidirectional=True
    )
    rng = np.random.default_rng(0)
    w_ih, w_hh, b_ih, b_hh, params = {}, {}, {}, {}, {}
    for layer in range(layers):
        d = D if layer == 0 else 2 * H
        for k, direction in enumerate(("forward", "backward")):
            i = 2 * layer + k
            w_ih[i], w_hh[i] = rng.normal(size=(4 * H, d)) * 0.5, rng.normal(size=(4 * H, H)) * 0.5
            b_ih[i], b_hh[i] = rng.normal(size=4 * H), rng.normal(size=4 * H)
            params.setdefault(f"layer{layer}", {})[direction] = {
                "cell": {
                    "input": {"kernel": w_ih[i].T, "bias": b_ih[i] + b_hh[i]},
                    "recurrent_kernel": w_hh[i].T,
                }
            }
    h0, c0 = rng.normal(size=(2 * layers, B, H)), rng.normal(size=(2 * layers, B, H))
    x = rand((B, T, D), 1)
    as_jnp = lambda d: {k: jnp.asarray(v) for k, v in d.items()}
    y_ref, h_n, c_n = lstm_ref(
        x,
        jnp.asarray(h0),
        jnp.asarray(c0),
        as_jnp(w_ih),
        as_jnp(w_hh),
        as_jnp(b_ih),
        as_jnp(b_hh),
        jnp.array(lengths, jnp.int32),
        D,
        H,
        layers,
        0.0,
        True,
    )
    carries0 = [((c0[2 * k], h0[2 * k]), (c0[2 * k + 1], h0[2 * k + 1])) for k in range(layers)]
    carries, y = apply(stack, params, x, jnp.array(lengths), initial_carries=carries0)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    for layer, pair in enumerate(carries):
        for k, (c, h) in enumerate(pair):
            np.testing.assert_allclose(h, h_n[2 * layer + k], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(c, c_n[2 * layer + k], rtol=1e-10, atol=1e-12)


def test_residual_adds_each_layers_input_from_the_second_layer_on():
    x = rand((B, T, H), 2)  # D = H, so the first layer could take a residual too: it must not
    lengths = jnp.array(LENGTHS)
    plain, res = _model(num_layers=3, head="all"), _model(num_layers=3, head="all", residual=True)
    params = init_params(plain, x)
    cell = make_cell("gru")
    y = x
    for layer in range(3):
        _, out = apply(rnnlab.RNN(cell), params["rnn"][f"layer{layer}"], y, lengths)
        y = out + y if layer > 0 else out
    head = params["head"]
    assert_trees_close(apply(res, params, x, lengths), y @ head["kernel"] + head["bias"])
    assert not np.allclose(apply(plain, params, x, lengths), apply(res, params, x, lengths))


# ------------------------------------------------------------------------------------------------------------
# SequenceModel heads.


@pytest.mark.parametrize(
    "head, bidirectional", [("last", False), ("last", True), ("mean", True), ("all", True)]
)
def test_model_on_a_padded_batch_equals_the_model_on_each_truncated_sequence(head, bidirectional):
    model = _model(num_layers=2, head=head, bidirectional=bidirectional)
    x, lengths = rand((B, T, D), 3), (T, 2, 1)
    params = init_params(model, x)

    @fast_jit  # the batch and each sequence alone in one program: one compilation instead of 1 + B
    def batch_and_alone(params, x, lengths_arr):
        return call(model, params, x, lengths_arr), [
            call(model, params, x[b : b + 1, :n]) for b, n in enumerate(lengths)
        ]

    out, alones = batch_and_alone(params, x, jnp.array(lengths))
    for b, n in enumerate(lengths):
        alone = alones[b]
        if head == "all":
            assert_trees_close(out[b : b + 1, :n], alone)
            # documented: padded steps give exactly the head's bias
            np.testing.assert_array_equal(out[b, n:], np.broadcast_to(params["head"]["bias"], (T - n, C)))
        else:
            assert_trees_close(out[b : b + 1], alone)


def _last_valid(y, lengths, reverse=False):
    """NumPy: y[b, n - 1] (reverse: y[b, 0]) for each sequence of length n, zeros for n = 0."""
    y = np.asarray(y)
    return np.stack(
        [y[b, 0 if reverse else n - 1] if n else np.zeros(y.shape[-1]) for b, n in enumerate(lengths)]
    )


LAST_CASES = [pytest.param(n, o, False, id=i) for i, n, o in CELL_CASES] + [
    pytest.param(n, o, True, id=f"{i}-bidirectional") for i, n, o in CELL_CASES if i in ("lstm", "lru")
]


@pytest.mark.parametrize("name, options, bidirectional", LAST_CASES)
def test_last_head_reads_each_cells_output_at_the_last_valid_step(name, options, bidirectional):
    """For y_t = h_t cells this is the final hidden state; for the LRU it is the readout Re(C h_T) + D x_T
    (issue 11: the head used to read Re(h_T) and skip the readout)."""
    spec = rnnlab.CellSpec(name, H, {**F64, **options})
    model = _model(cell=spec, cell_options=(), bidirectional=bidirectional)
    x, lengths = rand((B, T, D), 4), (T, 2, 0)
    params = init_params(model, x)
    cell, head = make_cell(name, **options), params["head"]

    @fast_jit  # the model and the bare layers in one program: one compilation instead of two or three
    def model_and_layers(params, x, lengths):
        layer = params["rnn"]["layer0"]
        if not bidirectional:
            return call(model, params, x, lengths), call(rnnlab.RNN(cell), layer, x, lengths), None
        fwd = call(rnnlab.RNN(cell), layer["forward"], x, lengths)
        _, yb = call(rnnlab.RNN(cell, reverse=True), layer["backward"], x, lengths)
        return call(model, params, x, lengths), fwd, yb

    out, (carry, yf), yb = model_and_layers(params, x, jnp.array(lengths))
    if bidirectional:
        feats = np.concatenate([_last_valid(yf, lengths), _last_valid(yb, lengths, reverse=True)], -1)
    else:
        feats = _last_valid(yf, lengths)
    assert_trees_close(out, feats @ head["kernel"] + head["bias"])
    raw_state = np.real(np.asarray(cell.hidden(carry)))[:, :H]
    assert np.allclose(_last_valid(yf, lengths), raw_state) == (name != "lru")


def test_last_head_reads_the_last_layers_cell_outputs_before_the_residual():
    x, lengths = rand((B, T, H), 5), jnp.array((T, 2, 0))
    model = _model(cell="lstm", num_layers=2, residual=True, head="last")
    params = init_params(model, x)
    cell, rnn = make_cell("lstm"), params["rnn"]
    _, y0 = apply(rnnlab.RNN(cell), rnn["layer0"], x, lengths)
    (_, h1), _ = apply(rnnlab.RNN(cell), rnn["layer1"], y0, lengths)  # the input x + ... is not added
    assert_trees_close(
        apply(model, params, x, lengths), h1 @ params["head"]["kernel"] + params["head"]["bias"]
    )


def test_mean_head_is_the_masked_mean_of_the_rnn_outputs():
    model = _model(head="mean")
    x, lengths = rand((B, T, D), 5), (T, 2, 0)
    params = init_params(model, x)
    _, y = apply(rnnlab.RNN(make_cell("gru")), params["rnn"]["layer0"], x, jnp.array(lengths))
    feats = np.stack([np.asarray(y[b, :n]).mean(0) if n else np.zeros(H) for b, n in enumerate(lengths)])
    assert_trees_close(
        apply(model, params, x, jnp.array(lengths)), feats @ params["head"]["kernel"] + params["head"]["bias"]
    )


def test_embedding_input_equals_feature_input_of_the_embedded_tokens():
    vocab, embed_dim = 7, 4
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, vocab, size=(B, T)), jnp.int32)
    emb_model = _model(vocab_size=vocab, embed_dim=embed_dim, head="all")
    params = init_params(emb_model, tokens)
    assert params["embed"]["embedding"].shape == (vocab, embed_dim)
    lengths = jnp.array(LENGTHS)
    features = params["embed"]["embedding"][tokens]
    rest = {k: v for k, v in params.items() if k != "embed"}
    assert_trees_close(
        apply(emb_model, params, tokens, lengths), apply(_model(head="all"), rest, features, lengths)
    )


def test_dropout_is_off_in_eval_and_on_in_training():
    x, lengths = rand((B, T, D), 6), jnp.array(LENGTHS)
    model, no_dropout = _model(num_layers=2, head="all", dropout=0.5), _model(num_layers=2, head="all")
    params = init_params(model, x)
    run = jax.jit(
        lambda p, x, key, train: call(model, p, x, lengths, train=train, rngs={"dropout": key}),
        static_argnums=3,
    )
    k1, k2 = jax.random.key(1), jax.random.key(2)
    assert_trees_close(run(params, x, k1, False), apply(no_dropout, params, x, lengths))
    assert_trees_close(run(params, x, k1, False), run(params, x, k2, False))
    train1, train2 = run(params, x, k1, True), run(params, x, k2, True)
    assert not np.allclose(train1, run(params, x, k1, False))
    assert not np.allclose(train1, train2)
    assert_trees_close(run(params, x, k1, True), train1)  # same rng, same mask


# ------------------------------------------------------------------------------------------------------------
# Cells given as names, CellSpecs or factories; time-loop options.


def test_a_cellspec_or_a_factory_builds_the_same_model_as_a_registry_name():
    x, lengths = rand((B, T, D), 7), jnp.array(LENGTHS)
    by_name = _model(cell="lstm", cell_options={**F64, "forget_bias": 2.0}, num_layers=2)
    spec = rnnlab.CellSpec("lstm", H, {"forget_bias": 2.0, **F64})
    by_spec = rnnlab.SequenceModel(cell=spec, num_layers=2, num_outputs=C)
    by_factory = rnnlab.SequenceModel(
        cell=functools.partial(rnnlab.get_cell, "lstm", H, forget_bias=2.0, **F64),
        num_layers=2,
        num_outputs=C,
    )
    init = lambda m: m.init(jax.random.key(0), x[:, :1])["params"]  # the initialisers themselves
    want = init(by_name)
    for model in (by_spec, by_factory):
        assert_trees_close(init(model), want)
        assert_trees_close(apply(model, want, x, lengths), apply(by_name, want, x, lengths))
    # A spec is a value: equal specs give equal, hashable models (static arguments of jax.jit).
    assert spec == rnnlab.CellSpec("lstm", H, (("param_dtype", jnp.float64), ("forget_bias", 2.0)))
    assert hash(by_spec) == hash(rnnlab.SequenceModel(cell=spec, num_layers=2, num_outputs=C))


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"cell": make_cell("gru")}, TypeError, "registry name .*a CellSpec or a factory"),
        ({"cell": 3}, TypeError, "registry name"),
        ({"cell": rnnlab.CellSpec("gru", H), "cell_options": {"radius": 0.5}}, ValueError, "carries its own"),
        ({"rnn_options": {"remat_chunks": 8}}, ValueError, r"unknown rnn_options key\(s\) 'remat_chunks'"),
        ({"rnn_options": "remat"}, ValueError, "rnn_options must be a mapping"),
        ({"rnn_options": {"mode": "associative"}}, ValueError, "mode='associative' needs a linear cell"),
        ({"rnn_options": {"backend": "cudnn"}}, ValueError, "backend='cudnn' supports LSTMCell, not GRUCell"),
    ],
)
def test_bad_cells_and_rnn_options_fail_at_construction(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        _model(**{"cell_options": (), **kwargs})


def test_rnn_options_reach_every_layer():
    x, lengths = rand((B, T, D), 8), jnp.array(LENGTHS)
    plain = _model(num_layers=2, bidirectional=True, head="all")
    chunked = _model(num_layers=2, bidirectional=True, head="all", rnn_options={"remat_chunk": 2})
    params = init_params(plain, x)
    assert_trees_close(apply(chunked, params, x, lengths), apply(plain, params, x, lengths))
    rnns = []

    def spy(next_fun, args, kwargs, context):
        if isinstance(context.module, rnnlab.RNN) and context.method_name == "__call__":
            rnns.append(context.module.plan())
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(spy):
        jax.eval_shape(lambda p: call(chunked, p, x, lengths), params)
    assert len(rnns) == 4 and all(p.chunk == 2 and p.remat for p in rnns)


# ------------------------------------------------------------------------------------------------------------
# Bad configurations.


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"head": "first"}, "unknown head 'first'; valid heads: last, mean, all"),
        ({"cell": "lstmm"}, "unknown cell 'lstmm'; valid cells: rnn, irnn, lstm, gru, lru, mingru"),
        ({"cell_options": {"forgetbias": 1.0}}, "unknown option.*'forgetbias'.*valid options:"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
    ],
)
def test_bad_model_configuration_fails_at_construction(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        _model(**kwargs)


def test_embedding_model_rejects_float_features():
    model = _model(vocab_size=5)
    with pytest.raises(ValueError, match=r"inputs must be int \[B, T\].*vocab_size=None"):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((B, T, D)))


def test_feature_model_rejects_token_ids():
    with pytest.raises(ValueError, match=r"inputs must be float \[B, T, D\].*set vocab_size"):
        jax.eval_shape(_model().init, jax.random.key(0), jnp.zeros((B, T), jnp.int32))


def test_bidirectional_needs_a_reversed_backward_rnn():
    layer = rnnlab.Bidirectional(rnnlab.RNN(make_cell("gru")), rnnlab.RNN(make_cell("gru")))
    with pytest.raises(ValueError, match=r"backward=RNN\(..., reverse=True\)"):
        jax.eval_shape(layer.init, jax.random.key(0), jnp.zeros((B, T, D)))


def test_unknown_merge_lists_valid_merges():
    layer = rnnlab.Bidirectional(
        rnnlab.RNN(make_cell("gru")), rnnlab.RNN(make_cell("gru"), reverse=True), "max"
    )
    with pytest.raises(ValueError, match="unknown merge 'max'; valid: concat, sum"):
        jax.eval_shape(layer.init, jax.random.key(0), jnp.zeros((B, T, D)))


def test_zero_layers_is_rejected():
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        jax.eval_shape(_model(num_layers=0).init, jax.random.key(0), jnp.zeros((B, T, D)))
