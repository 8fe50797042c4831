"""Seq2Seq: teacher forcing equals step-by-step decoding, padded source steps are invisible, and a tiny
reverse task is learned (then decoded with rnnlab.decoding)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlab import decoding, textmetrics
from rnnlab.cells import CellSpec, get_cell
from rnnlab.seq2seq import Seq2Seq

INPUTS = jnp.array([[3, 4, 5, 6], [5, 6, 0, 0], [4, 0, 0, 0]], jnp.int32)
LENGTHS = jnp.array([4, 2, 1], jnp.int32)
# Tokens 0 = pad, 1 = bos, 2 = eos, 3..7 = symbols (the reverse task: target = reversed source + eos).
PAD, BOS, EOS, VOCAB, MAX_SRC = 0, 1, 2, 8, 5
DECODER_INPUTS = jnp.array([[1, 6, 5, 4], [1, 6, 5, 2], [1, 4, 2, 2]], jnp.int32)


def random_variables(model, seed, *args, scale=0.7):
    """Gaussian variables shaped like ``model.init``'s, without compiling the initialiser (most of a small
    test's time); the scale gives sharp attention and large activations."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), *args)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(scale * rng.normal(size=s.shape), s.dtype), shapes)


@pytest.mark.parametrize(
    "attention, bidirectional, cell",
    [("general", False, "lstm"), ("dot", True, "gru"), ("none", False, "lstm")],
)
def test_teacher_forcing_equals_step_by_step_decoding(attention, bidirectional, cell):
    model = Seq2Seq(
        8, 7, cell=cell, hidden_size=6, embed_dim=5, attention=attention, bidirectional=bidirectional
    )

    @jax.jit  # one compilation for the test (lengths are arguments: the time loop checks concrete ones)
    def run(variables, inputs, lengths, dec_inputs, dec_lengths):
        forced = model.apply(variables, inputs, lengths, dec_inputs, decoder_lengths=dec_lengths)
        memory = model.apply(variables, inputs, lengths, method="encode")
        carry = model.apply(variables, memory, method="init_decoder_carry")
        stepped = []
        for t in range(dec_inputs.shape[1]):
            carry, logits = model.apply(variables, memory, carry, dec_inputs[:, t], method="decode_step")
            stepped.append(logits)
        return variables, forced, jnp.stack(stepped, 1)

    dec_lengths = jnp.array([4, 3, 2], jnp.int32)
    variables = random_variables(model, 0, INPUTS, LENGTHS, DECODER_INPUTS)
    variables, forced, stepped = run(variables, INPUTS, LENGTHS, DECODER_INPUTS, dec_lengths)
    assert forced.shape == (3, 4, 7)
    valid = np.arange(4)[None, :] < np.asarray(dec_lengths)[:, None]
    np.testing.assert_allclose(np.asarray(forced)[valid], np.asarray(stepped)[valid], atol=1e-5)
    # Padded target steps give exactly the output bias.
    bias = variables["params"]["decoder"]["out"]["bias"]
    np.testing.assert_array_equal(np.asarray(forced)[~valid], np.broadcast_to(bias, ((~valid).sum(), 7)))


@pytest.fixture(scope="module")
def bidirectional_model():
    """A bidirectional LSTM model with 'general' attention and random variables."""
    model = Seq2Seq(8, 7, cell="lstm", hidden_size=6, bidirectional=True, attention="general")
    return model, random_variables(model, 1, INPUTS, LENGTHS, DECODER_INPUTS)


def test_padded_source_tokens_change_nothing(bidirectional_model):
    model, variables = bidirectional_model

    @jax.jit
    def run(variables, inputs, other, lengths, dec_inputs):
        memory = model.apply(variables, inputs, lengths, method="encode")
        carry = model.apply(variables, memory, method="init_decoder_carry")
        _, state = model.apply(
            variables, memory, carry, dec_inputs[:, 0], method="decode_step", mutable=["intermediates"]
        )
        (weights,) = state["intermediates"]["decoder"]["cell"]["attention"]
        return (
            model.apply(variables, inputs, lengths, dec_inputs),
            model.apply(variables, other, lengths, dec_inputs),
            memory,
            weights,
        )

    other = jnp.where(jnp.arange(4)[None, :] < LENGTHS[:, None], INPUTS, 7 - INPUTS % 3)  # new pad tokens
    assert (other != INPUTS).any()
    logits, other_logits, memory, weights = run(variables, INPUTS, other, LENGTHS, DECODER_INPUTS)
    np.testing.assert_array_equal(logits, other_logits)
    # ... because padded steps get exactly zero attention (and have zero encoder states).
    mask = np.asarray(memory["mask"])
    np.testing.assert_array_equal(mask, np.arange(4)[None, :] < np.asarray(LENGTHS)[:, None])
    assert (np.asarray(weights)[~mask] == 0).all()
    np.testing.assert_allclose(np.asarray(weights).sum(1), 1.0, rtol=1e-6)
    assert (np.asarray(memory["values"])[~mask] == 0).all()


