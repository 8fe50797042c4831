"""Synthetic tasks: baselines match their formulas, seeding, fixed validation / test sets, resumption, the
prepared (TFDS) datasets."""

import json
import math

import numpy as np
import pytest

from rnnlab.tasks import get_task, list_tasks, prepare, synthetic
from rnnlab.tasks.base import philox
from rnnlab.tasks.builders import synthetic as synthetic_builders


def _cat(batches, key):
    return np.concatenate([b[key] for b in batches])


def test_adding_baseline_mse_is_one_sixth():
    task = get_task("adding", length=20)
    b = task.generate(philox(1), 40_000)
    mse = np.mean((b["targets"] - 1.0) ** 2)
    # Var of (U1+U2-1)^2 is 1/15 - 1/36; 4 standard errors
    assert abs(mse - task.info.baseline) < 4 * math.sqrt((1 / 15 - 1 / 36) / 40_000)
    # exactly one marker in each half, and the target is the sum of the marked values
    x = b["inputs"]
    assert np.all(x[:, :10, 1].sum(1) == 1) and np.all(x[:, 10:, 1].sum(1) == 1)
    np.testing.assert_allclose((x[..., 0] * x[..., 1]).sum(1), b["targets"], rtol=1e-6)


def test_copy_baseline_is_the_best_memoryless_cross_entropy():
    T = 30
    task = get_task("copy", length=T)
    fit, held = task.generate(philox(1), 20_000), task.generate(philox(2), 20_000)
    # a predictor that ignores the inputs: per-position target frequencies, fitted on one sample
    counts = np.stack([(fit["targets"] == v).sum(0) for v in range(10)], -1) + 1e-3
    probs = counts / counts.sum(-1, keepdims=True)
    nll = -np.log(np.take_along_axis(probs[None], held["targets"][..., None], -1))[..., 0]
    assert abs(nll.mean() - task.info.baseline) < 0.01 * task.info.baseline
    assert task.info.baseline == pytest.approx(10 * math.log(8) / (T + 20))
    inp = held["inputs"]
    assert inp.shape == (20_000, T + 20) and np.all(inp[:, 10 + T - 1] == 9)
    np.testing.assert_array_equal(held["targets"][:, -10:], inp[:, :10])
    assert set(np.unique(inp[:, :10])) <= set(range(1, 9)) and np.all(held["target_mask"] == 1)


@pytest.mark.parametrize(
    "name,params", [("temporal_order", {"length": 50}), ("delayed_recall", {"lag": 5, "num_symbols": 4})]
)
def test_classification_chance_matches_baseline(name, params):
    task = get_task(name, **params)
    y = task.generate(philox(3), 40_000)["targets"]
    freq = np.bincount(y, minlength=task.info.num_outputs) / len(y)
    chance = task.info.baseline
    assert np.all(np.abs(freq - chance) < 4 * math.sqrt(chance * (1 - chance) / len(y)))
    assert freq.max() == pytest.approx(chance, abs=0.01)  # majority-class accuracy = chance


def test_temporal_order_label_is_the_order_of_x_and_y():
    b = get_task("temporal_order", length=40).generate(philox(0), 500)
    rel = [row[(row == synthetic.TO_X) | (row == synthetic.TO_Y)] for row in b["inputs"]]
    assert all(len(r) == 2 for r in rel)
    expect = np.array([2 * (r[0] == synthetic.TO_Y) + (r[1] == synthetic.TO_Y) for r in rel])
    np.testing.assert_array_equal(expect, b["targets"])


def test_delayed_recall_layout():
    b = get_task("delayed_recall", lag=7).generate(philox(0), 64)
    assert b["inputs"].shape == (64, 8)
    np.testing.assert_array_equal(b["inputs"][:, 0] - 1, b["targets"])
    assert np.all(b["inputs"][:, 7] == 9) and np.all(b["inputs"][:, 1:7] == 0)


@pytest.mark.parametrize("name", ["adding", "copy", "temporal_order", "delayed_recall"])
def test_same_seed_same_data_different_seed_differs(name):
    task = get_task(name)
    a = next(task.iterator("train", 8, seed=5))
    b = next(task.iterator("train", 8, seed=5))
    c = next(task.iterator("train", 8, seed=6))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["inputs"], c["inputs"])


def test_test_split_is_fixed_and_independent_of_train_seed():
    task = get_task("adding", length=10, num_eval=50)
    x1 = _cat(list(task.iterator("test", 16, seed=0, num_epochs=1, shuffle=False)), "inputs")
    x2 = _cat(
        list(
            get_task("adding", length=10, num_eval=50).iterator(
                "test", 7, seed=9, num_epochs=1, shuffle=False
            )
        ),
        "inputs",
    )
    assert x1.shape == (50, 10, 2)
    np.testing.assert_array_equal(x1, x2)
    train = next(task.iterator("train", 50, seed=0))["inputs"]
    assert not np.array_equal(train, x1)


