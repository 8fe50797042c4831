"""Taggers with token features and a CRF: the jitted entity counts are conlleval's, characters are read
per token with padding ignored, the CRF tagger's loss and tags are the CRF's, and a tagger that sees the
case of tokens learns a tagging that the words alone cannot give."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlab import crf, textmetrics
from rnnlab.taggers import CharEncoder, Tagger, best_tags, bio_scheme, entity_counts
from rnnlab.tasks import TaskInfo
from rnnlab.training import losses

NAMES = ("O", "B-per", "I-per", "B-loc", "I-loc")


def test_entity_counts_equal_conlleval_counts():
    rng = np.random.default_rng(0)
    b, t = 200, 9
    true, pred = rng.integers(0, len(NAMES), (b, t)), rng.integers(0, len(NAMES), (b, t))
    pred = np.where(rng.random((b, t)) < 0.6, true, pred)  # mostly right: many exact matches
    lengths = rng.integers(0, t + 1, b)
    mask = np.arange(t)[None] < lengths[:, None]
    right, n_true, n_pred = jax.jit(entity_counts, static_argnums=3)(true, pred, mask, bio_scheme(NAMES))
    want = textmetrics.entity_f1(
        [[NAMES[i] for i in row[:n]] for row, n in zip(true, lengths, strict=True)],
        [[NAMES[i] for i in row[:n]] for row, n in zip(pred, lengths, strict=True)],
    )["overall"]
    assert (int(right), int(n_true), int(n_pred)) == (want.num_correct, want.num_true, want.num_pred)
    assert want.num_correct > 20


def test_bio_scheme_reads_bio_names_only():
    assert bio_scheme(NAMES) == ((0, 1, 2, 1, 2), (0, 1, 1, 2, 2))
    assert bio_scheme(("NOUN", "VERB")) is None and bio_scheme(("O",)) is None


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_char_encoder_reads_each_token_alone_and_ignores_padding(kind):
    enc = CharEncoder(9, kind, dim=4, features=6)
    chars = np.array([[[3, 4, 5, 0], [7, 0, 0, 0], [0, 0, 0, 0]]], np.int32)  # [B=1, T=3, Lc=4]
    params = enc.init(jax.random.key(0), chars)
    out = enc.apply(params, chars)
    wider = enc.apply(params, np.pad(chars, ((0, 0), (0, 0), (0, 3))))  # more padding characters
    alone = enc.apply(params, chars[:, 1:2])  # token 1 without its neighbours
    np.testing.assert_allclose(out, wider, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], alone[:, 0], atol=1e-6)
    np.testing.assert_array_equal(out[0, 2], 0.0)  # a padding token
    assert np.abs(out[0, 0] - out[0, 1]).max() > 1e-4


@pytest.mark.slow  # ~30 s; the CRF itself is checked against enumeration in test_crf.py
def test_crf_tagger_loss_and_tags_are_the_crfs():
    model = Tagger(10, 5, cell="gru", hidden_size=4, embed_dim=3, num_case=4, case_dim=2, crf=True)
    x = jnp.array([[2, 3, 4, 0], [5, 6, 0, 0]])
    lengths, case = jnp.array([3, 2]), jnp.array([[1, 2, 3, 0], [3, 1, 0, 0]])
    tags = jnp.array([[1, 2, 0, 0], [3, 4, 0, 0]])
    params = model.init(jax.random.key(0), x, lengths, {"case": case})
    out = model.apply(params, x, lengths, {"case": case})
    assert isinstance(out, crf.CRFScores)
    info = TaskInfo("t", "tagging", None, 10, 5, 0.5, "accuracy", label_names=NAMES)
    mask = jnp.arange(4)[None] < lengths[:, None]
    batch = {"lengths": lengths, "targets": tags, "target_mask": mask.astype(jnp.float32)}
    stats = losses.get_loss(info).stats(out, batch)
    nll = crf.negative_log_likelihood(out.params, out.emissions, tags, lengths)
    np.testing.assert_allclose(stats["loss"][0] / stats["loss"][1], nll.sum() / 5, rtol=1e-6)
    viterbi = crf.viterbi(out.params, out.emissions, lengths)[0]
    np.testing.assert_array_equal(best_tags(out, lengths), viterbi)
    want_acc = float(((viterbi == tags) & mask).sum() / 5)
    assert float(stats["accuracy"][0] / stats["accuracy"][1]) == pytest.approx(want_acc)
    assert set(stats) >= {"entity_f1", "entity_precision", "entity_recall"}
    with pytest.raises(ValueError, match="case"):
        model.apply(params, x, lengths)


def _capitalised_names(n, t=8, seed=0):
    """Every word is the same unknown id; capitalised runs are names (B-per I-per ...), the rest 'O'."""
    rng = np.random.default_rng(seed)
    case = rng.choice([1, 2], size=(n, t), p=[0.6, 0.4])  # 1 lower, 2 Capitalised
    prev = np.pad(case[:, :-1], ((0, 0), (1, 0)))
    tags = np.where(case == 2, np.where(prev == 2, 2, 1), 0)
    return np.ones((n, t), np.int32), case.astype(np.int32), tags.astype(np.int32)


@pytest.mark.slow  # ~30 s: a learning test; the case classes are checked in test_tasks_ner_features.py
def test_the_case_feature_lets_a_crf_tagger_find_names_the_words_cannot():
    words, case, tags = (jnp.asarray(a) for a in _capitalised_names(512))
    lengths = jnp.full((len(words),), words.shape[1], jnp.int32)
    info = TaskInfo("t", "tagging", None, 3, 5, 0.0, "accuracy", label_names=NAMES)
    loss = losses.get_loss(info)
    opt = optax.adam(3e-2)
    f1 = {}
    for use_case in (False, True):
        model = Tagger(3, 5, cell="gru", hidden_size=8, embed_dim=4, num_case=3 * use_case, crf=True)

        def stats(params, idx, model=model, use_case=use_case):
            feats = {"case": case[idx]} if use_case else {}
            out = model.apply(params, words[idx], lengths[idx], feats)
            return loss.stats(out, {"lengths": lengths[idx], "targets": tags[idx]})

        @jax.jit
        def step(params, state, idx, stats=stats):
            grads = jax.grad(lambda p: jnp.divide(*stats(p, idx)["loss"]))(params)
            updates, state = opt.update(grads, state)
            return optax.apply_updates(params, updates), state

        idx = jnp.arange(2)
        params = model.init(
            jax.random.key(0), words[idx], lengths[idx], {"case": case[idx]} if use_case else {}
        )
        state = opt.init(params)
        for i in range(60):
            params, state = step(params, state, jnp.arange(64) + 64 * (i % 8))
        f1[use_case] = float(loss.finalize(jax.jit(stats)(params, jnp.arange(len(words))))["entity_f1"])
    assert f1[True] > 0.95 and f1[False] < 0.2, f1
