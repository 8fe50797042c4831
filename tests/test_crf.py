"""Linear-chain CRF: log Z and Viterbi equal brute-force enumeration of all tag sequences (with padding), the
gradient of log Z is the tag marginals, and the Flax module wraps the same functions."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlab import crf

B, T, C = 4, 4, 3
LENGTHS = np.array([4, 2, 1, 0])


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def random_problem(seed):
    rng = np.random.default_rng(seed)
    params = crf.CRFParams(
        jnp.asarray(rng.normal(size=(C, C))), jnp.asarray(rng.normal(size=C)), jnp.asarray(rng.normal(size=C))
    )
    return params, jnp.asarray(rng.normal(size=(B, T, C)))


def brute_score(params, e, tags):
    """The score of one unpadded tag sequence, straight from the definition."""
    a, start, end = (np.asarray(p) for p in params)
    s = start[tags[0]] + end[tags[-1]] + sum(e[t, y] for t, y in enumerate(tags))
    return s + sum(a[tags[t - 1], tags[t]] for t in range(1, len(tags)))


def enumerate_all(params, e, n):
    """{tags: score} for every one of the C^n tag sequences of length n."""
    return {tags: brute_score(params, e, tags) for tags in itertools.product(range(C), repeat=n)}


@pytest.fixture(scope="module")
def jitted():
    return jax.jit(
        lambda p, e, tags, lengths: (
            crf.log_partition(p, e, lengths),
            crf.viterbi(p, e, lengths),
            crf.sequence_score(p, e, tags, lengths),
            jax.grad(lambda e: crf.log_partition(p, e, lengths).sum())(e),
        )
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_viterbi_and_score_equal_brute_force(jitted, seed):
    params, e = random_problem(seed)
    tags = np.random.default_rng(seed + 10).integers(0, C, size=(B, T))
    log_z, (best, best_score), score, marginals = jitted(params, e, jnp.asarray(tags), jnp.asarray(LENGTHS))
    en = np.asarray(e)
    for b, n in enumerate(LENGTHS):
        if n == 0:
            assert log_z[b] == 0.0 and best_score[b] == 0.0 and score[b] == 0.0
            assert np.all(np.asarray(best[b]) == 0)
            continue
        scores = enumerate_all(params, en[b], n)
        values = np.array(list(scores.values()))
        np.testing.assert_allclose(log_z[b], np.log(np.exp(values).sum()), rtol=1e-12)
        argmax = max(scores, key=scores.get)
        assert tuple(np.asarray(best[b, :n])) == argmax
        assert np.all(np.asarray(best[b, n:]) == 0)
        np.testing.assert_allclose(best_score[b], scores[argmax], rtol=1e-12)
        np.testing.assert_allclose(score[b], scores[tuple(tags[b, :n])], rtol=1e-12)
        # d log Z / d e_t[j] = p(y_t = j): the brute-force marginals on valid steps, exactly 0 on padding.
        probs = np.exp(values - values.max()) / np.exp(values - values.max()).sum()
        want = np.zeros((n, C))
        for p, seq in zip(probs, scores, strict=True):
            want[np.arange(n), list(seq)] += p
        np.testing.assert_allclose(marginals[b, :n], want, rtol=1e-10, atol=1e-12)
        assert np.all(np.asarray(marginals[b, n:]) == 0.0)


def test_nll_is_a_normalised_distribution_with_finite_gradients():
    params, e = random_problem(5)
    lengths = jnp.asarray(LENGTHS)
    n = 2  # sequence 1 has two valid steps: p(y) over all C^2 sequences must sum to 1
    all_tags = np.array([[*seq, 0, 0] for seq in itertools.product(range(C), repeat=n)])
    batch = jnp.broadcast_to(e[1], (len(all_tags), T, C))
    nll = jax.jit(crf.negative_log_likelihood)(params, batch, all_tags, jnp.full(len(all_tags), n))
    np.testing.assert_allclose(np.exp(-np.asarray(nll)).sum(), 1.0, rtol=1e-12)

    tags = jnp.asarray(np.random.default_rng(0).integers(0, C, size=(B, T)))
    grads = jax.jit(jax.grad(lambda p, e: crf.negative_log_likelihood(p, e, tags, lengths).sum(), (0, 1)))(
        params, e
    )
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_module_starts_at_zero_and_matches_the_functions():
    _, e = random_problem(3)
    tags = jnp.zeros((B, T), jnp.int32)
    lengths = jnp.asarray(LENGTHS)
    module = crf.CRF(C)
    variables = module.init(jax.random.key(0), e, tags, lengths)
    assert all(float(jnp.abs(v).sum()) == 0.0 for v in jax.tree.leaves(variables))
    # With zero transitions the CRF factorises: Viterbi is the per-step argmax of the emissions.
    best, _ = module.apply(variables, e, lengths, method="decode")
    mask = np.arange(T)[None] < LENGTHS[:, None]
    np.testing.assert_array_equal(np.asarray(best), np.where(mask, np.argmax(np.asarray(e), -1), 0))
    rng = np.random.default_rng(4)
    variables = jax.tree.map(lambda v: jnp.asarray(rng.normal(size=v.shape)), variables)
    p = variables["params"]
    params = crf.CRFParams(p["transitions"], p["start"], p["end"])
    np.testing.assert_allclose(
        module.apply(variables, e, tags, lengths), crf.negative_log_likelihood(params, e, tags, lengths)
    )
    with pytest.raises(ValueError, match="C=3"):
        module.apply(variables, e[..., :2], tags, lengths)
