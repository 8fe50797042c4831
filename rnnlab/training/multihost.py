"""Coordination between the processes of one run (``jax.distributed``), every wait with a deadline.

Collectives inside compiled steps wait forever for a process that has died; what the processes exchange
outside them goes through the key-value store and barriers of JAX's coordination service instead, which take
timeouts: a missing process becomes an error that names it, never a silent wait. Measured before this module
(issue 9): process 1 failed to resume while process 0 waited in the distributed shutdown barrier until it
was killed (300 s, JAX's default shutdown timeout).

* ``allgather_json``: every process's JSON value (the train iterators' positions for a checkpoint).
* ``barrier``: all processes reach a point (moving damaged checkpoints aside on a shared filesystem).
* ``publishing_failures`` (a decorator), ``publish_failure`` / ``peer_failures``: a process that fails says
  so; the others' watchdogs (``rnnlab.training.watchdog``) read it and stop instead of waiting in a
  collective. Measured with the 2-process loopback run: a process whose resume failed took the other one down
  in seconds, both with a message naming the failure.

With one process every function returns at once.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import jax
from jax._src import distributed as _distributed  # the coordination client (Orbax reads it the same way)

TIMEOUT_S = 300.0  # for exchanges outside compiled steps: all processes arrive within seconds when healthy
_PREFIX = "rnnlab"


def _client():
    return _distributed.global_state.client


def multiprocess() -> bool:
    return _client() is not None and jax.process_count() > 1


def barrier(name: str, timeout_s: float = TIMEOUT_S) -> None:
    """Waits until every process has called ``barrier(name)``; ``name`` must be unique within the run.

    Raises:
      RuntimeError: a process did not arrive within ``timeout_s`` (it failed or hangs).
    """
    if not multiprocess():
        return
    try:
        _client().wait_at_barrier(f"{_PREFIX}/{name}", int(timeout_s * 1000))
    except Exception as e:  # jaxlib raises XlaRuntimeError (DEADLINE_EXCEEDED, or a peer's failure)
        raise RuntimeError(
            f"process {jax.process_index()}: not every process reached '{name}' within {timeout_s:.0f} s "
            f"({type(e).__name__}: {str(e)[:200]})"
        ) from e


def allgather_json(name: str, value: Any, timeout_s: float = TIMEOUT_S) -> list[Any]:
    """``[value of process 0, value of process 1, ...]``; ``name`` must be unique within the run.

    Raises:
      RuntimeError: a process did not publish its value within ``timeout_s``.
    """
    if not multiprocess():
        return [value]
    client, me = _client(), jax.process_index()
    client.key_value_set(f"{_PREFIX}/{name}/{me}", json.dumps(value))
    out = []
    for p in range(jax.process_count()):
        try:
            out.append(
                json.loads(client.blocking_key_value_get(f"{_PREFIX}/{name}/{p}", int(timeout_s * 1000)))
            )
        except Exception as e:  # noqa: PERF203  (jaxlib's XlaRuntimeError on timeout)
            raise RuntimeError(
                f"process {me}: process {p} did not publish '{name}' within {timeout_s:.0f} s "
                f"({type(e).__name__}: {str(e)[:200]})"
            ) from e
    return out


def publish_failure(message: str) -> None:
    """Tells the other processes that this one stops (best effort: the store may be gone already)."""
    if not multiprocess():
        return
    try:
        _client().key_value_set(f"{_PREFIX}/failure/{jax.process_index()}", message, allow_overwrite=True)
    except Exception:  # noqa: BLE001, S110  (the coordinator itself may be the process that died)
        pass


def publishing_failures(fn):
    """Decorator: an exception escaping ``fn`` is published to the other processes before it propagates."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException as e:
            if multiprocess():
                what = f"{type(e).__name__}: {str(e)[:500]}"
                publish_failure(what)
                print(
                    f"rnnlab: process {jax.process_index()} failed ({what}); the other processes of this run "
                    "stop too. Run the same command again in every process to resume from the last "
                    "checkpoint.",
                    file=sys.stderr,
                    flush=True,
                )
            raise

    return wrapper


def peer_failures() -> dict[int, str]:
    """``{process: message}`` of the other processes that published a failure."""
    if not multiprocess():
        return {}
    try:
        entries = _client().key_value_dir_get(f"{_PREFIX}/failure/")
    except Exception as e:  # noqa: BLE001  (the coordinator is unreachable: that is a failure too)
        return {0: f"the coordination service is unreachable ({type(e).__name__}: {str(e)[:200]})"}
    me = jax.process_index()
    out = {int(key.rsplit("/", 1)[1]): value for key, value in entries}
    out.pop(me, None)
    return out


def shutdown() -> None:
    """Leaves the distributed system (JAX's shutdown barrier, bounded by its shutdown timeout); errors are
    ignored because the caller is already stopping."""
    if not multiprocess():
        return
    try:
        jax.distributed.shutdown()
    except Exception:  # noqa: BLE001, S110
        pass
