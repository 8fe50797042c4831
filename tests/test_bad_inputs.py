"""Every bad input gets one clear error before anything is written: a table of bad inputs through the CLI
(in-process, a few in a subprocess) and the Python API. Each row asserts the message (a fragment that names
the bad value or the fix), exit code 2 and no traceback for the CLI, and that no file was created or changed.

Placeholders in a row: {W} a fresh run directory, {FILE} an existing file, {OLD} a run directory holding
another config, {RUN} a trained run (regression task 'adding', no best_metric), {NOGET} an experiment file
without get_config, {NOARG} one whose get_config takes no argument.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rnnlab
from rnnlab import cli, experiment, tasks
from rnnlab.apps.runs import evaluate_run, load_run
from rnnlab.training import config as config_lib
from rnnlab.training import train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--config.train.steps=2", "--config.train.progress=false", "--config.parallel=none"]
T = ["train", "--config", "experiments/adding.py:10", "--workdir", "{W}", *FAST]
LSTM_OFF = "--config.model.cell_options={}"  # unties chrono T_max from the length

CLI_ROWS = [
    # experiment files and their arguments
    (
        "arg",
        ["train", "--config", "experiments/adding.py:abc", "--workdir", "{W}"],
        "valid: (none), cpu, <int>",
    ),
    (
        "arg-forecast",
        ["train", "--config", "experiments/forecast.py:co2:x", "--workdir", "{W}"],
        "valid: (none), sunspots, co2, sunspots:<int>, co2:<int>",
    ),
    ("arg-takes-none", ["train", "--config", "{NOARG}:x", "--workdir", "{W}"], "takes no argument"),
    ("file-missing", ["train", "--config", "experiments/addin.py", "--workdir", "{W}"], "not found"),
    ("file-not-python", ["train", "--config", "README.md", "--workdir", "{W}"], "is not a Python file"),
    ("file-directory", ["train", "--config", "experiments", "--workdir", "{W}"], "(it is a directory)"),
    ("file-no-get-config", ["train", "--config", "{NOGET}", "--workdir", "{W}"], "defines no get_config()"),
    ("grid-arg", ["experiment", "experiments/copy.py:slow", "--workdir", "{W}"], "valid: (none), quick"),
    ("experiment-none", ["experiment", "--workdir", "{W}"], "needs at least one experiment file"),
    # overrides: keys, types, choices, ranges, consistency
    ("key", [*T, "--config.model.cel=gru"], "unknown key 'model.cel' (valid keys here:"),
    ("key-not-a-group", [*T, "--config.model.cell.x=1"], "model.cell='lstm' has no keys"),
    ("type", [*T, "--config.train.steps=many"], "train.steps must be of type int, got 'many'"),
    ("choice", [*T, "--config.model.cell=lstn"], "model.cell='lstn' is not one of: gru, irnn"),
    ("range", [*T, "--config.optim.learning_rate=0"], "optim.learning_rate=0.0 must be > 0"),
    (
        "no-value",
        [*T, "--config.train.steps"],
        "--config.train.steps needs a value (--config.train.steps=VALUE)",
    ),
    ("schedule", [*T, "--config.optim.schedule=step"], "needs optim.boundaries, e.g. (1000, 2000)"),
    ("devices", [*T, "--config.parallel=sharded", "--config.train.batch_size=6"], "use a multiple of 4"),
    ("best-test", [*T, "--config.train.best_metric=test/loss"], "the test split is never used to select"),
    ("patience", [*T, "--config.train.early_stop_patience=2"], "needs train.best_metric set to a validation"),
    (
        "patience-eval",
        [
            *T,
            "--config.train.early_stop_patience=2",
            "--config.train.best_metric=eval/loss",
            "--config.train.eval_every=0",
        ],
        "needs train.eval_every > 0",
    ),
    ("tbptt-kind", [*T, "--config.train.tbptt=true"], "train.tbptt needs a language-model task"),
    # task parameters: checked by building the task
    ("task-range", [*T, "--config.task.params.length=-5", LSTM_OFF], "adding needs length >= 2"),
    ("task-unknown", [*T, "--config.task.params.lenght=5"], "unknown parameter 'lenght' for task 'adding'"),
    ("task-type", [*T, "--config.task.params.length=abc"], "task.params.length must be of type int"),
    ("task-float", [*T, "--config.task.params.num_eval=2.5"], "task.params.num_eval must be of type int"),
    ("task-num-eval", [*T, "--config.task.params.num_eval=0"], "num_eval must be >= 1"),
    # cell options: checked by building the model
    ("cell-type", [*T, '--config.model.cell_options={"forget_bias": "x"}'], "forget_bias must be a number"),
    (
        "cell-unknown",
        [*T, '--config.model.cell_options={"forgetbias": 1}'],
        "forgetbias unknown to cell 'lstm'",
    ),
    ("cell-range", [*T, '--config.model.cell_options={"chrono_tmax": 1}'], "chrono_tmax must be > 2"),
    (
        "cell-choice",
        [*T, "--config.model.cell=rnn", '--config.model.cell_options={"recurrent_init": "unit"}'],
        "unknown recurrent_init 'unit'",
    ),
    (
        "backend",
        [*T, "--config.model.cell=rnn", LSTM_OFF, "--config.model.rnn.backend=fused"],
        "use backend='xla' or 'auto'",
    ),
    # the model on the task: checked by one abstract train step
    ("head", [*T, "--config.model.head=all"], "use model.head='last' (or 'auto')"),
    # run directories
    ("workdir-file", ["train", "--config", "experiments/adding.py:10", "--workdir", "{FILE}"], "is a file"),
    ("workdir-in-file", [*T[:4], "{FILE}/run", *FAST], "is inside the file"),
    ("workdir-other", [*T[:4], "{OLD}", *FAST], "holds a run with a different config"),
    ("eval-missing", ["eval", "--workdir", "{W}"], "not found: pass the --workdir of a `rnnlab train` run"),
    ("eval-file", ["eval", "--workdir", "{FILE}"], "is a file, not a run directory"),
    ("eval-overrides", ["eval", "--workdir", "{RUN}", "--config.train.steps=3"], "eval takes no --config"),
    (
        "eval-step",
        ["eval", "--workdir", "{RUN}", "--step", "999"],
        "no checkpoint at step 999; saved steps: [2]",
    ),
    ("eval-best", ["eval", "--workdir", "{RUN}", "--best"], "or train with train.best_metric"),
    ("eval-split", ["eval", "--workdir", "{RUN}", "--split", "dev"], "valid: train, validation, test"),
    ("eval-batches", ["eval", "--workdir", "{RUN}", "--eval_batches", "-1"], "eval_batches must be >= 0"),
    ("report-missing", ["report", "{W}"], "not a run directory"),
    # applications on the wrong kind of run
    ("complete-kind", ["complete", "--workdir", "{RUN}", "To be"], "complete needs a language-model run"),
    ("translate-kind", ["translate", "--workdir", "{RUN}", "one"], "translate needs a seq2seq run"),
    ("predict-kind", ["predict", "--workdir", "{RUN}", "a text"], "use `rnnlab predict --evaluate` or"),
    (
        "predict-evaluate-text",
        ["predict", "--workdir", "{RUN}", "--evaluate", "x"],
        "--evaluate and --grid take no INPUT",
    ),
    # other commands
    (
        "seeds",
        ["sweep", "--config", "experiments/adding.py:10", "--workdir", "{W}", "--seeds", "a,b"],
        "e.g. 0,1,2",
    ),
    ("dataset", ["data", "prepare", "vaderr"], "unknown dataset 'vaderr'; valid: adding,"),
    ("dataset-config", ["data", "prepare", "vader/books"], "unknown config 'books' for vader; valid: movies"),
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished 2-step run of the adding task (small and fast)."""
    c = config_lib.default_config()
    c.task.params = {"length": 4, "num_eval": 8}
    c.parallel = "none"
    c.model.cell = "rnn"
    c.model.hidden_size = 4
    c.train.steps = 2
    c.train.batch_size = 4
    c.train.progress = False
    workdir = str(tmp_path_factory.mktemp("trained") / "run")
    train_and_evaluate(c, workdir)
    return Path(workdir)


