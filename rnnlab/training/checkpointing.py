"""A thin wrapper around ``orbax.checkpoint.CheckpointManager``.

One checkpoint per saved step under ``workdir/checkpoints/<step>/`` with three items:

- ``state``: the ``TrainState`` (step, params, opt_state, rng, skipped, carry), every leaf with the leading
  seed axis ``[K, ...]``: all K seeds of a run live in one checkpoint (take ``x[k]`` for seed k).
- ``data``: the JSON states of the K train iterators (the next batch of each seed's stream).
- ``config``: the resolved config as JSON.

The last ``keep`` checkpoints are kept, plus the best one by ``best_metric`` (its mean over seeds) when set.
Orbax writes each step to a temporary directory and renames it when complete, so a process killed mid-save
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint._src.checkpoint_managers import preservation_policy as pp

ITEMS = ("state", "data", "config")
BEST_MODES = ("min", "max")


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read."""


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
        )
        self._manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, Any, int]:
        """Restores ``(state, data_state, step)``; ``step=None`` means the latest.

        Args:
          abstract_state: a pytree of ``jax.ShapeDtypeStruct`` (with shardings) like the state, e.g. from
            ``jax.eval_shape``; needed so optax's NamedTuple states come back as NamedTuples.

        Raises:
          CheckpointError: the checkpoint is unreadable (the message names it and what to do).
          FileNotFoundError: there is no checkpoint.
        """
        step = self._existing(step)
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
