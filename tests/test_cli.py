"""The command line: override parsing, errors, a short run that learns, eval, sweep, data."""

import json
import os

import pytest

from rnnlab import cli, experiment
from rnnlab.training.metrics import read_jsonl

SHORT = [
    "--config.train.batch_size=16",
    "--config.model.hidden_size=16",
    "--config.train.log_every=25",
    "--config.train.eval_batches=1",
    "--config.train.progress=false",
    "--config.parallel=none",
]


def test_parse_overrides_both_forms():
    overrides, rest = cli.parse_overrides(
        ["train", "--config.model.cell=gru", "--workdir", "w", "--config.train.steps", "5"]
    )
    assert overrides == {"model.cell": "gru", "train.steps": "5"}
    assert rest == ["train", "--workdir", "w"]
    assert experiment.split_spec("experiments/adding.py:200") == ("experiments/adding.py", "200")
    assert experiment.split_spec("experiments/adding.py") == ("experiments/adding.py", None)


def test_bad_config_exits_with_the_problems_and_writes_nothing(tmp_path, capsys):
    workdir = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--config",
            "experiments/adding.py",
            "--workdir",
            str(workdir),
            "--config.model.cel=gru",
            "--config.optim.name=adagrad",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown key 'model.cel'" in err and "optim.name='adagrad' is not one of" in err
    assert not workdir.exists()
    assert cli.main(["train", "--config", "missing.py", "--workdir", str(workdir)]) == 2
    assert "missing.py" in capsys.readouterr().err


def test_short_lstm_run_learns_then_eval_and_rerun(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    args = [
        "train",
        "--config",
        "experiments/adding.py:10",
        "--workdir",
        workdir,
        "--config.train.steps=150",
        "--config.optim.learning_rate=1e-2",
        *SHORT,
    ]
    assert cli.main(args) == 0
    records = [r for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "train/loss" in r]
    first, last = records[0]["train/mse_over_baseline"], records[-1]["train/mse_over_baseline"]
    assert last < 0.5 and last < first / 4, (first, last)
    final = json.loads(capsys.readouterr().out)
    assert final["eval/mse_over_baseline"] < 0.5 and final["test/mse_over_baseline"] < 0.5
    assert final["eval/mse"] != final["test/mse"]  # validation and test are different examples
    assert cli.main(["eval", "--workdir", workdir, "--eval_batches", "1"]) == 0  # the test split
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["step"] == 150
    assert evaluated["test/mse"] == pytest.approx(final["test/mse"], rel=1e-5)
    assert cli.main(["eval", "--workdir", workdir, "--eval_batches", "1", "--split", "validation"]) == 0
    assert json.loads(capsys.readouterr().out)["eval/mse"] == pytest.approx(final["eval/mse"], rel=1e-5)
    assert cli.main(args) == 0  # finished: returns the saved result without training
    assert json.loads(capsys.readouterr().out)["test/mse"] == final["test/mse"]


def test_sweep_runs_grid_times_seeds_and_skips_finished(tmp_path, capsys):
    exp = tmp_path / "exp.py"
    exp.write_text(
        "from rnnlab.training.config import default_config\n"
        "def get_config():\n"
        "  c = default_config()\n"
        "  c.task.params.length = 4\n"
        "  c.train.steps = 2\n"
        '  c.model.cell = "rnn"\n'
        "  c.model.hidden_size = 4\n"
        "  return c\n"
        "def get_sweep():\n"
        '  return [{"train.log_every": 1}, {"train.log_every": 2, "name": "two"}]\n'
    )
    runs = experiment.grid(str(exp), {}, [0, 1])
    assert [name for name, _ in runs] == [
        "train.log_every=1,seed=0",
        "train.log_every=1,seed=1",
        "two,seed=0",
        "two,seed=1",
    ]
    assert runs[3][1].train.log_every == 2 and runs[3][1].seed == 1
    workdir = tmp_path / "sweep"
    args = [
        "sweep",
        "--config",
        str(exp),
        "--workdir",
        str(workdir),
        "--seeds",
        "3",
        "--config.model.rnn.remat_chunk=2",  # the time loop's options reach every run of the grid
        *[a for a in SHORT if "hidden_size" not in a],
    ]
    assert cli.main(args) == 0
    names = sorted(os.listdir(workdir))
    assert names == ["train.log_every=1,seed=3", "two,seed=3"]
    config = json.loads((workdir / names[1] / "config.json").read_text())
    assert config["train"]["log_every"] == 2 and config["seed"] == 3
    assert config["model"]["rnn"]["remat_chunk"] == 2
    capsys.readouterr()
    assert cli.main(args) == 0
    assert capsys.readouterr().out.count("finished, skipped") == 2


def test_data_list(capsys):
    assert cli.main(["data", "list"]) == 0
    assert capsys.readouterr().out.strip()


def test_subcommands_are_a_registry():
    assert {"train", "eval", "sweep", "data"} <= set(cli.COMMANDS)
    parser = cli.build_parser()
    assert parser.parse_args(["eval", "--workdir", "w", "--best"]).best
