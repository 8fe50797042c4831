"""The digit tasks (captioning, CTC, moving digits) on a hand-made mnist5k: every pasted digit is the image
its caption / labels / motion class say, each split shows only its own digit images, iterators resume
exactly, and the trivial baselines are what brute force says they are."""

import collections
import gzip
import itertools

import numpy as np
import pytest
from archives import fake_archive

from rnnlab import textmetrics
from rnnlab.tasks import baselines, get_task
from rnnlab.tasks.builders import numeric
from rnnlab.tasks.digit_sequences import NUMBER_WORDS, motion_classes

ROWS = 100


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A prepared mnist5k of ROWS digits whose top-left pixel is (index + 1): any pasted copy names its
    image, and a frame's first lit pixel (row-major) is the digit's top-left corner."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("digits")
    mp.setattr(numeric.RnnlabMnist5k, "ROWS", ROWS)
    rng = np.random.default_rng(0)
    pixels = (rng.random((ROWS, 784)) < 0.3) * rng.integers(120, 256, (ROWS, 784))
    pixels[:, 0] = np.arange(ROWS) + 1
    csv = "".join(",".join(map(str, [*p, i % 10])) + "\n" for i, p in enumerate(pixels))
    path = fake_archive(mp, tmp, "mnist5k", {numeric.MNIST_MEMBER: gzip.compress(csv.encode())})
    get_task("digit_ctc", data_dir=path, num_eval=12)  # prepares on first use, with the fake archive
    mp.undo()
    return path, pixels.reshape(ROWS, 28, 28) / 255.0


def _image_ids(task):
    """{split: the ROWS indices of the split's digit images}."""
    return {s: set(np.round(im[:, 0, 0] * 255).astype(int) - 1) for s, (im, _) in task.digits.items()}


def _blocks(image, width):
    """The digit images pasted side by side in one strip `[28, W]` (no gaps): their ROWS indices."""
    return [int(round(image[0, c] * 255)) - 1 for c in range(0, width, 28)]


def test_caption_batches_hold_their_digits_from_their_own_split(data):
    path, pixels = data
    task = get_task("digit_captions", data_dir=path, num_eval=12)
    ids = _image_ids(task)
    assert not (ids["train"] & ids["test"]) and not (ids["validation"] & ids["test"])
    assert set().union(*ids.values()) == set(range(ROWS))
    vocab = task.target_vocab
    for split in task.splits:
        b = next(task.iterator(split, 6, seed=1))
        assert b["inputs"].shape == (6, 28, 112) and b["inputs"].dtype == np.float32
        assert b["decoder_inputs"].shape == b["targets"].shape == (6, 5) and b["targets"].dtype == np.int32
        for row in range(6):
            n = int(b["target_lengths"][row]) - 1
            assert b["lengths"][row] == 28 * n and 1 <= n <= 4
            used = _blocks(b["inputs"][row], 28 * n)
            assert set(used) <= ids[split]
            np.testing.assert_allclose(
                b["inputs"][row, :, : 28 * n], np.concatenate(pixels[used], axis=1), rtol=1e-6
            )
            assert not b["inputs"][row, :, 28 * n :].any()
            words = [NUMBER_WORDS[i % 10] for i in used]
            assert task.target_text(b["targets"][row]) == " ".join(words)
            assert [vocab.tokens[i] for i in b["decoder_inputs"][row]] == ["<bos>", *words] + ["<pad>"] * (
                4 - n
            )
            assert [vocab.tokens[i] for i in b["targets"][row, : n + 1]] == [*words, "<eos>"]
            assert b["target_mask"][row].tolist() == [1.0] * (n + 1) + [0.0] * (4 - n)
    info = task.info
    assert (info.kind, info.input_shape, info.num_outputs, info.token_unit) == (
        "captioning",
        (28, 112),
        14,
        "word",
    )


def test_ctc_batches_are_the_caption_strips_read_column_by_column(data):
    path, _ = data
    captions = get_task("digit_captions", data_dir=path, num_eval=12, max_digits=3)
    task = get_task("digit_ctc", data_dir=path, num_eval=12, max_digits=3)
    for split in task.splits:
        a = next(captions.iterator(split, 5, seed=4))
        b = next(task.iterator(split, 5, seed=4))
        np.testing.assert_array_equal(b["inputs"], np.swapaxes(a["inputs"], 1, 2))  # frame t = column t
        np.testing.assert_array_equal(b["lengths"], a["lengths"])
        np.testing.assert_array_equal(b["target_lengths"], a["target_lengths"] - 1)
        for row in range(5):
            n = int(b["target_lengths"][row])
            digits = [NUMBER_WORDS.index(w) for w in captions.target_text(a["targets"][row]).split()]
            assert b["targets"][row].tolist() == [d + 1 for d in digits] + [0] * (3 - n)  # 0: blank / padding
    info = task.info
    assert (info.kind, info.input_size, info.num_outputs, info.baseline_metric) == (
        "ctc",
        28,
        11,
        "label_error_rate",
    )


