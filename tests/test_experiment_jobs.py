"""``rnnlab experiment --jobs N``: points trained in parallel processes give the metrics of ``--jobs 1``, each
output line names its point, a second command re-runs nothing that finished and resumes a half-finished point
from its checkpoint, the status table says which was which; studies (``REPORT = 'depth_vs_time'``) go to their
own module."""

import json
import os

import pytest

from rnnlab import cli, experiment
from rnnlab.analysis import depth, report
from rnnlab.training import config as config_lib
from rnnlab.training import isolation, train_and_evaluate

CRASH_STEP = 15  # after the checkpoint at step 10, before the end at step 20

GRID = """
from rnnlab.training.config import default_config
def get_config():
    c = default_config(); c.task.name = "adding"; c.parallel = "none"
    c.task.params.length = 6; c.task.params.num_eval = 8
    c.model.hidden_size = 4; c.train.steps = 20; c.train.batch_size = 8; c.train.eval_batches = 1
    c.train.log_every = 5; c.train.eval_every = 10; c.train.checkpoint_every = 10; c.diagnostics.every = 5
    return c
def get_sweep():
    return [{"name": "a", "model.cell": "rnn"}, {"name": "b", "model.cell": "gru"}]
"""


def train_counting(config, workdir):
    """``train_fn``: counts its calls in ``<workdir>.calls``; raises at ``CRASH_STEP`` when
    ``<workdir>.crash`` exists (removing it, so that the next command trains normally)."""
    os.makedirs(os.path.dirname(workdir), exist_ok=True)
    with open(workdir + ".calls", "a") as f:
        f.write("call\n")
    crash = os.path.exists(workdir + ".crash")
    if crash:
        os.remove(workdir + ".crash")

    def hook(state, batch):
        if crash and int(state.step) == CRASH_STEP:
            raise RuntimeError(f"injected crash at step {CRASH_STEP}")
        return {}

    fraction = os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION")
    threads = os.environ.get("RNNLAB_NATIVE_THREADS")
    print(
        f"training {os.path.basename(workdir)}, memory fraction {fraction}, native threads {threads}"
    )  # stdout; the bar is on stderr
    return train_and_evaluate(config, workdir, extra_metrics=[hook])


def calls(workdir) -> int:
    with open(workdir + ".calls") as f:
        return len(f.readlines())


def read(path) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "tiny.py"
    path.write_text(GRID)
    return str(path)


@pytest.fixture(scope="module")
def sequential(grid_file, tmp_path_factory):
    """The grid run with ``jobs=1``: the reference."""
    out = tmp_path_factory.mktemp("jobs1")
    experiment.run_experiments([grid_file], str(out), log=lambda *_: None, train_fn=train_counting)
    return out / "tiny"


