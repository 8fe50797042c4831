"""provenance.json: what produced a run (code, packages, machine, command, times, size), one session per
invocation, shown by ``rnnlab report`` with what differs between runs and sessions."""

import json
import math
import os
import re
import sys

import jax
from test_train import TinyRNN, tiny_config

from rnnlab.analysis import report
from rnnlab.tasks import get_task
from rnnlab.training import provenance, train_and_evaluate
from rnnlab.training.state import abstract_params


def test_a_resumed_run_records_one_session_per_invocation(tmp_path):
    work = str(tmp_path / "run")
    train_and_evaluate(tiny_config(steps=2, checkpoint_every=2), work, model=TinyRNN())
    train_and_evaluate(tiny_config(steps=4, checkpoint_every=2), work, model=TinyRNN())
    data = provenance.read(work)
    first, second = data["sessions"]
    assert (first["start_step"], second["start_step"]) == (0, 2)
    assert first["status"] == second["status"] == "finished"
    assert first["started"] <= first["ended"] <= second["started"] <= second["ended"]
    params = abstract_params(TinyRNN(), get_task("adding", length=6).info, 1)
    assert data["param_count"] == sum(math.prod(x.shape[1:]) for x in jax.tree.leaves(params)) == 97
    assert second["packages"]["jax"] == jax.__version__ and second["packages"]["jaxlib"] == jax.__version__
    assert re.fullmatch(r"[0-9a-f]{40}", second["rnnlab"]["commit"])  # the tests run in a git checkout
    assert isinstance(second["rnnlab"]["dirty"], bool)
    assert second["backend"] == "cpu" and second["devices"]["count"] == jax.device_count() == 4
    assert second["xla_flags"] == os.environ["XLA_FLAGS"] and second["command"] == sys.argv
    # `rnnlab report` shows it: the shared environment once, the run's size and sessions in a row.
    text = open(report.main([work], str(tmp_path / "rep"))).read()
    assert f"- **jax**: {jax.__version__}" in text and "- **backend**: cpu" in text
    assert re.search(rf"\| run \| {data['param_count']:,} \| 2 \| ", text)


def test_no_git_means_unknown(tmp_path):
    assert provenance.git_state(str(tmp_path)) == {"commit": "unknown", "dirty": None}


def test_report_shows_what_differs_between_sessions_and_runs(tmp_path):
    def session(jax_version, host):
        return {"packages": {"jax": jax_version}, "host": host, "status": "finished", "started": "t0"}

    runs = {"a": [session("0.10.2", "h1"), session("0.10.3", "h1")], "b": [session("0.10.2", "h2")]}
    for name, sessions in runs.items():
        os.makedirs(tmp_path / name)
        (tmp_path / name / "provenance.json").write_text(
            json.dumps({"param_count": 1234, "sessions": sessions})
        )
    text = open(report.main([str(tmp_path / n) for n in runs], str(tmp_path / "rep"))).read()
    assert "| run | parameters | sessions | started | ended | status | jax | host |" in text
    assert "| a | 1,234 | 2 | t0 | – | finished | 0.10.2 -> 0.10.3 | h1 |" in text
    assert "| b | 1,234 | 1 | t0 | – | finished | 0.10.2 | h2 |" in text
