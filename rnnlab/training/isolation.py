"""One training run in its own process, so that a run that hangs or crashes cannot take a grid down with it.

The watchdog (``rnnlab.training.watchdog``) ends a process that makes no progress with ``os._exit``: the only
way out of a hang in C++, and fatal to a process that runs many points in a row. ``run_isolated`` therefore
trains each point in a fresh process (``multiprocessing`` spawn: nothing of the parent's JAX state is shared)
and retries a point the watchdog stopped, which resumes from its last checkpoint. A finished run directory is
not started at all.

``run_many`` runs a list of points, up to ``jobs`` at once (each still in its own process; a thread per
running point only waits for it). With ``jobs > 1`` every line a point's process writes to stdout or stderr
reaches the parent's stream whole, prefixed ``[name] `` (a progress bar shows only its last state), so that
the output of points running together stays readable. Parallel points share nothing but the machine: their
results are those of ``jobs=1``. Each of them gets ``XLA_PYTHON_CLIENT_MEM_FRACTION = 0.75 / jobs`` unless the
environment sets it: JAX on a GPU otherwise preallocates 75% of its memory in the first process, and the
others fail to start. Likewise ``RNNLAB_NATIVE_THREADS = cores // jobs`` (at least 1): the compiled LSTM/GRU
kernels synchronise their threads once per time step, and with more threads than cores a member waits for one
that is not running (measured, two processes on 2 cores, LSTM step at (32, 200, 1, 64): 46-48 ms each with two
threads per call, 24 ms with one; alone: 14-16 ms and 17.5 ms).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from rnnlab.fused import native
from rnnlab.training import config as config_lib
from rnnlab.training import watchdog
from rnnlab.training.loop import CHECKPOINTS, FINAL_FILE, NonFiniteError, train_and_evaluate

STATUSES = ("finished", "skipped", "nonfinite", "hung", "failed")
_OUTPUT = threading.Lock()  # one whole line at a time on the parent's streams


@dataclasses.dataclass
class Outcome:
    """How a run ended: ``status`` (one of ``STATUSES``), its final metrics (finished, skipped), a message
    (the error otherwise), ``hangs``: how many times the watchdog stopped it, ``resumed``: whether it started
    from a checkpoint an earlier command left, and ``wall_s``: seconds from start to end, retries included."""

    status: str
    result: dict[str, Any] | None = None
    message: str = ""
    hangs: int = 0
    resumed: bool = False
    wall_s: float = 0.0

    @property
    def summary(self) -> str:
        """One word for a status table: finished, skipped, resumed, retried, nonfinite or failed."""
        if self.status in ("hung", "failed"):
            return "failed"
        if self.status == "finished" and self.hangs:
            return "retried"  # retries resume from a checkpoint too
        if self.status == "finished" and self.resumed:
            return "resumed"
        return self.status


def _child(
    train_fn: Callable, config_json: dict, workdir: str, conn, env: dict[str, str], out=None, err=None
) -> None:
    """Runs in the child process: trains, then sends ``(status, result or message)`` to the parent.

    ``env``: environment variables to set where unset (before JAX starts a backend). ``out``, ``err``: write
    ends of pipes that take the place of the process's stdout and stderr (file descriptors 1 and 2, so that
    what C++ writes goes there too)."""
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if out is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        out.close()
        err.close()
        sys.stdout.reconfigure(line_buffering=True)
    try:
        result = train_fn(config_lib.resolve(config_json), workdir)
    except NonFiniteError as e:
        conn.send(("nonfinite", str(e)))
        return
    except BaseException as e:
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        raise  # the traceback goes to stderr, the exit code says it failed
    conn.send(("finished", result))


def finished_result(config, workdir: str) -> dict[str, Any] | None:
    """The final metrics of a run directory that already trained ``config.train.steps`` steps, else None."""
    try:
        with open(os.path.join(workdir, FINAL_FILE)) as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    return result if result.get("step") == config.train.steps else None


def has_checkpoint(workdir: str) -> bool:
    """Whether ``workdir`` holds a checkpoint to resume from."""
    directory = os.path.join(workdir, CHECKPOINTS)
    return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def _pump(fd: int, prefix: str, stream: str) -> None:
    """Copies the lines read from ``fd`` to ``sys.<stream>``, each prefixed, until EOF. Of a line rewritten
    with carriage returns (a progress bar) only the last state is kept."""
    pending = b""
    with os.fdopen(fd, "rb", buffering=0) as f:
        while chunk := f.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending.rpartition(b"\r")[2]
            for line in lines:
                _emit(prefix, line, stream)
    _emit(prefix, pending, stream)


def _emit(prefix: str, line: bytes, stream: str) -> None:
    text = line.rpartition(b"\r")[2].decode(errors="replace").rstrip()
    if text:
        with _OUTPUT:
            out = getattr(sys, stream)
            out.write(f"{prefix}{text}\n")
            out.flush()


def _attempt(config, workdir: str, train_fn: Callable, prefix: str, env: dict[str, str]) -> Outcome:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    args = [train_fn, config_lib.to_json_dict(config), workdir, send, env]
    pumps, ends = [], []
    if prefix:  # the child's stdout and stderr come back through pipes, line by line
        for stream in ("stdout", "stderr"):
            read_fd, write_fd = os.pipe()
            ends.append(Connection(write_fd, readable=False))
            pumps.append(threading.Thread(target=_pump, args=(read_fd, prefix, stream), daemon=True))
    proc = ctx.Process(target=_child, args=(*args, *ends))
    proc.start()
    for end in (send, *ends):
        end.close()  # the child holds the only write ends: EOF when it exits
    for pump in pumps:
        pump.start()
    try:
        status, payload = receive.recv()
    except EOFError:
        status, payload = None, None
    proc.join()
    for pump in pumps:
        pump.join(timeout=10)  # EOF once the child (and anything it started) has exited
    if status == "finished":
        return Outcome("finished", result=payload)
    if status in ("nonfinite", "failed"):
        return Outcome(status, message=payload)
    if proc.exitcode == watchdog.EXIT_CODE:
        return Outcome("hung", message=f"no progress for train.watchdog_s; stacks in {workdir}/hang_p0.txt")
    return Outcome("failed", message=f"the training process ended with exit code {proc.exitcode}")


def run_isolated(
    config,
    workdir: str,
    *,
    retries: int = 1,
    log: Callable[[str], Any] = print,
    train_fn=train_and_evaluate,
    prefix: str = "",
    env: dict[str, str] | None = None,
) -> Outcome:
    """Trains ``config`` in ``workdir`` in a child process; a run the watchdog stopped is retried (resuming
    from its last checkpoint) up to ``retries`` times.

    Args:
      config: a resolved config.
      workdir: the run directory; a finished one (``finished_result``) is skipped.
      retries: how many times a hung run is started again.
      log: status lines.
      train_fn: ``(config, workdir) -> final metrics``, a module-level function (it is pickled into the
        child); tests inject a hang with it.
      prefix: when given, each line the child writes to stdout / stderr is written by this process, prefixed.
      env: environment variables the child sets where they are unset.
    """
    done = finished_result(config, workdir)
    if done is not None:
        return Outcome("skipped", result=done)
    start, resumed = time.perf_counter(), has_checkpoint(workdir)
    hangs = 0
    while True:
        outcome = _attempt(config, workdir, train_fn, prefix, dict(env or {}))
        if outcome.status != "hung" or hangs + 1 > retries:
            outcome.hangs = hangs + (outcome.status == "hung")
            outcome.resumed, outcome.wall_s = resumed, time.perf_counter() - start
            return outcome
        hangs += 1
        log(f"  stopped by the watchdog (no progress): retrying from its last checkpoint ({hangs}/{retries})")


def run_many(
    points: Sequence[tuple[str, Any, str]],
    *,
    jobs: int = 1,
    log: Callable[[str], Any] = print,
    done: Callable[[int, Outcome, Callable[[str], Any]], Any] = lambda i, outcome, log: None,
    **kwargs,
) -> list[Outcome]:
    """Runs ``points`` (``(name, config, workdir)`` each) with ``run_isolated``, up to ``jobs`` at once.

    Args:
      points: the runs, started in this order.
      jobs: how many run at once; with ``jobs > 1`` the lines of each point (its process's output, and
        ``log`` lines about it) start with ``[name]``.
      log: status lines (called from one thread at a time).
      done: ``done(index, outcome, log)`` as each point ends (``log`` prefixes the point's name if needed).
      **kwargs: ``retries`` and ``train_fn`` of ``run_isolated``.

    Returns:
      one ``Outcome`` per point, in the order of ``points``.
    """

    def locked(message: str) -> None:
        with _OUTPUT:
            log(message)

    def one(i: int) -> Outcome:
        name, config, workdir = points[i]
        if jobs == 1:
            say, prefix = log, ""
            say(f"[{i + 1}/{len(points)}] {name}")
        else:
            prefix = f"[{name}] "

            def say(message: str) -> None:
                locked(prefix + message.strip())

            say(f"started ({i + 1}/{len(points)})")
        outcome = run_isolated(config, workdir, log=say, prefix=prefix, **kwargs)
        done(i, outcome, say)
        return outcome

    if jobs == 1:
        return [one(i) for i in range(len(points))]
    kwargs["env"] = {
        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.75 / jobs:.3g}",  # a share of each GPU
        native.THREADS_ENV: str(max(1, (os.cpu_count() or 1) // jobs)),  # a share of the CPU cores
    }
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, range(len(points))))
