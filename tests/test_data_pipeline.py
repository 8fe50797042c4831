"""The loader: padding, epoch plans, bucketing, exact resumption over prepared TFDS data; vocabularies."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.tasks import store, vocab
from rnnlab.tasks.batching import ArraySource, Loader, collate, epoch_plan
from rnnlab.tasks.builders import synthetic as synthetic_builders
from rnnlab.tasks.datasets import DATASETS


def _examples(lengths):
    return [
        {"inputs": np.arange(1, n + 1, dtype=np.int32), "targets": np.full(n, 7, np.int32)} for n in lengths
    ]


def test_collate_pads_to_batch_max_or_fixed_length():
    b = collate(_examples([3, 5, 1]), "tagging")
    assert b["inputs"].shape == (3, 5) and list(b["lengths"]) == [3, 5, 1]
    np.testing.assert_array_equal(b["inputs"][0], [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(b["target_mask"][2], [1, 0, 0, 0, 0])
    assert b["targets"][0, 3] == 0  # padded targets are pad_id
    f = collate(_examples([3, 5]), "tagging", max_length=4)
    assert f["inputs"].shape == (2, 4) and list(f["lengths"]) == [3, 4]
    floats = collate(
        [
            {"inputs": np.ones((2, 3), np.float32), "targets": 1},
            {"inputs": np.ones((4, 3), np.float32), "targets": 0},
        ],
        "classification",
    )
    assert floats["inputs"].shape == (2, 4, 3) and floats["inputs"][0, 2:].sum() == 0
    assert floats["targets"].dtype == np.int32


def test_collate_seq2seq():
    ex = [
        {"inputs": np.array([3, 4]), "decoder_inputs": np.array([2, 5, 6]), "targets": np.array([5, 6, 3])},
        {"inputs": np.array([3]), "decoder_inputs": np.array([2, 5]), "targets": np.array([5, 3])},
    ]
    b = collate(ex, "seq2seq")
    assert list(b["target_lengths"]) == [3, 2] and b["decoder_inputs"].shape == (2, 3)
    np.testing.assert_array_equal(b["target_mask"], [[1, 1, 1], [1, 1, 0]])


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    bs=st.integers(1, 9),
    bucket=st.sampled_from([0, 2, 3]),
    epoch=st.integers(0, 5),
    drop=st.booleans(),
)
def test_epoch_plan_covers_every_example_once(n, bs, bucket, epoch, drop):
    lengths = np.random.default_rng(n).integers(1, 50, n)
    plan = epoch_plan(n, bs, seed=3, epoch=epoch, lengths=lengths, bucket_batches=bucket, drop_remainder=drop)
    idx = np.concatenate(plan) if plan else np.array([], int)
    assert len(set(idx.tolist())) == len(idx)
    assert len(idx) == (n - n % bs if drop else n)
    assert sum(len(b) != bs for b in plan) <= (0 if drop else 1)


def test_bucketing_reduces_padding_and_epochs_differ():
    lengths = np.random.default_rng(0).integers(1, 200, 512)
    pad = {}
    for bucket in (0, 8):
        plan = epoch_plan(512, 16, seed=0, epoch=0, lengths=lengths, bucket_batches=bucket)
        pad[bucket] = sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in plan)
    assert pad[8] < pad[0] / 3
    a, b = (epoch_plan(512, 16, seed=0, epoch=e) for e in (0, 1))
    assert not np.array_equal(np.concatenate(a), np.concatenate(b))


def test_loader_epochs_and_state_mismatch():
    src = ArraySource({"inputs": np.arange(10)[:, None], "targets": np.arange(10)})
    it = Loader(src, 4, seed=0, gather_fn=src.gather, num_epochs=2, drop_remainder=True)
    batches = list(it)
    assert len(batches) == 4  # 2 full batches per epoch
    other = Loader(src, 5, seed=0, gather_fn=src.gather)
    with pytest.raises(ValueError, match="different pipeline"):
        other.set_state(it.get_state())


def _prepared_copy(tmp_path):
    cfg = synthetic_builders.SyntheticConfig(name="length_4", length=4, num_train=23, num_test=7)
    builder = synthetic_builders.RnnlabCopy(config=cfg, data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare(file_format="array_record")
    return builder


@pytest.mark.parametrize("bucket", [0, 2])
def test_resume_from_recorded_position_on_prepared_data(tmp_path, bucket):
    builder = _prepared_copy(tmp_path)
    src = store.open_split(DATASETS["copy"], builder, "train")
    lengths = np.arange(len(src)) % 5 + 1

    def loader():
        return Loader(
            src,
            4,
            seed=11,
            collate_fn=lambda ex: collate(ex, "tagging"),
            lengths=lengths,
            bucket_batches=bucket,
        )

    ref = loader()
    want = [next(ref) for _ in range(15)]  # 6 batches per epoch: crosses two epoch boundaries
    it = loader()
    for _ in range(8):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    resumed = loader()
    resumed.set_state(state)
    for w in want[8:]:
        g = next(resumed)
        for k in w:
            np.testing.assert_array_equal(w[k], g[k])


def test_vocabulary_roundtrip_and_unknown(tmp_path):
    v = vocab.Vocabulary.build(["the cat sat.", "the dog"], "word", lowercase=True, extra_specials=("<eos>",))
    assert v.tokens[:4] == ["<pad>", "<unk>", "<eos>", "the"]
    ids = v.encode("The bird sat")
    assert ids.dtype == np.int32 and ids[1] == v.unk_id and v.decode(ids) == "the <unk> sat"
    v.save(tmp_path / "v.json")
    assert vocab.Vocabulary.load(tmp_path / "v.json") == v
    c = vocab.Vocabulary.build(["abca"], "char")
    assert c.decode(c.encode("abcz")) == "abc<unk>" and c.tokens[2] == "a"
    assert vocab.Vocabulary.build(["a a b c"], "space", min_count=2).tokens == ["<pad>", "<unk>", "a"]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RuntimeError, match="delete it"):
        vocab.Vocabulary.load(tmp_path / "bad.json")


def test_load_or_build_reuses_saved_vocabulary(tmp_path):
    path = tmp_path / "vocab.json"
    first = vocab.load_or_build(path, lambda: ["x y"], "word")
    second = vocab.load_or_build(path, lambda: ["completely different"], "word")
    assert first == second and path.exists()


def test_loader_benchmark_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_loader.py"
    spec = importlib.util.spec_from_file_location("bench_loader", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.loader_batches_per_second(batch_size=4, length=10, min_seconds=0.02) > 0
    assert mod.prepared_loader_batches_per_second(batch_size=4, length=10, min_seconds=0.02, num_train=20) > 0
