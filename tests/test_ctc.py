"""CTC: the loss, greedy decoding and prefix beam search agree with brute-force enumeration of every
alignment on tiny problems (with padded frames and labels); edit distance and label error rate."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from fake_digits import prototype_digits

from rnnlab import ctc, textmetrics
from rnnlab.models import SequenceModel
from rnnlab.tasks import digit_sequences as ds

B, T, C = 4, 4, 3  # class 0 is the blank
FRAMES = np.array([4, 3, 2, 4])
LABELS = np.array([[1, 2, 0], [2, 2, 0], [1, 0, 0], [0, 0, 0]])  # right-padded with 0
LABEL_LENGTHS = np.array([2, 1, 1, 0])


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def collapse(path):
    out = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
    return tuple(out)


def labelling_probs(log_probs):
    """{labelling: p} summed over all C^n alignments of ``log_probs: [n, C]``."""
    out = {}
    for path in itertools.product(range(C), repeat=len(log_probs)):
        p = np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
        out[collapse(path)] = out.get(collapse(path), 0.0) + p
    return out


def random_log_probs(seed, sharp=1.0):
    logits = sharp * np.random.default_rng(seed).normal(size=(B, T, C))
    return logits, np.asarray(jax.nn.log_softmax(jnp.asarray(logits), -1))


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_equals_minus_log_sum_over_alignments(seed):
    logits, log_probs = random_log_probs(seed)
    loss = jax.jit(ctc.ctc_loss)(logits, FRAMES, LABELS, LABEL_LENGTHS)
    for b in range(B):
        probs = labelling_probs(log_probs[b, : FRAMES[b]])
        assert abs(sum(probs.values()) - 1.0) < 1e-12  # the labellings partition the alignments
        want = -np.log(probs[tuple(LABELS[b, : LABEL_LENGTHS[b]])])
        np.testing.assert_allclose(loss[b], want, rtol=1e-6)


def test_labelling_without_alignment_has_a_huge_loss():
    # "1 1" needs three frames (1 - 1); two are too few.
    logits, _ = random_log_probs(0)
    loss = jax.jit(ctc.ctc_loss)(logits[:1, :2], np.array([2]), np.array([[1, 1]]), np.array([2]))
    assert loss[0] > 1e3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_prefix_beam_search_with_a_large_beam_finds_the_most_probable_labelling(seed):
    _, log_probs = random_log_probs(seed, sharp=0.5)  # flat distributions: best path != best labelling often
    for b in range(B):
        lp = log_probs[b, : FRAMES[b]]
        probs = labelling_probs(lp)
        beams = ctc.prefix_beam_search(lp, beam_size=100)
        assert len(beams) == len(probs)  # no pruning: every labelling survives, with its exact probability
        best, best_lp = beams[0]
        assert best == max(probs, key=probs.get)
        for labelling, value in beams:
            np.testing.assert_allclose(np.exp(value), probs[labelling], rtol=1e-10)


def test_greedy_decoding_is_the_collapsed_best_path():
    logits, log_probs = random_log_probs(7, sharp=3.0)
    labels, lengths = jax.jit(ctc.greedy_decode)(logits, FRAMES)
    decoded = ctc.to_lists(labels, lengths)
    for b in range(B):
        lp = log_probs[b, : FRAMES[b]]
        paths = itertools.product(range(C), repeat=len(lp))
        best_path = max(paths, key=lambda p: sum(lp[t, c] for t, c in enumerate(p)))
        assert tuple(decoded[b]) == collapse(best_path)
        assert np.all(np.asarray(labels[b, lengths[b] :]) == 0)


def test_greedy_collapses_repeats_only_without_a_blank_between():
    one_hot = np.eye(C)[[1, 1, 0, 1, 2, 2, 0, 0]][None] * 10.0  # "1 1 - 1 2 2 - -"
    labels, lengths = jax.jit(ctc.greedy_decode)(one_hot, np.array([8]))
    assert ctc.to_lists(labels, lengths) == [[1, 1, 2]]
    labels, lengths = jax.jit(ctc.greedy_decode)(
        one_hot, np.array([3])
    )  # frames after the length are ignored
    assert ctc.to_lists(labels, lengths) == [[1]]


def test_edit_distance_and_label_error_rate():
    assert textmetrics.edit_distance("kitten", "sitting") == 3
    assert textmetrics.edit_distance([], [1, 2]) == 2
    assert textmetrics.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert textmetrics.edit_distance([1, 2, 3], [3, 2, 1]) == 2
    assert textmetrics.label_error_rate([[1, 2, 3], [4]], [[1, 3], [4, 4]]) == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        textmetrics.label_error_rate([[]], [[1]])


def test_beam_search_sums_alignments_where_the_best_path_does_not():
    # Two frames of p(blank, 1, 2) = (0.5, 0.4, 0.1): the best path "- -" (0.25) reads as the empty labelling,
    # but "1" has three alignments (1 1, 1 -, - 1) worth 0.16 + 0.2 + 0.2 = 0.56.
    log_probs = np.log(np.array([[0.5, 0.4, 0.1]] * 2))
    labels, lengths = ctc.greedy_decode(log_probs[None], np.array([2]))
    assert ctc.to_lists(labels, lengths) == [[]]
    (best, best_lp), *_ = ctc.prefix_beam_search(log_probs, beam_size=2)
    assert best == (1,)
    np.testing.assert_allclose(np.exp(best_lp), 0.56)


def test_a_tiny_bidirectional_gru_learns_to_transcribe_digit_strips():
    """Strips of 1-3 held-out "digits" read column by column; the CTC-trained tagger's greedy transcripts
    have a label error rate under 10% (guessing one fixed digit for every strip scores 69-78%)."""
    images, labels = prototype_digits(3, 300, (6, 5), flip=0.05)
    pools = ds.split_digits(labels, {"train": 0.8, "test": 0.2})
    train = ds.make_strips(images, labels, pools["train"], 2048, max_digits=3, max_gap=1, seed=0)
    test = ds.make_strips(images, labels, pools["test"], 128, max_digits=3, max_gap=1, seed=1)
    frames, lengths = ds.strip_frames(train)
    data = tuple(
        jnp.asarray(a, dtype)
        for a, dtype in [
            (frames, jnp.float32),
            (lengths, jnp.int32),
            (train.digits + 1, jnp.int32),
            (train.num_digits, jnp.int32),
        ]
    )  # label k is class k + 1: class 0 is the blank
    model = SequenceModel(cell="gru", hidden_size=16, bidirectional=True, head="all", num_outputs=4)
    opt = optax.adam(1e-2)

    def loss_fn(params, x, ln, y, yl):
        return ctc.ctc_loss(model.apply({"params": params}, x, ln), ln, y, yl).mean()

    @jax.jit
    def step(params, opt_state, i):
        idx = (i * 32 + jnp.arange(32)) % len(data[0])
        grads = jax.grad(loss_fn)(params, *(a[idx] for a in data))
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    params = jax.jit(model.init)(jax.random.key(0), data[0][:2], data[1][:2])["params"]
    opt_state = opt.init(params)
    for i in range(300):
        params, opt_state = step(params, opt_state, i)
    test_frames, test_lengths = ds.strip_frames(test)
    logits = jax.jit(model.apply)({"params": params}, test_frames, test_lengths)
    hyps = ctc.to_lists(*ctc.greedy_decode(logits, test_lengths))
    refs = [list(d[:n] + 1) for d, n in zip(test.digits, test.num_digits, strict=True)]
    assert textmetrics.label_error_rate(refs, hyps) < 0.1


def test_jitted_edit_distances_equal_the_host_ones():
    rng = np.random.default_rng(5)
    b, m, n = 64, 7, 5
    hyps, refs = rng.integers(1, 4, (b, m)), rng.integers(1, 4, (b, n))
    hl, rl = rng.integers(0, m + 1, b), rng.integers(0, n + 1, b)
    got = np.asarray(jax.jit(ctc.edit_distances)(hyps, hl, refs, rl))
    want = [textmetrics.edit_distance(r[:k], h[:j]) for h, j, r, k in zip(hyps, hl, refs, rl, strict=True)]
    np.testing.assert_array_equal(got, want)
