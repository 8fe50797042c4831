"""Catalog pipelines on `tfds.testing.mock_data` (random placeholder data, offline), and the conversions that
cannot be mocked without TensorFlow (conll2003 tagging, spoken_digit log-mel) on hand-made examples."""

import math

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rnnlab.tasks import catalog, get_task, prepared, text


@pytest.fixture
def mock():
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_sequential_and_permuted_mnist(mock, tmp_path):
    seq = get_task("mnist", data_dir=tmp_path)
    perm = get_task("mnist", data_dir=tmp_path, permuted=True)
    b = next(seq.iterator("train", 4, seed=0, shuffle=False))
    p = next(perm.iterator("train", 4, seed=0, shuffle=False))
    assert b["inputs"].shape == (4, 784, 1) and b["inputs"].dtype == np.float32
    assert 0 <= b["inputs"].min() and b["inputs"].max() <= 1 and np.all(b["lengths"] == 784)
    image = seq.source("train")[0]["image"]
    np.testing.assert_allclose(b["inputs"][0, :, 0], image.reshape(-1) / 255.0)
    order = prepared.mnist_permutation(0)
    np.testing.assert_allclose(p["inputs"][0, :, 0], image.reshape(-1)[order] / 255.0)
    np.testing.assert_array_equal(order, prepared.mnist_permutation(0))  # fixed permutation
    assert perm.info.input_size == 1 and perm.info.num_outputs == 10 and 0 < perm.info.baseline <= 1


def test_imdb_reviews_word_ids_padded_to_batch_max(mock, tmp_path):
    task = get_task("imdb_reviews", data_dir=tmp_path, min_count=1)
    b = next(task.iterator("train", 5, seed=1))
    assert b["inputs"].dtype == np.int32 and b["inputs"].shape[1] == b["lengths"].max()
    for row, n in zip(b["inputs"], b["lengths"]):
        assert np.all(row[n:] == 0) and np.all(row[:n] > 0)
    assert set(np.unique(b["targets"])) <= {0, 1} and task.info.vocab_size == len(task.vocab)
    with pytest.raises(ValueError, match="train, test"):
        task.iterator("validation", 2, 0)


def test_tiny_shakespeare_lm_windows_shift_by_one(mock, tmp_path):
    task = get_task("tiny_shakespeare", data_dir=tmp_path, length=8)
    ids = task.ids("train")
    b = next(task.iterator("train", 3, seed=0, shuffle=False))
    np.testing.assert_array_equal(b["inputs"][0], ids[:8])
    np.testing.assert_array_equal(b["targets"][0], ids[1:9])
    assert task.info.kind == "lm" and task.info.baseline == pytest.approx(
        prepared.unigram_loss(ids, task.ids("test"), len(task.vocab))
    )


def test_conll2003_pipeline_on_mock_data(mock, tmp_path):
    task = get_task("conll2003", data_dir=tmp_path)
    b = next(task.iterator("train", 4, seed=0))
    assert b["targets"].shape == b["inputs"].shape and b["target_mask"].sum() == b["lengths"].sum()
    assert task.info.num_outputs == 9


def test_conll_tag_example_hand_made():
    vocab = text.Vocabulary.build([["EU", "rejects", "German", "call"]], "space")
    ex = prepared.tag_example(np.array([b"EU", b"rejects", b"British", b"call"]), [3, 0, 7, 0], vocab)
    np.testing.assert_array_equal(ex["targets"], [3, 0, 7, 0])
    assert ex["inputs"][2] == vocab.unk_id and vocab.decode(ex["inputs"]) == "EU rejects <unk> call"


def test_log_mel_of_tones_peaks_at_the_right_band():
    sr = catalog.SPOKEN_DIGIT_RATE
    t = np.arange(sr // 2) / sr
    fb = catalog.mel_filterbank(40, 256, sr)
    centers = np.argmax(fb, axis=0) * sr / 256
    for f in (300.0, 1000.0, 3000.0):
        audio = (0.5 * np.sin(2 * np.pi * f * t) * 32767).astype(np.int16)
        feats = catalog.log_mel_spectrogram(audio, sr, n_mels=40)
        assert feats.shape == (1 + (len(audio) - 200) // 80, 40) and feats.dtype == np.float32
        band = np.bincount(feats.argmax(1)).argmax()
        assert abs(centers[band] - f) < 0.15 * f + 60
    # energy scales with amplitude squared: log difference ln(4) at the peak band
    quiet = catalog.log_mel_spectrogram((audio // 2).astype(np.int16), sr)
    assert feats[5].max() - quiet[5].max() == pytest.approx(math.log(4), abs=0.01)


def test_spoken_digit_short_clip_gives_one_frame():
    feats = catalog.log_mel_spectrogram(np.zeros(50, np.int16), 8000, n_mels=16)
    assert feats.shape == (1, 16) and np.all(np.isfinite(feats))


def test_mel_filterbank_rows_cover_the_band():
    fb = catalog.mel_filterbank(20, 512, 16000)
    assert fb.shape == (257, 20) and np.all(fb >= 0) and np.all(fb.max(0) > 0.5)


def test_catalog_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="rnnlab data prepare imdb_reviews"):
        get_task("imdb_reviews", data_dir=tmp_path)
