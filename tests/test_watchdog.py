"""The watchdog: an injected hang stops the run with every thread's stack and a resume hint, the same command
resumes it to the result of an uninterrupted run, and ``rnnlab experiment`` retries a hung point once."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
from test_train import TinyRNN, tiny_config

from rnnlab import experiment
from rnnlab.training import train_and_evaluate, watchdog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WATCHDOG_S = 5.0  # x3 for the first activity of each kind: enough to compile TinyRNN on a loaded machine
HANG_STEP = 4


def _config():
    c = tiny_config(steps=6, checkpoint_every=2, log_every=1)
    c.diagnostics.every = 2
    c.train.watchdog_s = WATCHDOG_S
    return c


def sleeper(hang: bool):
    """An extra metric that never returns at step ``HANG_STEP`` (the injected hang) when ``hang``."""

    def metric(state, batch):
        if hang and int(state.step) == HANG_STEP:
            time.sleep(3600)
        return {}

    return metric


def train_hanging_by_name(config, workdir):
    """``train_fn`` of the experiment test: 'hang_once' hangs on its first attempt; 'hang_always' ends as the
    watchdog ends a process, at once (a second real hang would only cost time)."""
    if os.path.basename(workdir) == "hang_always":
        os._exit(watchdog.EXIT_CODE)
    marker = workdir + ".attempted"
    hang = not os.path.exists(marker)
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    open(marker, "w").close()
    return train_and_evaluate(config, workdir, model=TinyRNN(), extra_metrics=[sleeper(hang)])


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, "tests")
    from test_watchdog import TinyRNN, _config, sleeper
    from rnnlab.training import train_and_evaluate
    hook = sleeper(sys.argv[2] == "hang")
    train_and_evaluate(_config(), sys.argv[1], model=TinyRNN(), extra_metrics=[hook])
""")


def test_first_activity_of_each_kind_gets_more_time():
    dog = watchdog.Watchdog("unused", 10.0)
    assert dog.limit() == 10.0 * watchdog.FIRST_FACTOR  # start-up
    dog.doing("train step", 1)
    assert dog.limit() == 10.0 * watchdog.FIRST_FACTOR  # compiles the train step
    dog.doing("evaluation", 1)
    assert dog.limit() == 10.0 * watchdog.FIRST_FACTOR
    dog.doing("train step", 2)
    assert dog.limit() == 10.0


def test_injected_hang_stops_with_stacks_and_the_same_command_resumes(tmp_path):
    work = str(tmp_path / "run")
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, work, "hang"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # the uninterrupted run trains here meanwhile, while the hung process waits for its watchdog
        full = str(tmp_path / "full")
        train_and_evaluate(_config(), full, model=TinyRNN(), extra_metrics=[sleeper(False)])
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed = time.monotonic() - start
    assert proc.returncode == watchdog.EXIT_CODE, stderr[-3000:]
    assert f"no progress for {WATCHDOG_S:.0f} s while running diagnostics (step {HANG_STEP})" in stderr
    assert "Run the same command again to resume from its last checkpoint (step 2)" in stderr
    with open(os.path.join(work, "hang_p0.txt")) as f:
        stacks = f.read()
    assert "in metric" in stacks and "rnnlab/training/loop.py" in stacks  # the hung frame and its caller
    assert elapsed < 200
    resumed = subprocess.run(
        [sys.executable, "-c", SCRIPT, work, "no"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with open(os.path.join(work, "metrics.jsonl")) as a, open(os.path.join(full, "metrics.jsonl")) as b:
        assert a.read() == b.read()


def test_experiment_retries_a_hung_point_once_and_reports_it(tmp_path):
    exp_file = tmp_path / "tiny.py"
    exp_file.write_text(
        "from rnnlab.training.config import default_config\n"
        "def get_config():\n"
        '  c = default_config(); c.task.name = "adding"; c.task.params.length = 6; c.parallel = "none"\n'
        "  c.model.hidden_size = 8; c.train.steps = 6; c.train.batch_size = 8; c.train.log_every = 1\n"
        "  c.train.checkpoint_every = 2; c.train.eval_batches = 1; c.train.progress = False\n"
        f"  c.diagnostics.every = 2; c.train.watchdog_s = {WATCHDOG_S}\n"
        "  return c\n"
        "def get_sweep():\n"
        '  return [{"name": "hang_once"}, {"name": "hang_always"}]\n'
    )
    lines = []
    with pytest.raises(RuntimeError, match=r"1 run\(s\) did not finish: `tiny/hang_always`: hung 2 times"):
        experiment.run_experiments(
            [str(exp_file)], str(tmp_path / "out"), log=lines.append, train_fn=train_hanging_by_name
        )
    assert sum("stopped by the watchdog" in line for line in lines) == 2  # one retry per point
    report = (tmp_path / "out" / "report.md").read_text()
    assert "`tiny/hang_once`: stopped 1 time(s), then finished" in report
    assert "`tiny/hang_always`: hung 2 times" in report
    assert os.path.exists(tmp_path / "out" / "tiny" / "hang_once" / "final_metrics.json")
