"""One training run in its own process, so that a run that hangs or crashes cannot take a grid down with it.

The watchdog (``rnnlab.training.watchdog``) ends a process that makes no progress with ``os._exit``: the only
way out of a hang in C++, and fatal to a process that runs many points in a row. ``run_isolated`` therefore
trains each point in a fresh process (``multiprocessing`` spawn: nothing of the parent's JAX state is shared)
and retries a point the watchdog stopped, which resumes from its last checkpoint. A finished run directory is
not started at all.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from rnnlab.training import config as config_lib
from rnnlab.training import watchdog
from rnnlab.training.loop import FINAL_FILE, NonFiniteError, train_and_evaluate

STATUSES = ("finished", "skipped", "nonfinite", "hung", "failed")


@dataclasses.dataclass
class Outcome:
    """How a run ended: ``status`` (one of ``STATUSES``), its final metrics (finished, skipped), a message
    (the error otherwise), and ``hangs``: how many times the watchdog stopped it."""

    status: str
    result: dict[str, Any] | None = None
    message: str = ""
    hangs: int = 0


def _child(train_fn: Callable, config_json: dict, workdir: str, conn) -> None:
    """Runs in the child process: trains, then sends ``(status, result or message)`` to the parent."""
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


def _attempt(config, workdir: str, train_fn: Callable) -> Outcome:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(train_fn, config_lib.to_json_dict(config), workdir, send))
    proc.start()
    send.close()  # the child holds the only write end: EOF when it exits without a word
    try:
        status, payload = receive.recv()
    except EOFError:
        status, payload = None, None
    proc.join()
    if status == "finished":
        return Outcome("finished", result=payload)
    if status in ("nonfinite", "failed"):
        return Outcome(status, message=payload)
    if proc.exitcode == watchdog.EXIT_CODE:
        return Outcome("hung", message=f"no progress for train.watchdog_s; stacks in {workdir}/hang_p0.txt")
    return Outcome("failed", message=f"the training process ended with exit code {proc.exitcode}")


def run_isolated(
    config, workdir: str, *, retries: int = 1, log: Callable[[str], Any] = print, train_fn=train_and_evaluate
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
    """
    done = finished_result(config, workdir)
    if done is not None:
        return Outcome("skipped", result=done)
    hangs = 0
    while True:
        outcome = _attempt(config, workdir, train_fn)
        if outcome.status != "hung":
            outcome.hangs = hangs
            return outcome
        hangs += 1
        if hangs > retries:
            outcome.hangs = hangs
            return outcome
        log(f"  stopped by the watchdog (no progress): retrying from its last checkpoint ({hangs}/{retries})")
