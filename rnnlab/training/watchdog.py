"""The watchdog: a run that makes no progress stops loudly, with every thread's stack, instead of hanging.

The loop announces each activity (``doing('train step', step)``, 'evaluation', 'checkpoint', ...); each call
also marks progress. A daemon thread checks every ``poll_s``: when the current activity has run longer than
its limit (``train.watchdog_s``; ``FIRST_FACTOR`` times that for the first activity of each kind, which
compiles), it writes every thread's Python stack (``faulthandler``) to ``workdir/hang_p<process>.txt``,
prints what hung and how to resume (the same command resumes from the last checkpoint), tells the other
processes (``multihost.publish_failure``) and exits with ``EXIT_CODE``; ``rnnlab experiment`` retries such a
run once. The train step is dispatched asynchronously, so a hung computation shows up where the loop next
waits for a result (logging, evaluation, checkpointing), at the latest ``train.log_every`` steps later.

Two safety nets: in a run of several processes the thread also stops this process when another one has
published a failure (instead of letting it wait in a collective for a peer that is gone); and the thread
re-arms ``faulthandler.dump_traceback_later`` (C code, no GIL needed) ``BACKSTOP_S`` past the deadline, so
even a hang that holds the GIL and starves this thread ends with a stack dump (to stderr) and exit code 1.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

import jax

from rnnlab.training import multihost

EXIT_CODE = 75  # EX_TEMPFAIL: "try again later", which resumes from the last checkpoint
PEER_EXIT_CODE = 76  # another process of the run failed
FIRST_FACTOR = 3.0  # the first activity of each kind compiles its program
BACKSTOP_S = 60.0


class Watchdog:
    """Stops the process when the current activity runs past its limit (see the module docstring); watches
    while entered (``with Watchdog(...) as dog:``).

    Args:
      workdir: where the stack dump goes.
      timeout_s: the limit per activity; 0 = no limit (the thread then runs only to watch other processes).
      last_checkpoint: ``() -> int | None``, the step the run would resume from (for the message).
      poll_s: how often the thread looks; default 1 s with several processes, else ``min(timeout_s / 20, 5)``.
    """

    def __init__(self, workdir: str, timeout_s: float, last_checkpoint=lambda: None, poll_s: float = 0.0):
        self.workdir, self.timeout_s = workdir, float(timeout_s)
        self._last_checkpoint = last_checkpoint
        self._poll_s = poll_s
        self._seen: set[str] = set()
        self._activity, self._step, self._since = "start-up", 0, time.monotonic()
        self._stop = threading.Event()
        self._thread = None

    def doing(self, activity: str, step: int) -> None:
        """Progress: the previous activity finished and ``activity`` (a kind, e.g. 'evaluation') starts."""
        self._seen.add(self._activity)
        self._activity, self._step, self._since = activity, step, time.monotonic()

    def limit(self) -> float:
        return self.timeout_s * (1.0 if self._activity in self._seen else FIRST_FACTOR)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            faulthandler.cancel_dump_traceback_later()

    def __enter__(self):
        """Starts the watching thread (when there is a limit or other processes to watch)."""
        self._since = time.monotonic()
        if not self._poll_s:  # other processes' failures within a second; else 1/20 of the limit
            self._poll_s = 1.0 if multihost.multiprocess() else min(self.timeout_s / 20, 5.0)
        if self.timeout_s > 0 or multihost.multiprocess():
            self._thread = threading.Thread(target=self._watch, name="rnnlab-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            failed = multihost.peer_failures()
            if failed:
                self._stop_for_peer(failed)
            if self.timeout_s <= 0:
                continue
            elapsed = time.monotonic() - self._since
            if elapsed > self.limit():
                self._fire(elapsed)
            self._arm_backstop(self.limit() - elapsed + BACKSTOP_S)

    @staticmethod
    def _arm_backstop(seconds: float) -> None:
        """faulthandler's timer (one per process: a caller's own is replaced while a run is watched), on the
        real stderr: ``sys.stderr`` may be a stream without a file descriptor (pytest's capsys, notebooks)."""
        if sys.__stderr__ is None:
            return
        try:
            faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
        except (OSError, ValueError, AttributeError):  # no usable file descriptor: no backstop
            pass

    def _resume_hint(self) -> str:
        step = self._last_checkpoint()
        where = f"from its last checkpoint (step {step})" if step else "from the start (no checkpoint yet)"
        return f"Run the same command again to resume {where}."

    def _fire(self, elapsed: float) -> None:
        path = os.path.join(self.workdir, f"hang_p{jax.process_index()}.txt")
        what = f"{self._activity} (step {self._step})"
        message = (
            f"rnnlab watchdog: no progress for {elapsed:.0f} s while running {what}; the limit is "
            f"{self.limit():.0f} s (train.watchdog_s={self.timeout_s:g}"
            + (
                f", x{FIRST_FACTOR:g} for the first {self._activity}"
                if self._activity not in self._seen
                else ""
            )
            + f"). Every thread's stack is in {path}. {self._resume_hint()}"
        )
        try:
            os.makedirs(self.workdir, exist_ok=True)
            with open(path, "w") as f:
                f.write(message + "\n\n")
                f.flush()
                faulthandler.dump_traceback(file=f, all_threads=True)
        except OSError as e:
            message += f" (could not write the stacks: {e})"
        self._exit(message, EXIT_CODE, f"process {jax.process_index()} hung in {what}")

    def _stop_for_peer(self, failed: dict[int, str]) -> None:
        peers = "; ".join(f"process {p}: {m}" for p, m in sorted(failed.items()))
        message = (
            f"rnnlab: another process of this run failed ({peers}); stopping process {jax.process_index()} "
            f"too. {self._resume_hint()}"
        )
        self._exit(message, PEER_EXIT_CODE, None)

    def _exit(self, message: str, code: int, publish: str | None) -> None:
        print(message, file=sys.stderr, flush=True)
        if publish:
            multihost.publish_failure(publish)
        multihost.shutdown()  # lets the others leave JAX's shutdown barrier instead of waiting for us
        sys.stdout.flush()
        os._exit(code)  # the main thread may be stuck in C++: nothing else would end the process