def _rows(x):
    return {bytes(np.ascontiguousarray(r)) for r in x}


@pytest.mark.parametrize("name", ["adding", "copy", "temporal_order"])
def test_validation_is_fixed_and_disjoint_from_test_and_train(name):
    task = get_task(name, num_eval=300)
    val = _cat(list(task.iterator("validation", 64, seed=0, num_epochs=1, shuffle=False)), "inputs")
    again = get_task(name, num_eval=300).eval_arrays("validation")["inputs"]
    np.testing.assert_array_equal(val, again)  # the same set on every call (and machine: Philox)
    test = task.eval_arrays("test")["inputs"]
    train = np.concatenate([next(task.iterator("train", 100, seed=s))["inputs"] for s in range(3)])
    assert len(_rows(val)) == 300 and not _rows(val) & _rows(test) and not _rows(val) & _rows(train)


def test_fixed_sets_are_pinned():
    """The first symbols of copy's fixed sets: model selection and reports compare runs across versions, so
    these sets must never change silently."""
    task = get_task("copy", length=5, num_eval=4)
    assert task.eval_arrays("validation")["inputs"][0, :10].tolist() == [4, 1, 8, 4, 6, 2, 5, 5, 7, 5]
    assert task.eval_arrays("test")["inputs"][0, :10].tolist() == [2, 8, 4, 7, 5, 7, 6, 1, 6, 7]


def test_source_spellings_and_prepared_validation_split(tmp_path):
    prepare("delayed_recall/lag_10", data_dir=tmp_path)
    task = get_task("delayed_recall", lag=10, source="tfds", data_dir=tmp_path)  # the old spelling
    assert task.source == "prepared"
    gen = get_task("delayed_recall", lag=10)
    for split in ("validation", "test"):
        got = _cat(list(task.iterator(split, 100, seed=0, num_epochs=1, shuffle=False)), "targets")
        want = gen.eval_arrays(split)["targets"]
        assert sorted(got.tolist()) == sorted(want.tolist())  # the fixed sets, stored (TFDS reorders them)
    with pytest.raises(ValueError, match="valid: generated, prepared"):
        get_task("copy", source="disk")


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_resume_equals_uninterrupted(split):
    task = get_task("copy", length=5, num_eval=30)
    full = task.iterator(split, 4, seed=1)
    ref = [next(full) for _ in range(12)]  # crosses test epochs (30 examples = 8 batches)
    it = task.iterator(split, 4, seed=1)
    for _ in range(5):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    it2 = task.iterator(split, 4, seed=1)
    it2.set_state(state)
    for want in ref[5:]:
        got = next(it2)
        for k in want:
            np.testing.assert_array_equal(want[k], got[k])


def test_unknown_task_param_split_list_valid_ones():
    with pytest.raises(ValueError, match="unknown task 'addding'; valid: .*adding.*copy.*temporal_order"):
        get_task("addding")
    with pytest.raises(ValueError, match="length"):
        get_task("copy", lenght=3)
    with pytest.raises(ValueError, match="train, validation, test"):
        get_task("copy").iterator("valid", 2, 0)
    assert {"adding", "copy", "temporal_order", "delayed_recall"} <= set(list_tasks())


def test_builder_prepares_and_reads_back(tmp_path):
    cfg = synthetic_builders.SyntheticConfig(
        name="length_12", length=12, num_train=20, num_validation=5, num_test=10
    )
    builder = synthetic_builders.RnnlabAdding(config=cfg, data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare(file_format="array_record")
    src = builder.as_data_source()
    assert {s: len(src[s]) for s in src} == {"train": 20, "validation": 5, "test": 10}
    train = np.stack([src["train"][i]["inputs"] for i in range(20)])
    stream = synthetic.adding(philox(0, 0), 20, length=12)["inputs"]  # batch 0 of the seed-0 stream
    assert sorted(map(bytes, train)) == sorted(map(bytes, stream))
    stored = np.stack([src["test"][i]["inputs"] for i in range(10)])
    fresh = synthetic.adding(philox(synthetic.EVAL_SEED, 0), 10, length=12)["inputs"]
    assert sorted(map(bytes, stored)) == sorted(map(bytes, fresh))  # same examples (TFDS reorders them)


def test_prepared_task_source_reads_prepared_data(tmp_path):
    prepare("delayed_recall/lag_10", data_dir=tmp_path)
    task = get_task("delayed_recall", lag=10, source="prepared", data_dir=tmp_path)
    b = next(task.iterator("test", 16, seed=0))
    assert b["inputs"].shape == (16, 11) and b["inputs"].dtype == np.int32
    np.testing.assert_array_equal(b["inputs"][:, 0] - 1, b["targets"])
    with pytest.raises(RuntimeError, match="not prepared.*rnnlab data prepare copy/length_100"):
        get_task("copy", source="prepared", data_dir=tmp_path, download=False).iterator("train", 2, 0)