@pytest.fixture
def places(tmp_path, trained_run, monkeypatch):
    """The placeholders' paths (created here, before the snapshot), with cwd = the repository root."""
    monkeypatch.chdir(ROOT)
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(config_lib.default_config().to_json())
    (tmp_path / "noget.py").write_text("X = 1\n")
    (tmp_path / "noarg.py").write_text(
        "from rnnlab.training.config import default_config\n\n\ndef get_config():\n"
        "    return default_config()\n"
    )
    return {
        "W": tmp_path / "run",
        "FILE": tmp_path / "afile",
        "OLD": tmp_path / "old",
        "RUN": trained_run,
        "NOGET": tmp_path / "noget.py",
        "NOARG": tmp_path / "noarg.py",
    }


def fill(args, places):
    out = []
    for arg in args:
        for key, path in places.items():
            arg = arg.replace("{" + key + "}", str(path))
        out.append(arg)
    return out


def snapshot(*roots: Path) -> list:
    """Every path under ``roots`` with its size and modification time."""
    out = []
    for root in roots:
        for p in sorted(root.rglob("*")):
            stat = p.stat()
            out.append((str(p), stat.st_size, stat.st_mtime_ns))
    return out


@pytest.mark.parametrize("argv, fragment", [pytest.param(a, f, id=i) for i, a, f in CLI_ROWS])
def test_cli_bad_input_is_one_message_and_writes_nothing(argv, fragment, places, tmp_path, capsys):
    before = snapshot(tmp_path, places["RUN"])
    code = cli.main(fill(argv, places))
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err, err
    assert err.startswith("error: ") and err.count("error: ") == 1 and "Traceback" not in err, err
    assert snapshot(tmp_path, places["RUN"]) == before


