"""Catalog pipelines on `tfds.testing.mock_data` (random placeholder data, offline; `download=False`:
nothing to fetch), and the conversions that cannot be mocked without TensorFlow (conll2003 tagging,
spoken_digit log-mel) on hand-made examples."""

import math

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rnnlab.tasks import audio, get_task, vocab
from rnnlab.tasks.dataset_task import unigram_loss
from rnnlab.tasks.labeling import mnist_permutation, tag_example


@pytest.fixture
def mock():
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_sequential_and_permuted_mnist(mock, tmp_path):
    seq = get_task("mnist", data_dir=tmp_path, download=False)
    perm = get_task("mnist", data_dir=tmp_path, permuted=True, download=False)
    b = next(seq.iterator("train", 4, seed=0, shuffle=False))
    p = next(perm.iterator("train", 4, seed=0, shuffle=False))
    assert b["inputs"].shape == (4, 784, 1) and b["inputs"].dtype == np.float32
    assert 0 <= b["inputs"].min() and b["inputs"].max() <= 1 and np.all(b["lengths"] == 784)
    image = seq.source("train")[0]["image"]
    np.testing.assert_allclose(b["inputs"][0, :, 0], image.reshape(-1) / 255.0)
    order = mnist_permutation(0)
    np.testing.assert_allclose(p["inputs"][0, :, 0], image.reshape(-1)[order] / 255.0)
    np.testing.assert_array_equal(order, mnist_permutation(0))  # fixed permutation
    assert perm.info.input_size == 1 and perm.info.num_outputs == 10 and 0 < perm.info.baseline <= 1


def test_imdb_reviews_word_ids_padded_to_batch_max(mock, tmp_path):
    task = get_task("imdb_reviews", data_dir=tmp_path, min_count=1, download=False)
    b = next(task.iterator("train", 5, seed=1))
    assert b["inputs"].dtype == np.int32 and b["inputs"].shape[1] == b["lengths"].max()
    for row, n in zip(b["inputs"], b["lengths"], strict=True):
        assert np.all(row[n:] == 0) and np.all(row[:n] > 0)
    assert set(np.unique(b["targets"])) <= {0, 1} and task.info.vocab_size == len(task.vocab)


def test_catalog_validation_is_carved_from_train_when_tfds_has_none(mock, tmp_path):
    task = get_task("imdb_reviews", data_dir=tmp_path, min_count=1, download=False)
    assert task.splits == ("train", "validation", "test")
    train, val = task.source("train"), task.source("validation")
    assert (len(train), len(val)) == (11, 1)  # 10% of the 12 mock examples
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    texts = [r["text"] for r in task.records("validation")]
    assert texts == [
        r["text"] for r in get_task("imdb_reviews", data_dir=tmp_path, download=False).records("validation")
    ]


def test_tiny_shakespeare_lm_windows_shift_by_one(mock, tmp_path):
    task = get_task("tiny_shakespeare", data_dir=tmp_path, length=8, download=False)
    ids = task.ids("train")
    b = next(task.iterator("train", 3, seed=0, shuffle=False))
    np.testing.assert_array_equal(b["inputs"][0], ids[:8])
    np.testing.assert_array_equal(b["targets"][0], ids[1:9])
    assert task.info.kind == "lm" and task.info.baseline == pytest.approx(
        unigram_loss(ids, task.ids("test"), len(task.vocab))
    )
    assert task.info.token_unit == "char"


def test_conll2003_pipeline_on_mock_data(mock, tmp_path):
    task = get_task("conll2003", data_dir=tmp_path, download=False)
    b = next(task.iterator("train", 4, seed=0))
    assert b["targets"].shape == b["inputs"].shape and b["target_mask"].sum() == b["lengths"].sum()
    assert task.info.num_outputs == 9 and task.splits == ("train", "validation", "test")


def test_conll_tag_example_hand_made():
    words = vocab.Vocabulary.build([["EU", "rejects", "German", "call"]], "space")
    ex = tag_example(np.array([b"EU", b"rejects", b"British", b"call"]), [3, 0, 7, 0], words)
    np.testing.assert_array_equal(ex["targets"], [3, 0, 7, 0])
    assert ex["inputs"][2] == words.unk_id and words.decode(ex["inputs"]) == "EU rejects <unk> call"


def test_log_mel_of_tones_peaks_at_the_right_band():
    sr = audio.SPOKEN_DIGIT_RATE
    t = np.arange(sr // 2) / sr
    fb = audio.mel_filterbank(40, 256, sr)
    centers = np.argmax(fb, axis=0) * sr / 256
    for f in (300.0, 1000.0, 3000.0):
        wave = (0.5 * np.sin(2 * np.pi * f * t) * 32767).astype(np.int16)
        feats = audio.log_mel_spectrogram(wave, sr, n_mels=40)
        assert feats.shape == (1 + (len(wave) - 200) // 80, 40) and feats.dtype == np.float32
        band = np.bincount(feats.argmax(1)).argmax()
        assert abs(centers[band] - f) < 0.15 * f + 60
    # energy scales with amplitude squared: log difference ln(4) at the peak band
    quiet = audio.log_mel_spectrogram((wave // 2).astype(np.int16), sr)
    assert feats[5].max() - quiet[5].max() == pytest.approx(math.log(4), abs=0.01)


def test_spoken_digit_short_clip_gives_one_frame():
    feats = audio.log_mel_spectrogram(np.zeros(50, np.int16), 8000, n_mels=16)
    assert feats.shape == (1, 16) and np.all(np.isfinite(feats))


def test_mel_filterbank_rows_cover_the_band():
    fb = audio.mel_filterbank(20, 512, 16000)
    assert fb.shape == (257, 20) and np.all(fb >= 0) and np.all(fb.max(0) > 0.5)


def test_catalog_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="not prepared.*rnnlab data prepare imdb_reviews"):
        get_task("imdb_reviews", data_dir=tmp_path, download=False)
