"""Two processes on loopback (the recipe of rnnlab.training.sharding's docstring, gloo collectives on CPU):
stopped after 4 steps and resumed to 8 they equal an uninterrupted 8-step run, each process resuming its own
data stream; a process whose resume fails takes the other one down in seconds, both saying why."""

import json
import os
import socket
import subprocess
import sys
import time

from rnnlab.training import integrity, watchdog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST_XLA = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"  # 1 device each


def start(workdir, steps):
    """Starts both processes of a run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "rnnlab",
        "train",
        "--config",
        "experiments/adding.py:6",
        "--workdir",
        str(workdir),
        f"--config.train.steps={steps}",
        "--config.train.batch_size=8",
        "--config.model.hidden_size=8",
        "--config.train.checkpoint_every=2",
        "--config.train.log_every=2",
        "--config.train.eval_every=4",
        "--config.train.eval_batches=1",
        "--config.train.eval_batch_size=8",
        "--config.task.params.num_eval=8",
        "--config.diagnostics.every=0",
        "--config.train.progress=false",
    ]
    procs = []
    for pid in range(2):
        env = dict(
            os.environ,
            RNNLAB_COORDINATOR=f"127.0.0.1:{port}",
            RNNLAB_NUM_PROCESSES="2",
            RNNLAB_PROCESS_ID=str(pid),
            JAX_PLATFORMS="cpu",
            XLA_FLAGS=FAST_XLA,
        )
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs


def wait(procs, timeout=240):
    """``[(returncode, stdout, stderr)]`` of both processes."""
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append((p.returncode, out.decode(), err.decode()))
    return outs


def launch(workdir, steps):
    """Runs both processes to the end: their ``[(returncode, stdout, stderr)]`` and the wall time."""
    begin = time.monotonic()
    outs = wait(start(workdir, steps))
    return outs, time.monotonic() - begin


def _data_file(workdir, step):
    return workdir / "checkpoints" / str(step) / "data" / "metadata"


def test_two_processes_stop_and_resume_equal_an_uninterrupted_run(tmp_path):
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    runs = [start(full, 8), start(stopped, 4)]  # at once: they wait on each other's collectives a lot
    for outs in map(wait, runs):
        assert [o[0] for o in outs] == [0, 0], outs[1][2][-3000:]
    data = json.loads(_data_file(stopped, 4).read_text())
    streams = [[s["seed"] for s in process] for process in data["processes"]]
    assert streams == [[0], [1000]]  # every process's stream position is in the checkpoint

    # Process 1 cannot resume (its stream position is forged, as an older rnnlab effectively did): both
    # processes stop within seconds, instead of process 0 waiting for it (measured before: 300 s).
    original = _data_file(stopped, 4).read_text()
    data["processes"][1][0]["seed"] = 7
    _data_file(stopped, 4).write_text(json.dumps(data))
    integrity.write_manifest(str(stopped / "checkpoints" / "4"))
    outs, elapsed = launch(stopped, 8)
    assert outs[1][0] != 0 and "recorded with another seed" in outs[1][2]
    assert outs[0][0] == watchdog.PEER_EXIT_CODE, outs[0][2][-3000:]
    assert "another process of this run failed (process 1: ValueError" in outs[0][2]
    assert "Run the same command again to resume from its last checkpoint (step 4)" in outs[0][2]
    print(f"both processes stopped after {elapsed:.1f} s")

    _data_file(stopped, 4).write_text(original)
    integrity.write_manifest(str(stopped / "checkpoints" / "4"))
    outs, _ = launch(stopped, 8)
    assert [o[0] for o in outs] == [0, 0], outs[1][2][-3000:]
    assert (full / "metrics.jsonl").read_text() == (stopped / "metrics.jsonl").read_text()
    final = [json.loads((d / "final_metrics.json").read_text()) for d in (full, stopped)]
    assert final[0] == final[1]