def test_greedy_and_beam_decoding_through_seq2seq_step_fn(bidirectional_model):
    model, variables = bidirectional_model
    carry = decoding.seq2seq_init_carry(model, variables, INPUTS, LENGTHS)
    step = decoding.seq2seq_step_fn(model, variables)
    greedy = decoding.greedy(step, carry, BOS, 4, eos=None)
    beams, scores = decoding.beam_search(step, carry, BOS, 4, None, beam_size=1)
    np.testing.assert_array_equal(beams[:, 0], greedy)  # (no eos: one beam is exactly greedy)
    # Teacher forcing on [bos, greedy[:-1]] must predict greedy as the argmax at every step, and the beam's
    # score is the sum of those log-probabilities.
    dec_in = jnp.concatenate([jnp.full((3, 1), BOS, jnp.int32), greedy[:, :-1]], 1)
    log_probs = jax.nn.log_softmax(jax.jit(model.apply)(variables, INPUTS, LENGTHS, dec_in), -1)
    np.testing.assert_array_equal(jnp.argmax(log_probs, -1), greedy)
    picked = jnp.take_along_axis(log_probs, greedy[..., None], -1)[..., 0].sum(1)
    np.testing.assert_allclose(scores[:, 0], picked, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_cellspec_builds_the_same_model_as_a_registry_name(bidirectional):
    kwargs = {"embed_dim": 5, "bidirectional": bidirectional}
    by_name = Seq2Seq(8, 7, cell="gru", hidden_size=6, cell_options={"gate_slope": 2.0}, **kwargs)
    by_spec = Seq2Seq(8, 7, cell=CellSpec("gru", 6, {"gate_slope": 2.0}), **kwargs)
    variables = random_variables(by_name, 2, INPUTS, LENGTHS, DECODER_INPUTS)
    shapes = jax.eval_shape(by_spec.init, jax.random.key(0), INPUTS, LENGTHS, DECODER_INPUTS)
    assert jax.tree.structure(shapes) == jax.tree.structure(variables)
    run = lambda m: jax.jit(lambda v: m.apply(v, INPUTS, LENGTHS, DECODER_INPUTS))(variables)
    np.testing.assert_array_equal(run(by_spec), run(by_name))


def test_invalid_configurations_raise():
    with pytest.raises(ValueError, match="unknown attention"):
        Seq2Seq(5, 5, attention="bahdanau")
    with pytest.raises(ValueError, match="even hidden_size"):
        Seq2Seq(5, 5, hidden_size=5, bidirectional=True)
    with pytest.raises(ValueError, match="unknown cell"):
        Seq2Seq(5, 5, cell="transformer")
    with pytest.raises(ValueError, match="pass cell as a registry name or a CellSpec"):
        Seq2Seq(5, 5, cell=functools.partial(get_cell, "gru", 6), bidirectional=True)
    with pytest.raises(ValueError, match="unknown rnn_options key"):
        Seq2Seq(5, 5, rnn_options={"chunk": 4})


def reverse_batch(rng, batch):
    lengths = rng.integers(1, MAX_SRC + 1, batch)
    src = np.zeros((batch, MAX_SRC), np.int32)
    tgt = np.full((batch, MAX_SRC + 1), PAD, np.int32)
    for b, n in enumerate(lengths):
        src[b, :n] = rng.integers(3, VOCAB, n)
        tgt[b, :n] = src[b, :n][::-1]
        tgt[b, n] = EOS
    dec_in = np.concatenate([np.full((batch, 1), BOS, np.int32), tgt[:, :-1]], 1)
    return src, lengths.astype(np.int32), dec_in, tgt


@pytest.mark.slow  # ~12 s, nearly all of it compiling the training step
def test_reverse_task_learns_and_decodes():
    model = Seq2Seq(VOCAB, VOCAB, cell="gru", hidden_size=32, embed_dim=16, attention="general")
    rng = np.random.default_rng(0)
    src, lengths, dec_in, tgt = reverse_batch(rng, 4)
    params = jax.jit(model.init)(jax.random.key(0), src, lengths, dec_in)["params"]
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    def loss_fn(params, src, lengths, dec_in, tgt):
        logits = model.apply({"params": params}, src, lengths, dec_in)
        mask = (jnp.arange(tgt.shape[1])[None, :] <= lengths[:, None]).astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, tgt)
        return (ce * mask).sum() / mask.sum()

    @jax.jit
    def train_step(params, opt_state, *batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    for _ in range(200):
        params, opt_state, loss = train_step(params, opt_state, *reverse_batch(rng, 32))
    assert loss < 0.05, float(loss)

    src, lengths, _, tgt = reverse_batch(np.random.default_rng(1), 16)
    carry = decoding.seq2seq_init_carry(model, params, src, lengths)
    step = decoding.seq2seq_step_fn(model, params)
    greedy = np.asarray(decoding.greedy(step, carry, BOS, MAX_SRC + 1, EOS, pad=PAD))
    beams, scores = decoding.beam_search(step, carry, BOS, MAX_SRC + 1, EOS, beam_size=3, pad=PAD)
    assert textmetrics.exact_match(list(tgt), list(greedy)) >= 0.9
    assert textmetrics.exact_match(list(tgt), list(np.asarray(beams[:, 0]))) >= 0.9
    assert (np.diff(np.asarray(scores), axis=1) <= 0).all()  # best first
