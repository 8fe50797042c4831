"""A thin wrapper around ``orbax.checkpoint.CheckpointManager``.

One checkpoint per saved step under ``workdir/checkpoints/<step>/`` with three items:

- ``state``: the ``TrainState`` (step, params, opt_state, rng, skipped, carry), every leaf with the leading
  seed axis ``[K, ...]``: all K seeds of a run live in one checkpoint (take ``x[k]`` for seed k).
- ``data``: ``{'processes': [[state of each of the K train iterators] of every process]}``, the JSON states
  (next batch) of every process's streams (each process streams its own slice of the batch), gathered with
  ``rnnlab.training.multihost`` because Orbax writes JSON items from the primary process only.
- ``config``: the resolved config as JSON.

The last ``keep`` checkpoints are kept, plus the best one by ``best_metric`` (its mean over seeds) when set.
Orbax writes each step to a temporary directory and renames it when complete, so a process killed mid-save
leaves the previous checkpoint intact. Every step also gets a sha256 manifest (``rnnlab.training.integrity``)
checked before anything is restored: ``restore`` and ``restore_params`` refuse a damaged checkpoint
(``DamagedCheckpointError``, naming the intact ones), ``restore_latest_intact`` (resuming) moves damaged ones
to ``<directory>_damaged/`` with a warning and falls back to the newest intact one.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint._src.checkpoint_managers import preservation_policy as pp

from rnnlab.training import integrity, multihost

ITEMS = ("state", "data", "config")
BEST_MODES = ("min", "max")


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint's files differ from its integrity manifest, or it was never completed."""


class DamagedCheckpointWarning(UserWarning):
    """Resuming skipped a damaged checkpoint."""