def _train(places, **changes):
    c = config_lib.default_config()
    c.parallel = "none"
    c.train.steps = 2
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = value
    return train_and_evaluate(c, str(places["W"]))


def _cell():
    return rnnlab.get_cell("gru", 4)


API_ROWS = [
    (
        "train-dict-key",
        lambda p: train_and_evaluate({"trian": {"steps": 2}}, str(p["W"])),
        "unknown key 'trian'",
    ),
    (
        "train-dict-type",
        lambda p: train_and_evaluate({"num_seeds": 2.5}, str(p["W"])),
        "num_seeds must be of type int",
    ),
    ("train-task", lambda p: _train(p, task__params={"length": 1}), "adding needs length >= 2"),
    (
        "train-cell",
        lambda p: _train(p, model__cell_options={"peephole": "yes"}),
        "peephole must be true or false",
    ),
    ("train-workdir-file", lambda p: train_and_evaluate({}, str(p["FILE"])), "is a file, not a directory"),
    ("load-run-missing", lambda p: load_run(str(p["W"])), "run directory"),
    ("load-run-step", lambda p: load_run(str(p["RUN"]), 7), "no checkpoint at step 7"),
    ("load-run-step-type", lambda p: load_run(str(p["RUN"]), "latest"), "step must be None, 'best' or"),
    ("load-run-seed", lambda p: load_run(str(p["RUN"]), seed_index=3), "seed_index=3 but the run has 1 seed"),
    ("evaluate-split", lambda p: evaluate_run(str(p["RUN"]), split="dev"), "unknown split 'dev'"),
    ("get-task-name", lambda p: tasks.get_task("addding"), "unknown task 'addding'; valid:"),
    ("get-task-param", lambda p: tasks.get_task("adding", lenght=5), "unknown parameter 'lenght'"),
    ("get-task-range", lambda p: tasks.get_task("temporal_order", length=5), "needs length >= 20, got 5"),
    ("get-task-type", lambda p: tasks.get_task("copy", length=2.5), "length must be an integer, got 2.5"),
    ("get-task-bool", lambda p: tasks.get_task("delayed_recall", lag=True), "lag must be an integer"),
    ("prepare-name", lambda p: tasks.prepare("nope"), "unknown dataset 'nope'"),
    ("get-cell-name", lambda p: rnnlab.get_cell("lsmt", 8), "unknown cell 'lsmt'; valid cells:"),
    ("get-cell-option", lambda p: rnnlab.get_cell("lstm", 8, forgetbias=1.0), "valid options:"),
    ("get-cell-size", lambda p: rnnlab.get_cell("lstm", 0), "hidden_size must be a positive integer"),
    ("get-cell-type", lambda p: rnnlab.get_cell("lstm", 8, forget_bias="x"), "forget_bias must be a number"),
    ("get-cell-range", lambda p: rnnlab.get_cell("lru", 8, r_min=0.9, r_max=0.5), "need 0 <= r_min < r_max"),
    ("model-head", lambda p: rnnlab.SequenceModel(cell="gru", hidden_size=8, head="first"), "valid heads:"),
    ("model-cell", lambda p: rnnlab.SequenceModel(cell="gruu", hidden_size=8), "unknown cell 'gruu'"),
    (
        "model-options",
        lambda p: rnnlab.SequenceModel(rnn_options={"backend": "cuda"}),
        "unknown backend 'cuda'",
    ),
    (
        "rnn-remat-chunk",
        lambda p: rnnlab.RNN(_cell(), remat_chunk=-1).plan(),
        "remat_chunk must be an integer",
    ),
    ("rnn-mode", lambda p: rnnlab.RNN(_cell(), mode="associative").plan(), "use mode='sequential'"),
    ("grid-arg", lambda p: experiment.grid("experiments/adding.py:fast"), "has no argument 'fast'"),
    (
        "overrides",
        lambda p: config_lib.apply_overrides(config_lib.default_config(), {"x.y": 1}),
        "unknown key 'x'",
    ),
]


