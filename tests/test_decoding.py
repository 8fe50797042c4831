"""Greedy, beam search and sampling on hand-built models with known probabilities (brute force as reference),
and the language-model step function on a real SequenceModel."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab
from rnnlab import decoding

Partial = jax.tree_util.Partial


def first_order_step(table, carry, tokens):
    """log p(next | previous token) = table[previous]; the carry (a [N] counter) is unused."""
    return carry + 1, table[tokens]


def second_order_step(table, carry, tokens):
    """log p(next | token two back, previous token) = table[carry, tokens]; the carry is the token two back,
    so a beam search that reorders the carry wrongly gets the probabilities wrong."""
    return tokens, table[carry, tokens]


def log_softmax_table(shape, seed, sharpness=2.0):
    return jax.nn.log_softmax(sharpness * jnp.asarray(np.random.default_rng(seed).normal(size=shape)), -1)


def brute_force(logp, start, max_len, eos, vocab, alpha=0.0, pad=-1):
    """Every sequence of at most max_len tokens (ending at its first eos, or of length max_len), with its
    GNMT-normalised score, best first. ``logp(state, token) -> (state, log p)``."""
    out = []
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            if eos in seq[:-1] or (n < max_len and seq[-1] != eos):
                continue
            state, total = start, 0.0
            for tok in seq:
                state, lp = logp(state, tok)
                total += lp
            out.append((total / ((5.0 + n) / 6.0) ** alpha, list(seq) + [pad] * (max_len - n)))
    return sorted(out, key=lambda x: -x[0])


def test_beam_search_finds_the_best_sequence_where_greedy_does_not():
    # Tokens: 0 = bos, 1, 2, 3 = eos. After bos, 1 is likeliest (0.5) but every continuation of 1 is poor;
    # 2 (0.4) is almost surely followed by eos (0.9): p(2, eos) = 0.36 beats anything starting with 1.
    probs = np.array(
        [
            [0.01, 0.50, 0.40, 0.09],
            [0.01, 0.34, 0.33, 0.32],
            [0.01, 0.05, 0.04, 0.90],
            [0.25, 0.25, 0.25, 0.25],
        ]
    )
    table = jnp.log(jnp.asarray(probs, jnp.float32))
    step = Partial(first_order_step, table)
    carry, eos, max_len = jnp.zeros((1,), jnp.int32), 3, 4
    best = brute_force(lambda s, t: (t, float(np.log(probs[s, t]))), 0, max_len, eos, 4)
    assert best[0][1] == [2, 3, -1, -1] and np.exp(best[0][0]) == pytest.approx(0.36)

    greedy = decoding.greedy(step, carry, 0, max_len, eos, pad=-1)
    assert greedy[0, 0] == 1  # greedy commits to the locally best token ...
    tokens, scores = decoding.beam_search(step, carry, 0, max_len, eos, beam_size=2, pad=-1)
    assert tokens[0, 0].tolist() == best[0][1]  # ... beam search recovers the best sequence
    assert scores[0, 0] == pytest.approx(best[0][0], abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_search_top_k_equals_brute_force(alpha):
    # V = 3 (eos = 2), L = 4: with K = 12 >= (V-1)^(L-1) * V / 2 every hypothesis survives, so beam search is
    # exact and its K results must be the K best of all 31 sequences, in order, per batch element.
    vocab, eos, max_len, k = 3, 2, 4, 12
    table = log_softmax_table((vocab, vocab, vocab), seed=1)
    t = np.asarray(table, np.float64)
    carry = jnp.array([0, 1], jnp.int32)  # a different context per batch element
    bos = jnp.array([1, 0], jnp.int32)
    tokens, scores = decoding.beam_search(
        Partial(second_order_step, table), carry, bos, max_len, eos, k, length_penalty=alpha, pad=-1
    )
    assert tokens.shape == (2, k, max_len) and scores.shape == (2, k)
    for b in range(2):
        start = (int(carry[b]), int(bos[b]))
        ref = brute_force(lambda s, tok: ((s[1], tok), t[s[0], s[1], tok]), start, max_len, eos, vocab, alpha)
        assert tokens[b].tolist() == [seq for _, seq in ref[:k]]
        np.testing.assert_allclose(scores[b], [s for s, _ in ref[:k]], rtol=1e-5)


def suppressed_eos_table(seed, vocab=5, eos=4):
    """Random first-order log-probs where eos is either the argmax or nearly impossible, so that no early
    eos can outscore the greedy path (the case where a 1-beam search equals greedy decoding)."""
    table = np.array(log_softmax_table((vocab, vocab), seed))
    rows = np.arange(vocab) % 2 == 0
    table[rows, eos] = table[rows].max(1) + 1.0
    table[~rows, eos] = -30.0
    return jnp.asarray(table)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_beam_equals_greedy(seed):
    table = suppressed_eos_table(seed)
    step = Partial(first_order_step, table)
    carry, bos = jnp.zeros((4,), jnp.int32), jnp.arange(4)
    for eos in (4, None):
        greedy = decoding.greedy(step, carry, bos, 6, eos)
        tokens, scores = decoding.beam_search(step, carry, bos, 6, eos, beam_size=1)
        np.testing.assert_array_equal(tokens[:, 0], greedy)
        g = np.asarray(greedy)
        prev = np.concatenate([np.asarray(bos)[:, None], g[:, :-1]], 1)
        lp = np.asarray(table)[prev, g]
        # Steps up to and including the first eos count; the padding after it does not.
        ended_before = np.zeros_like(g, bool) if eos is None else np.cumsum(g == eos, 1) - (g == eos) > 0
        np.testing.assert_allclose(scores[:, 0], np.where(ended_before, 0.0, lp).sum(1), rtol=1e-5)


def test_tiny_temperature_and_top1_sampling_equal_greedy():
    table = log_softmax_table((6, 6), seed=3, sharpness=1.0)
    step = Partial(first_order_step, table)
    carry, bos = jnp.zeros((6,), jnp.int32), jnp.arange(6)
    greedy = decoding.greedy(step, carry, bos, 8, eos=5)
    for temperature, top_k in ((1e-6, 0), (0.0, 0), (1.0, 1)):
        got = decoding.sample(step, carry, bos, 8, jax.random.key(0), temperature, top_k, eos=5)
        np.testing.assert_array_equal(got, greedy)


def test_sampling_follows_the_tempered_distribution():
    probs = np.array([0.6, 0.3, 0.1])
    table = jnp.log(jnp.tile(jnp.asarray(probs, jnp.float32), (3, 1)))
    step = Partial(first_order_step, table)
    n = 4000
    carry = jnp.zeros((n,), jnp.int32)
    for temperature, top_k, expected in (
        (1.0, 0, probs),
        (0.5, 0, probs**2 / (probs**2).sum()),
        (1.0, 2, np.array([2 / 3, 1 / 3, 0.0])),
    ):
        tokens = decoding.sample(step, carry, 0, 2, jax.random.key(1), temperature, top_k)
        freq = np.bincount(np.asarray(tokens).ravel(), minlength=3) / tokens.size
        np.testing.assert_allclose(freq, expected, atol=0.025)


def test_eos_ends_sequences_and_pads_the_rest():
    # eos = 2 is the likeliest token after 1; 0 leads to 1 or itself.
    probs = np.array([[0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3]])
    step = Partial(first_order_step, jnp.log(jnp.asarray(probs, jnp.float32)))
    carry = jnp.zeros((2,), jnp.int32)
    greedy = decoding.greedy(step, carry, jnp.array([0, 1]), 6, eos=2, pad=-1)
    assert greedy.tolist() == [[0] * 6, [2, -1, -1, -1, -1, -1]]
    samples = np.asarray(
        decoding.sample(step, jnp.zeros((64,), jnp.int32), 1, 6, jax.random.key(2), eos=2, pad=-1)
    )
    tokens, _ = decoding.beam_search(step, carry, jnp.array([0, 1]), 6, eos=2, beam_size=3, pad=-1)
    for seqs in (samples, np.asarray(tokens).reshape(-1, 6)):
        for seq in seqs:
            ends = np.flatnonzero(seq == 2)
            if ends.size:  # exactly one eos, then padding only
                assert ends.size == 1 and (seq[ends[0] + 1 :] == -1).all() and (seq[: ends[0]] >= 0).all()
            else:
                assert (seq >= 0).all()
    assert (samples == 2).any() and (samples[:, -1] == -1).any()


def test_decoders_do_not_recompile_for_new_parameters():
    traces = []

    def counting_step(table, carry, tokens):
        traces.append(1)  # runs only while tracing
        return first_order_step(table, carry, tokens)

    carry = jnp.zeros((2,), jnp.int32)
    for seed in (0, 1):
        step = Partial(counting_step, log_softmax_table((4, 4), seed))
        decoding.greedy(step, carry, 0, 5, 3)
        decoding.beam_search(step, carry, 0, 5, 3, beam_size=2)
    assert len(traces) == 2  # one trace per decoder, none for the second table


def test_lm_greedy_autocomplete_equals_rerunning_the_model():
    vocab = 7
    model = rnnlab.SequenceModel(
        cell="gru", hidden_size=8, num_layers=2, vocab_size=vocab, head="all", num_outputs=vocab
    )
    prompt = jnp.array([[1, 2, 3, 0], [4, 5, 0, 0]], jnp.int32)
    lengths = jnp.array([3, 2], jnp.int32)
    # Random parameters shaped like model.init's (without compiling the initialiser), large enough for sharp
    # distributions: no near-ties in the argmax.
    shapes = jax.eval_shape(model.init, jax.random.key(0), prompt, lengths)["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype), shapes)
    carry, last = decoding.lm_prefill(model, params, prompt, lengths)
    generated = decoding.greedy(decoding.lm_step_fn(model, params), carry, last, 4, eos=None)
    # The model is causal, so one run over prompt + generated tokens gives every step's prediction: greedy
    # decoding must have picked the argmax after each prefix.
    full = jnp.zeros((2, prompt.shape[1] + 4), jnp.int32)
    for b in range(2):
        full = full.at[b, : lengths[b]].set(prompt[b, : lengths[b]])
        full = full.at[b, lengths[b] : lengths[b] + 4].set(generated[b])
    argmax = jnp.argmax(jax.jit(model.apply)({"params": params}, full), -1)
    for b in range(2):
        n = int(lengths[b])
        assert generated[b].tolist() == argmax[b, n - 1 : n + 3].tolist()
    # From scratch: the zero carry and any bos.
    zero = decoding.lm_init_carry(model, 3)
    out = decoding.greedy(decoding.lm_step_fn(model, params), zero, 1, 3, eos=None)
    assert out.shape == (3, 3)
    with pytest.raises(ValueError, match="head='all'"):
        decoding.lm_step_fn(rnnlab.SequenceModel(vocab_size=vocab, head="last"), params)