@pytest.mark.parametrize("name", ["digit_captions", "moving_digits"])
def test_iterators_are_seeded_fixed_and_resume_at_the_next_batch(data, name):
    path, _ = data
    options = {"canvas": (40, 40), "num_frames": (4, 6)} if name == "moving_digits" else {}
    task = get_task(name, data_dir=path, num_eval=12, **options)
    for split in task.splits:
        it = task.iterator(split, 4, seed=7)
        next(it)
        state = it.get_state()
        want = [next(it) for _ in range(4)]  # crosses an epoch of the 12 fixed examples
        again = task.iterator(split, 4, seed=7)
        again.set_state(state)
        for a, b in zip(want, [next(again) for _ in range(4)], strict=True):
            assert all(np.array_equal(a[k], b[k]) for k in a)
        other = next(task.iterator(split, 4, seed=8))
        assert not np.array_equal(other["inputs"], next(task.iterator(split, 4, seed=7))["inputs"])
    # a fixed set does not depend on the batch size, nor on the seed when not shuffled
    sets = [
        np.concatenate([b["inputs"] for b in task.iterator("test", bs, seed, num_epochs=1, shuffle=False)])
        for bs, seed in ((5, 0), (12, 3))
    ]
    assert len(sets[0]) == 12 and np.array_equal(*sets)


def test_motion_class_is_the_displacement_and_the_control_shuffles_frames(data):
    path, _ = data
    options = {"canvas": (40, 40), "num_frames": (4, 6), "num_eval": 12}
    task = get_task("moving_digits", data_dir=path, **options)
    control = get_task("moving_digits", data_dir=path, shuffled=True, **options)
    velocities = motion_classes(8, (1, 2))
    b = next(task.iterator("test", 12, seed=0, shuffle=False))
    c = next(control.iterator("test", 12, seed=0, shuffle=False))
    assert b["inputs"].shape == (12, 6, 40, 40) and task.info.input_shape == (6, 40, 40)
    np.testing.assert_array_equal(b["targets"], c["targets"])
    moved = 0
    for row in range(12):
        T = int(b["lengths"][row])
        corners = [divmod(int(np.flatnonzero(f)[0]), 40) for f in b["inputs"][row, :T]]
        steps = {(r2 - r1, c2 - c1) for (r1, c1), (r2, c2) in itertools.pairwise(corners)}
        assert steps == {velocities[b["targets"][row]]}
        shown = sorted(map(bytes, np.asarray(c["inputs"][row, :T] > 0)))
        assert shown == sorted(map(bytes, np.asarray(b["inputs"][row, :T] > 0)))  # the same frames...
        moved += not np.array_equal(c["inputs"][row, :T], b["inputs"][row, :T])  # ...in another order
        assert not c["inputs"][row, T:].any()
    assert moved >= 10
    assert task.info.baseline == pytest.approx(1 / 16) and control.info.name == "moving_digits_shuffled"
    assert task.baselines() == {"chance/accuracy": 1 / 16, "order_free/accuracy": 0.5}
    pure = get_task("moving_digits", data_dir=path, directions=2, speeds=(1,), **options)
    assert pure.baselines() == {"chance/accuracy": 0.5, "order_free/accuracy": 0.5}  # control at chance
    with pytest.raises(ValueError, match="does not fit"):
        get_task("moving_digits", data_dir=path, canvas=(30, 30), num_frames=(4, 6))


def test_caption_and_ctc_baselines_match_brute_force(data):
    path, _ = data
    captions = get_task("digit_captions", data_dir=path, num_eval=30, max_digits=2)
    mode = collections.Counter(captions.baseline_sample().captions).most_common(1)[0][0]
    refs = [
        captions.target_text(t)
        for b in captions.iterator("test", 7, 0, num_epochs=1, shuffle=False)
        for t in b["targets"]
    ]
    assert captions.info.baseline == pytest.approx(np.mean([r == mode for r in refs]))
    assert captions.baselines()["most_frequent/bleu"] == 0.0  # one word: no 4-gram can match

    task = get_task("digit_ctc", data_dir=path, num_eval=30, max_digits=2)
    sample = task.baseline_sample()
    train = collections.Counter(
        tuple(d[:n] + 1) for d, n in zip(sample.digits, sample.num_digits, strict=True)
    )
    candidates = [c for k in range(3) for c in itertools.product(range(1, 11), repeat=k)]
    totals = {c: sum(m * textmetrics.edit_distance(r, c) for r, m in train.items()) for c in candidates}
    assert totals[task.best_constant_labelling] == min(totals.values())
    refs = [
        list(t[:n])
        for b in task.iterator("test", 7, 0, num_epochs=1, shuffle=False)
        for t, n in zip(b["targets"], b["target_lengths"], strict=True)
    ]
    hyp = [list(task.best_constant_labelling)] * len(refs)
    assert task.info.baseline == pytest.approx(textmetrics.label_error_rate(refs, hyp))
    assert task.baselines("validation")["empty/label_error_rate"] == 1.0


def test_best_constant_labelling_is_the_exhaustive_optimum():
    rng = np.random.default_rng(3)
    refs = [list(rng.integers(1, 4, size=rng.integers(0, 5))) for _ in range(40)] + [[2, 2, 2, 2]] * 15
    best = baselines.best_constant_labelling(refs, [1, 2, 3], 4)
    totals = {
        c: sum(textmetrics.edit_distance(r, c) for r in refs)
        for k in range(5)
        for c in itertools.product([1, 2, 3], repeat=k)
    }
    assert totals[best] == min(totals.values())
    assert len(best) == min(len(c) for c, t in totals.items() if t == totals[best])  # ties: the shorter
    for hyp in [(), best, (3, 1)]:
        assert baselines.constant_label_error_rate(refs, hyp) == pytest.approx(
            sum(textmetrics.edit_distance(r, hyp) for r in refs) / sum(len(r) for r in refs)
        )