def test_two_jobs_give_the_metrics_of_one_and_prefix_every_line(grid_file, sequential, tmp_path, capsys):
    lines = []
    experiment.run_experiments(
        [grid_file], str(tmp_path / "out"), jobs=2, log=lines.append, train_fn=train_counting
    )
    for name in ("a", "b"):
        run = tmp_path / "out" / "tiny" / name
        assert read(run / "metrics.jsonl") == read(sequential / name / "metrics.jsonl")
        assert json.loads(read(run / "final_metrics.json")) == json.loads(
            read(sequential / name / "final_metrics.json")
        )
    captured = capsys.readouterr()
    child = (captured.out + captured.err).splitlines()
    cores = max(1, (os.cpu_count() or 1) // 2)  # a share of the GPU and of the CPU cores each
    assert f"[tiny/a] training a, memory fraction 0.375, native threads {cores}" in child  # stdout
    assert f"[tiny/b] training b, memory fraction 0.375, native threads {cores}" in child
    assert any(line.startswith("[tiny/b] train: 100%") for line in child)  # the last state of a progress bar
    assert all(line.startswith(("[tiny/a] ", "[tiny/b] ")) for line in child), child
    point_lines = [line for line in lines if not line.startswith(("\n", "|"))]
    assert point_lines and all(line.startswith(("[tiny/a] ", "[tiny/b] ")) for line in point_lines), lines
    assert "| tiny/a | finished |" in lines[-1] and "| tiny/b | finished |" in lines[-1]  # the status table


# ~1 min (3 runs in their processes); also shown, faster: test_experiments (a finished point is skipped),
# test_watchdog (a stopped point resumes from its checkpoint), test_checkpoint (SIGKILL, then resume).
@pytest.mark.slow
def test_a_second_command_skips_finished_points_and_resumes_a_half_finished_one(
    grid_file, sequential, tmp_path
):
    out = tmp_path / "out"
    os.makedirs(out / "tiny")
    (out / "tiny" / "b.crash").write_text("")
    with pytest.raises(
        RuntimeError, match=r"1 run\(s\) did not finish: `tiny/b`: RuntimeError: injected crash"
    ):
        experiment.run_experiments(
            [grid_file], str(out), jobs=2, log=lambda *_: None, train_fn=train_counting
        )
    assert "| tiny/a | finished |" in read(out / "report.md") and "| tiny/b | failed |" in read(
        out / "report.md"
    )
    assert os.listdir(out / "tiny" / "b" / "checkpoints") == ["10"]
    a_metrics = os.path.getmtime(out / "tiny" / "a" / "metrics.jsonl")

    lines = []
    experiment.run_experiments([grid_file], str(out), jobs=2, log=lines.append, train_fn=train_counting)
    assert calls(str(out / "tiny" / "a")) == 1  # not started again
    assert os.path.getmtime(out / "tiny" / "a" / "metrics.jsonl") == a_metrics
    assert calls(str(out / "tiny" / "b")) == 2
    assert read(out / "tiny" / "b" / "metrics.jsonl") == read(sequential / "b" / "metrics.jsonl")
    text = read(out / "report.md")
    assert "| tiny/a | skipped | 0.0 s | eval/mse_over_baseline = " in text
    assert "| tiny/b | resumed |" in text and "did not finish" not in text
    assert "| tiny/b | resumed |" in lines[-1]


def test_status_words_and_main_metric():
    Outcome = isolation.Outcome
    assert [o.summary for o in (Outcome("finished"), Outcome("skipped"), Outcome("nonfinite"))] == [
        "finished",
        "skipped",
        "nonfinite",
    ]
    assert Outcome("finished", resumed=True).summary == "resumed"
    assert Outcome("finished", hangs=1, resumed=True).summary == "retried"
    assert Outcome("hung", hangs=2).summary == "failed" and Outcome("failed").summary == "failed"
    cfg = config_lib.default_config()
    result = {"step": 3, "eval/loss": 0.5, "eval/accuracy": 0.75, "test/accuracy": 0.7}
    assert experiment._main_metric(cfg, result) == ("eval/accuracy", 0.75)
    cfg.train.best_metric = "eval/loss"
    assert experiment._main_metric(cfg, result) == ("eval/loss", 0.5)
    assert experiment._main_metric(cfg, None) is None
    table = experiment.status_table(
        [("x/a", "skipped", 0.0, ("eval/loss", 0.5)), ("x/b", "failed", 90.0, None)]
    )
    assert table.splitlines()[2:] == [
        "| x/a | skipped | 0.0 s | eval/loss = 0.5 |",
        "| x/b | failed | 1.5 min | - |",
    ]


def test_output_lines_are_prefixed_whole_and_a_progress_bar_keeps_its_last_state(capsys):
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"train:  10%\rtrain: 100%\nplain line\n\npartial \xff")
    os.close(write_fd)
    isolation._pump(read_fd, "[p] ", "stdout")
    assert capsys.readouterr().out == "[p] train: 100%\n[p] plain line\n[p] partial \ufffd\n"


DEPTH_STUDY = """
REPORT = "depth_vs_time"
ARGS = ("quick",)
def get_config(arg=None):
    return {"depths": [1, 2], "quick": arg == "quick"}
"""


def test_depth_vs_time_is_dispatched_to_the_depth_study(tmp_path, monkeypatch):
    seen = []

    def run_study(config, out_dir, *, title, log):
        seen.append((config, out_dir, title))
        log("measuring")
        return [report.Section(f"{title}: depth against time", "measured")]

    monkeypatch.setattr(depth, "run_study", run_study)
    path = tmp_path / "depth.py"
    path.write_text(DEPTH_STUDY)
    lines = []
    out = experiment.run_experiments([f"{path}:quick"], str(tmp_path / "out"), log=lines.append)
    assert seen == [({"depths": [1, 2], "quick": True}, str(tmp_path / "out" / "depth_quick"), "depth_quick")]
    text = read(out)
    assert "## depth_quick: depth against time\n\nmeasured" in text and "Published results" not in text
    assert lines == ["measuring"]
    with pytest.raises(ValueError, match=r"depth_vs_time studies take no --config.\* overrides or --seeds"):
        experiment.run_experiments([str(path)], str(tmp_path / "o2"), seeds=[0, 1])


def test_jobs_must_be_positive(grid_file, tmp_path, capsys):
    assert cli.main(["experiment", grid_file, "--workdir", str(tmp_path / "out"), "--jobs", "0"]) == 2
    assert "jobs (--jobs) must be at least 1; got 0" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")