class Checkpointer:
    """Save / restore train states with their data position and config.

    Args:
      directory: where the step directories go (created on the first save).
      keep: how many of the latest checkpoints to keep.
      best_metric: a key of the metrics passed to ``save`` (e.g. 'eval/loss'); '' = no best tracking.
      best_mode: one of ``BEST_MODES``.
    """

    def __init__(self, directory: str, keep: int = 2, best_metric: str = "", best_mode: str = "min"):
        self.directory = os.path.abspath(directory)
        self.best_metric = best_metric
        policies = [pp.LatestN(n=keep)]
        best_fn = None
        if best_metric:

            def best_fn(m):
                return float(m[best_metric])

            policies.append(
                pp.BestN(
                    get_metric_fn=best_fn,
                    reverse=(best_mode == "min"),
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = ocp.CheckpointManagerOptions(
            create=False,
            enable_async_checkpointing=False,
            best_fn=best_fn,
            best_mode=best_mode,
            preservation_policy=pp.AnyPreservationPolicy(policies),
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step() if self.best_metric else None

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(
        self,
        step: int,
        state: Any,
        data_state: Any,
        config: Mapping,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Writes step ``step`` (synchronously). ``metrics`` rank the checkpoint for ``best_metric``."""
        if self.best_metric and metrics is not None and self.best_metric not in metrics:
            metrics = None
        os.makedirs(self.directory, exist_ok=True)
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(data_state),
                config=ocp.args.JsonSave(dict(config)),
            ),
            metrics=dict(metrics) if metrics is not None else None,
            force=True,
            custom_metadata={integrity.DECLARATION: integrity.MANIFEST},
        )
        self._manager.wait_until_finished()
        if jax.process_index() == 0:  # Orbax's commit is done: every process's files are in place
            integrity.write_manifest(self.step_dir(step))

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def verify(self, step: int) -> integrity.Verdict:
        """Checks step ``step`` against its integrity manifest (reads every file)."""
        return integrity.verify(self.step_dir(step))

    def _check(self, step: int) -> None:
        """Raises ``DamagedCheckpointError`` for a damaged step; warns for one that cannot be verified."""
        verdict = self.verify(step)
        if not verdict.ok:
            intact = [s for s in self.all_steps() if s != step and self.verify(s).ok]
            hint = (
                f"intact checkpoints of this run: {intact} (choose one with --step N)"
                if intact
                else ("no other checkpoint of this run is intact")
            )
            raise DamagedCheckpointError(
                f"checkpoint {self.step_dir(step)} is damaged: {_problems(verdict)}. It was not used; {hint}."
            )
        if not verdict.verified:
            warnings.warn(
                f"checkpoint {self.step_dir(step)} has no integrity manifest (written by an older rnnlab): "
                "restored without verification",
                stacklevel=3,
            )

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, Any, int]:
        """Restores ``(state, data_state, step)``; ``step=None`` means the latest.

        Args:
          abstract_state: a pytree of ``jax.ShapeDtypeStruct`` (with shardings) like the state, e.g. from
            ``jax.eval_shape``; needed so optax's NamedTuple states come back as NamedTuples.

        Raises:
          DamagedCheckpointError: the checkpoint differs from its integrity manifest (nothing is restored).
          CheckpointError: the checkpoint is unreadable (the message names it and what to do).
          FileNotFoundError: there is no checkpoint.
        """
        step = self._existing(step)
        self._check(step)
        out = self._restore(
            step,
            ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()),
        )
        return out["state"], out["data"], step

    def restore_params(self, abstract_params: Any, step: int | None = None) -> tuple[Any, int]:
        """Restores only the parameters of the saved state (nothing else is read): ``(params, step)``.

        Args:
          abstract_params: ``jax.ShapeDtypeStruct`` leaves like the saved ``state.params`` (with the seed axis
            ``[K, ...]``), e.g. from ``jax.eval_shape`` of the model's init; without a sharding a leaf goes to
            the first local device.
          step: which checkpoint; None = the latest.

        Raises:
          CheckpointError, FileNotFoundError: as ``restore``.
        """
        step = self._existing(step)
        self._check(step)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        item = {"params": abstract_params}
        restore_args = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding or device), item)
        args = ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)
        path = os.path.join(self.directory, str(step), "state")
        with self._readable(step):
            with ocp.PyTreeCheckpointer() as checkpointer:  # the "state" item alone, read partially
                params = checkpointer.restore(path, args=args)["params"]
            jax.block_until_ready(params)
        return params, step

    def restore_latest_intact(self, abstract_state: Any) -> tuple[Any, Any, int] | None:
        """Restores the newest intact checkpoint, as ``restore``; None when no checkpoint is left.

        Damaged checkpoints (``integrity.verify``) newer than it are moved to ``<directory>_damaged/`` (by the
        primary process, after every process has checked them) with a ``DamagedCheckpointWarning`` each, so
        the run continues from an earlier state and saves those steps again.
        """
        damaged = []
        for step in sorted(self.all_steps(), reverse=True):
            verdict = self.verify(step)
            if verdict.ok:
                break
            damaged.append((step, verdict))
        if damaged:
            multihost.barrier(f"checked-{damaged[0][0]}")
            intact = [s for s in self.all_steps() if s < damaged[-1][0]]
            then = f"resuming from step {intact[-1]}" if intact else "training starts again from step 0"
            for step, verdict in damaged:
                moved = self._set_aside(step) if jax.process_index() == 0 else f"{self.directory}_damaged/"
                warnings.warn(
                    f"checkpoint {self.step_dir(step)} is damaged ({_problems(verdict)}); moved to {moved}; "
                    f"{then}",
                    DamagedCheckpointWarning,
                    stacklevel=2,
                )
            multihost.barrier(f"set-aside-{damaged[0][0]}")
            self._manager.reload()
        if self.latest_step() is None:
            return None
        return self.restore(abstract_state)

    def _set_aside(self, step: int) -> str:
        """Moves step ``step``'s directory to ``<directory>_damaged/<step>[-n]``; returns where."""
        parent = self.directory + "_damaged"
        os.makedirs(parent, exist_ok=True)
        dest, n = os.path.join(parent, str(step)), 1
        while os.path.exists(dest):
            dest, n = os.path.join(parent, f"{step}-{n}"), n + 1
        os.replace(self.step_dir(step), dest)
        return dest

    def _existing(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return step

    def _restore(self, step: int, args: ocp.args.Composite) -> Any:
        with self._readable(step):
            out = self._manager.restore(step, args=args)
            jax.block_until_ready(out["state"])
        return out

    @contextlib.contextmanager
    def _readable(self, step: int):
        """Turns any failure to read checkpoint ``step`` into a ``CheckpointError`` saying what to do."""
        try:
            yield
        except Exception as e:  # orbax raises many kinds (ValueError, FileNotFoundError, tensorstore errors)
            raise CheckpointError(
                f"cannot read the checkpoint {os.path.join(self.directory, str(step))} "
                f"({type(e).__name__}: {str(e)[:300]}). It is corrupt, incomplete or from an incompatible "
                "config. Delete that step directory to resume from an earlier checkpoint "
                f"({self._others(step)}), or delete {self.directory} to start over."
            ) from e

    def _others(self, step: int) -> str:
        others = [s for s in self.all_steps() if s != step]
        return f"others here: {others}" if others else "there is no other"

    def close(self) -> None:
        self._manager.close()


def _problems(verdict: integrity.Verdict, most: int = 3) -> str:
    shown = "; ".join(verdict.problems[:most])
    more = len(verdict.problems) - most
    return shown + (f"; and {more} more" if more > 0 else "")


def data_state(step: int, iterator_states: Sequence[Any]) -> dict:
    """The ``data`` item of step ``step``: this process's iterator states with every other process's."""
    return {"processes": multihost.allgather_json(f"iterators-{step}", list(iterator_states))}


def iterator_states(data: Mapping, step_dir: str) -> list[Any]:
    """This process's iterator states from a restored ``data`` item (``data_state``).

    Raises:
      CheckpointError: the checkpoint was written by another number of processes (each streams its own
        slice of the batch, so the run can only continue with as many), or by an rnnlab that saved the
        primary process's streams only.
    """
    n, me = jax.process_count(), jax.process_index()
    if "processes" not in data:  # written before every process's streams were saved
        if n == 1:
            return data["iterators"]
        raise CheckpointError(
            f"{step_dir} holds the data position of process 0 only (saved by an older rnnlab): it cannot "
            f"resume {n} processes; resume it with one process, or start over in a new --workdir"
        )
    if len(data["processes"]) != n:
        raise CheckpointError(
            f"{step_dir} was saved by {len(data['processes'])} process(es) and this run has {n}: resume with "
            f"RNNLAB_NUM_PROCESSES={len(data['processes'])} (each process streams its own slice of the batch)"
        )
    return data["processes"][me]