@pytest.mark.parametrize("call, fragment", [pytest.param(c, f, id=i) for i, c, f in API_ROWS])
def test_python_api_bad_input_raises_a_clear_error_and_writes_nothing(call, fragment, places, tmp_path):
    before = snapshot(tmp_path, places["RUN"])
    with pytest.raises((ValueError, TypeError, FileNotFoundError, NotADirectoryError)) as err:
        call(places)
    assert fragment in str(err.value)
    assert snapshot(tmp_path, places["RUN"]) == before


def test_the_table_covers_at_least_40_inputs():
    assert len(CLI_ROWS) + len(API_ROWS) >= 40 and len({r[0] for r in CLI_ROWS}) == len(CLI_ROWS)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--config", "experiments/adding.py:abc", "--workdir", "{W}"], "has no argument 'abc'"),
        (["train", "--config", "experiments/adding.py:8", "--workdir", "{FILE}", *FAST], "is a file"),
    ],
    ids=["experiment-arg", "workdir-file"],
)
def test_console_shows_one_line_and_exit_code_2(args, fragment, places, tmp_path):
    """The real process: exit code 2, one line on stderr, nothing on stdout, nothing written."""
    before = snapshot(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "rnnlab", *fill(args, places)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and fragment in out.stderr
    assert out.stdout == "" and snapshot(tmp_path) == before


def test_no_network_is_one_message_and_leaves_no_data(places, tmp_path, monkeypatch, capsys):
    """A dataset prepared on first use while offline: pip cannot reach the index (a closed local port)."""
    data = tmp_path / "data"
    monkeypatch.setenv("RNNLAB_DATA_DIR", str(data))
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)
    for key, value in {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_FIND_LINKS": "",
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(key, value)
    before = snapshot(tmp_path)
    argv = ["train", "--config", "experiments/sentiment.py", "--workdir", str(places["W"]), *FAST]
    assert cli.main([*argv, "--config.optim.warmup_steps=0"]) == 2
    err = capsys.readouterr().err
    assert "could not download vaderSentiment==3.3.2" in err and "Check the network" in err, err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_a_real_bug_keeps_its_traceback(monkeypatch, places):
    """Only user errors become one line: anything else (here a KeyError) propagates."""

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(experiment, "load_config", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(fill(T, places))


def test_every_experiment_declares_its_args_and_each_builds():
    for path in sorted(ROOT.glob("experiments/*.py")):
        module = experiment.load_module(str(path))
        assert hasattr(module, "ARGS"), path.name
        if getattr(module, "REPORT", "training") not in ("training", "gradient_flow"):
            continue  # a study, not training runs: its get_config is not a training config
        for form in module.ARGS:
            config_lib.validate(experiment.load_config(f"{path}:{form.replace('<int>', '8')}"))
