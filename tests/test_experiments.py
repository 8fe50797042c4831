"""Every experiment file: each grid validates, its first point trains 2 steps, and the runner writes a
report."""

import os

import pytest
import tensorflow_datasets as tfds

from rnnlab import cli, experiment
from rnnlab.analysis import report_runs
from rnnlab.training import config as config_lib
from rnnlab.training import train_and_evaluate

EXPERIMENTS = [
    "gradient_flow.py",
    "gradient_flow.py:quick",
    "adding.py",
    "adding.py:cpu",
    "adding.py:200",
    "copy.py",
    "copy.py:quick",
    "remedies.py",
    "remedies.py:cpu",
    "smnist.py",
    "smnist.py:catalog",
]
# Tiny versions of every run: 2 steps, small models and sequences.
TINY = {
    "train.steps": 2,
    "train.batch_size": 4,
    "train.eval_batches": 1,
    "train.eval_batch_size": 4,
    "train.log_every": 1,
    "train.eval_every": 0,
    "train.checkpoint_every": 0,
    "model.hidden_size": 4,
    "num_seeds": 2,
}


def spec(name):
    return os.path.join("experiments", name)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_grid_point_is_a_valid_config(name):
    runs = experiment.grid(spec(name))
    assert runs and len({n for n, _ in runs}) == len(runs)
    experiment.validate_all(runs)


def _tiny(cfg):
    over = dict(TINY)
    if cfg.diagnostics.every:
        over["diagnostics.every"] = 2
    if "length" in cfg.task.params:
        over["task.params.length"] = 6
        over["task.params.num_eval"] = 4
        opts = cfg.model.cell_options.to_dict()
        if "chrono_tmax" in opts:
            over["model.cell_options"] = {**opts, "chrono_tmax": 6}
    if "pixels_per_step" in cfg.task.params:
        over["task.params.pixels_per_step"] = 98  # T = 8
    return config_lib.apply_overrides(cfg, over)


@pytest.mark.parametrize(
    "name", ["gradient_flow.py:quick", "adding.py:cpu", "copy.py:quick", "remedies.py:cpu"]
)
def test_first_point_trains_two_steps(name, tmp_path):
    run_name, cfg = experiment.grid(spec(name))[0]
    result = train_and_evaluate(_tiny(cfg), str(tmp_path / run_name))
    assert result["step"] == 2 and any(k.startswith("eval/") for k in result)


def test_smnist_on_mock_catalog_data(tmp_path):
    _, cfg = experiment.grid(spec("smnist.py:catalog"))[0]
    cfg = _tiny(cfg)
    cfg.task.params.data_dir = str(tmp_path / "data")
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        result = train_and_evaluate(cfg, str(tmp_path / "run"))
    assert result["step"] == 2 and 0.0 <= result["eval/accuracy"] <= 1.0


def test_runner_writes_a_report_with_gradient_flow_at_init_and_after_training(tmp_path, monkeypatch):
    exp_file = tmp_path / "tiny_flow.py"
    exp_file.write_text(
        "from rnnlab.training.config import default_config\n"
        'REPORT = "gradient_flow"\n'
        "def get_config():\n"
        '  c = default_config(); c.task.name = "adding"\n'
        "  c.task.params.length = 6; c.task.params.num_eval = 4\n"
        "  c.model.hidden_size = 4; c.train.steps = 2; c.train.batch_size = 4; c.train.log_every = 1\n"
        "  c.train.progress = False; c.diagnostics.every = 2\n"
        "  return c\n"
        "def get_sweep():\n"
        '  return [{"name": "tanh", "model.cell": "rnn"}, {"name": "lstm", "model.cell": "lstm"}]\n'
    )
    path = experiment.run_experiments([str(exp_file)], str(tmp_path / "out"), log=lambda *_: None)
    with open(path) as f:
        text = f.read()
    assert "| tanh |" in text and "| lstm |" in text and "log rate/step (probe), init" in text
    for line in text.splitlines():
        if line.startswith("!["):
            assert os.path.exists(os.path.join(tmp_path / "out", line.split("](")[1].rstrip(")")))
    run = report_runs.read_run(str(tmp_path / "out" / "tiny_flow" / "lstm"))
    assert report_runs.list_at_step(run, "grad_norm_t", 0) and report_runs.list_at_step(run, "grad_norm_t", 2)
    # `rnnlab report` on the run directories writes a report with existing plots.
    assert (
        cli.main(
            [
                "report",
                str(tmp_path / "out" / "tiny_flow" / "lstm"),
                str(tmp_path / "out" / "tiny_flow" / "tanh"),
                "--out",
                str(tmp_path / "rep"),
            ]
        )
        == 0
    )
    assert "## training curves" in (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "loss_curves.png").exists()
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    # Finished runs are skipped when the same command runs again.
    mtime = os.path.getmtime(tmp_path / "out" / "tiny_flow" / "lstm" / "metrics.jsonl")
    experiment.run_experiments([str(exp_file)], str(tmp_path / "out"), log=lambda *_: None)
    assert os.path.getmtime(tmp_path / "out" / "tiny_flow" / "lstm" / "metrics.jsonl") == mtime


def test_bad_sweep_is_reported_before_anything_runs(tmp_path):
    exp_file = tmp_path / "bad.py"
    exp_file.write_text(
        "from rnnlab.training.config import default_config\n"
        "def get_config():\n  return default_config()\n"
        "def get_sweep():\n"
        '  return [{"name": "a", "optim.clip": "sometimes"}, {"name": "b", "model.hidden_size": -1}]\n'
    )
    with pytest.raises(ValueError) as e:
        experiment.run_experiments([str(exp_file)], str(tmp_path / "out"))
    assert "optim.clip" in str(e.value) and "hidden_size" in str(e.value)
    assert not os.path.exists(tmp_path / "out")


def test_readme_quick_start_code_runs():
    """The README's Python quick start is executed as written (READMEs must not drift from the code)."""
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        readme = f.read()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["y"].shape == (8, 1000, 128)
    assert isinstance(namespace["model"], namespace["rnnlab"].SequenceModel)


@pytest.mark.parametrize(
    "command", ["train", "eval", "sweep", "experiment", "report", "data", "predict", "complete", "translate"]
)
def test_readme_cli_commands_exist(command):
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        assert f"rnnlab {command}" in f.read()
    assert command in cli.COMMANDS
