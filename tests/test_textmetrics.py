"""Text metrics against hand-computed values (and sacrebleu when it is installed)."""

import math

import numpy as np
import pytest

from rnnlab import textmetrics as tm


def test_bio_entities_follow_conlleval_chunking():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "B-PER", "B-PER"]
    assert tm.bio_entities(tags) == {
        ("PER", 0, 2),
        ("LOC", 3, 5),
        ("LOC", 5, 6),
        ("ORG", 6, 7),
        ("PER", 7, 8),
        ("PER", 8, 9),
    }
    assert tm.bio_entities(["I-MISC"]) == {("MISC", 0, 1)}  # I- at the sentence start opens an entity
    assert tm.bio_entities(["O", "O"]) == set()
    with pytest.raises(ValueError, match="invalid BIO tag"):
        tm.bio_entities(["X-PER"])


def test_entity_f1_hand_computed():
    true = [
        ["B-PER", "I-PER", "O", "B-LOC"],  # PER(0,2), LOC(3,4)
        ["B-ORG", "I-ORG", "I-ORG", "O"],  # ORG(0,3)
        ["O", "B-MISC", "O", "O"],
    ]  # MISC(1,2)
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG"],  # PER correct; LOC predicted with the wrong type
        ["B-ORG", "I-ORG", "O", "O"],  # partial span: wrong
        ["O", "I-MISC", "O", "O"],
    ]  # I- without B-: still MISC(1,2), correct
    scores = tm.entity_f1(true, pred)
    overall = scores["overall"]
    assert (overall.num_true, overall.num_pred, overall.num_correct) == (4, 4, 2)
    assert overall.precision == pytest.approx(0.5) and overall.recall == pytest.approx(0.5)
    assert overall.f1 == pytest.approx(0.5)
    assert scores["PER"].f1 == 1.0 and scores["MISC"].f1 == 1.0
    assert scores["LOC"] == tm.PRF(0.0, 0.0, 0.0, 1, 0, 0)
    assert scores["ORG"].precision == 0.0 and scores["ORG"].num_pred == 2
    # Unequal precision and recall: 1 correct of 2 predicted, 1 of 3 true -> F1 = 2*(1/2)(1/3)/(5/6) = 0.4.
    s = tm.entity_f1([["B-A", "O", "B-B", "B-C"]], [["B-A", "B-B", "O", "O"]])["overall"]
    assert (s.precision, s.recall, s.f1) == pytest.approx((0.5, 1 / 3, 0.4))


def test_token_accuracy_and_exact_match():
    assert tm.token_accuracy([["O", "B-X"], ["O"]], [["O", "O"], ["O"]]) == pytest.approx(2 / 3)
    t = np.array([[1, 2, 3], [4, 5, 6]])
    p = np.array([[1, 0, 9], [4, 5, 9]])
    assert tm.token_accuracy(t, p, lengths=np.array([2, 2])) == pytest.approx(3 / 4)
    assert tm.exact_match(["a b", "c"], ["a b", "d"]) == 0.5
    assert tm.exact_match([[1, 2], [3]], [(1, 2), [3]]) == 1.0


def test_bleu_hand_computed():
    # Hypothesis "a b c d e" against "a b c d f g": matches 4/5, 3/4, 2/3, 1/2; c = 5 < r = 6.
    b = tm.corpus_bleu(["a b c d e"], [["a b c d f g"]])
    expected_p = (4 / 5, 3 / 4, 2 / 3, 1 / 2)
    bp = math.exp(1 - 6 / 5)
    assert b.precisions == pytest.approx(expected_p)
    assert b.brevity_penalty == pytest.approx(bp)
    assert b.bleu == pytest.approx(bp * math.prod(expected_p) ** 0.25)
    assert (b.hyp_len, b.ref_len) == (5, 6)
    assert tm.corpus_bleu(["x y z w"], [["x y z w"]]).bleu == pytest.approx(1.0)
    # Clipping: "the the the" vs "the cat": unigram precision 1/3; no bigram match -> 0 without smoothing.
    b = tm.corpus_bleu(["the the the"], ["the cat"])
    assert b.precisions[0] == pytest.approx(1 / 3) and b.bleu == 0.0
    # Closest reference length (the shorter one on ties) sets r.
    assert tm.corpus_bleu(["a b c"], [["a b", "a b c d"]]).ref_len == 2


BLEU_CASES = (
    ["the cat sat on the mat", "there is a cat on the mat today", "a b c d e f", "hello world", "x"],
    [
        ["the cat is on the mat", "there is a cat on the mat"],
        ["there is a cat on the mat", "the cat sits on the mat"],
        ["a b c d f e g", "a b"],
        ["hello there world", "hello world !"],
        ["y z", "x"],
    ],
)


def test_bleu_equals_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = BLEU_CASES
    ref_streams = [list(r) for r in zip(*refs, strict=False)]  # sacrebleu: one stream per reference position
    for smooth in ("none", "exp"):
        for n in (len(hyps), 3):
            expected = sacrebleu.corpus_bleu(
                hyps[:n], [s[:n] for s in ref_streams], tokenize="none", smooth_method=smooth
            )
            got = tm.corpus_bleu(hyps[:n], refs[:n], smooth=smooth)
            assert got.bleu * 100 == pytest.approx(expected.score, abs=1e-9), (smooth, n)
            assert (got.hyp_len, got.ref_len) == (expected.sys_len, expected.ref_len)


def test_bits_per_character_and_perplexity():
    assert tm.bits_per_character(math.log(2.0)) == pytest.approx(1.0)
    assert tm.perplexity(math.log(50.0)) == pytest.approx(50.0)
