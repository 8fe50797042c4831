"""Damaged checkpoints: each kind of damage is named in a warning, resuming falls back to the newest intact
checkpoint (or to step 0) and ends equal to an uninterrupted run, metrics.jsonl and TensorBoard included;
``load_run`` refuses a damaged checkpoint and names the intact ones."""

import collections
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from test_train import TinyRNN, tiny_config

from rnnlab.apps.runs import load_run
from rnnlab.training import checkpointing, integrity, tbevents, train_and_evaluate


def _config(steps):
    return tiny_config(steps=steps, checkpoint_every=2, log_every=1, eval_every=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 6-step run, and a run stopped after 4 steps (checkpoints 2 and 4)."""
    root = tmp_path_factory.mktemp("integrity")
    train_and_evaluate(_config(6), str(root / "full"), model=TinyRNN())
    train_and_evaluate(_config(4), str(root / "stopped"), model=TinyRNN())
    return root


def _largest_file(step_dir):
    files = [os.path.join(r, n) for r, _, names in os.walk(step_dir / "state") for n in names]
    return max(files, key=os.path.getsize)


def flip_byte(step_dir):
    path = _largest_file(step_dir)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    return "changed since it was saved"


def truncate(step_dir):
    path = _largest_file(step_dir)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    return "bytes"


def delete_file(step_dir):
    os.remove(_largest_file(step_dir))
    return "is missing"


def empty_directory(step_dir):
    shutil.rmtree(step_dir)
    os.mkdir(step_dir)
    return "the directory is empty"


def no_commit_marker(step_dir):
    os.remove(step_dir / integrity.COMMIT_MARKER)
    return f"{integrity.COMMIT_MARKER} is missing"


def no_manifest(step_dir):  # killed after Orbax's commit, before the manifest
    os.remove(step_dir / integrity.MANIFEST)
    return "the writer stopped before the save completed"


DAMAGE = [flip_byte, truncate, delete_file, empty_directory, no_commit_marker, no_manifest]


def tb_steps(workdir):
    """Counter of (tag, step) over every TensorBoard event file of a run."""
    out = collections.Counter()
    for path in tbevents.event_files(os.path.join(workdir, "tb")):
        for event in tbevents.read_events(path):
            out.update((v.tag, event.step) for v in event.summary.value)
    return out


def final_params(workdir):
    ckpt = os.path.join(workdir, "checkpoints", "6", "state")
    return ocp.StandardCheckpointer().restore(ckpt)["params"]


def assert_same_run(a, b):
    with open(a / "metrics.jsonl") as fa, open(b / "metrics.jsonl") as fb:
        assert fa.read() == fb.read()
    jax.tree.map(np.testing.assert_array_equal, final_params(a), final_params(b))
    steps_a, steps_b = tb_steps(a), tb_steps(b)
    assert steps_a == steps_b and max(steps_b.values()) == 1  # every (tag, step) exactly once


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_damaged_latest_checkpoint_is_refused_then_resume_falls_back(runs, tmp_path, damage):
    work = tmp_path / "run"
    shutil.copytree(runs / "stopped", work)
    expected = damage(work / "checkpoints" / "4")

    with pytest.raises(checkpointing.DamagedCheckpointError) as err:
        load_run(str(work), model=TinyRNN())
    message = str(err.value)
    assert str(work / "checkpoints" / "4") in message and expected in message
    assert "intact checkpoints of this run: [2]" in message
    assert load_run(str(work), step=2, model=TinyRNN()).step == 2  # the advice works

    with pytest.warns(checkpointing.DamagedCheckpointWarning, match=expected) as caught:
        result = train_and_evaluate(_config(6), str(work), model=TinyRNN())
    assert "resuming from step 2" in str(caught[0].message)
    assert os.path.isdir(work / "checkpoints_damaged" / "4")  # kept for inspection, out of Orbax's way
    assert result["step"] == 6
    assert_same_run(runs / "full", work)


def test_no_intact_checkpoint_left_restarts_from_step_0(runs, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(runs / "stopped", work)
    flip_byte(work / "checkpoints" / "4")
    truncate(work / "checkpoints" / "2")
    with pytest.warns(checkpointing.DamagedCheckpointWarning, match="starts again from step 0"):
        train_and_evaluate(_config(6), str(work), model=TinyRNN())
    assert sorted(os.listdir(work / "checkpoints_damaged")) == ["2", "4"]
    assert_same_run(runs / "full", work)


def test_intact_checkpoints_verify_and_an_old_one_without_manifest_loads_with_a_warning(runs, tmp_path):
    ckpt = checkpointing.Checkpointer(str(runs / "stopped" / "checkpoints"))
    assert [ckpt.verify(s) for s in ckpt.all_steps()] == [integrity.Verdict()] * 2
    ckpt.close()
    work = tmp_path / "old"
    shutil.copytree(runs / "stopped", work)
    step_dir = work / "checkpoints" / "4"
    os.remove(step_dir / integrity.MANIFEST)  # as written before manifests, without the declaration:
    meta = (step_dir / integrity.ORBAX_METADATA).read_text()
    (step_dir / integrity.ORBAX_METADATA).write_text(meta.replace(integrity.DECLARATION, "other"))
    with pytest.warns(UserWarning, match="no integrity manifest"):
        assert load_run(str(work), model=TinyRNN()).step == 4


def test_flushed_tensorboard_events_are_on_disk_when_the_process_is_killed(tmp_path):
    """A checkpoint is written right after ``MetricWriter.flush()``: every event logged so far must then be
    in the file, also when the process is killed the next instant (a killed run resumes after that
    checkpoint and never writes those events again)."""
    script = (
        "import os, signal, sys, numpy as np\n"
        "from rnnlab.training.metrics import MetricWriter\n"
        "w = MetricWriter(sys.argv[1])\n"
        "for step in range(1, 501):\n"
        "    w.write(step, 0, {'train/loss': 1.0 / step, 'train/hist': np.arange(4.0) * step})\n"
        "w.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert tb_steps(str(tmp_path)) == collections.Counter(
        {(tag, s): 1 for s in range(1, 501) for tag in ("train/loss", "train/hist")}
    )
    (path,) = tbevents.event_files(str(tmp_path / "tb"))
    values = [v for e in tbevents.read_events(path) if e.step == 7 for v in e.summary.value]
    assert [v.simple_value for v in values if v.tag == "train/loss"] == [pytest.approx(1 / 7)]
