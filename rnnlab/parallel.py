"""Data parallelism over devices: ``jit`` + ``NamedSharding`` on a 1-D ``('data',)`` mesh (default), a
``pmap`` path, and multi-process start-up.

The train step sees a state with a leading seed axis ``[K, ...]`` (replicated over devices) and a batch
``[K, B, ...]`` split over devices along B (eval batches ``[B, ...]``). Losses are (sum, count) pairs, so
every path computes the same global mean (see ``rnnlab.losses``).

Several processes (multi-host, or several processes on one machine)
--------------------------------------------------------------------
Set these variables in every process, then run the usual command; ``initialize_distributed`` (called by
``train_and_evaluate``) calls ``jax.distributed.initialize``::

    RNNLAB_COORDINATOR=127.0.0.1:12355 RNNLAB_NUM_PROCESSES=2 RNNLAB_PROCESS_ID=0 \\
        python -m rnnlab train --config experiments/adding.py --workdir /tmp/run &
    RNNLAB_COORDINATOR=127.0.0.1:12355 RNNLAB_NUM_PROCESSES=2 RNNLAB_PROCESS_ID=1 \\
        python -m rnnlab train --config experiments/adding.py --workdir /tmp/run

On CPU the cross-process collectives use gloo (set here). Each process loads its own slice of every
batch: the iterators of process p are seeded with ``seed + 1000 * p``, and ``jax.make_array_from_process_local_data``
assembles the global batch; only process 0 writes metrics. ``parallel='sharded'`` is the mode that spans
processes; ``pmap`` uses local devices only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

MODES = ("sharded", "pmap", "none")
AXIS = "data"


def initialize_distributed() -> bool:
    """Calls ``jax.distributed.initialize`` when ``RNNLAB_NUM_PROCESSES`` > 1 (see the module docstring).

    Returns:
      Whether several processes are running.
    """
    n = int(os.environ.get("RNNLAB_NUM_PROCESSES", "1"))
    if n <= 1:
        return False
    if jax.distributed.is_initialized():
        return True
    # Only the CPU client reads this; it must be set before the backend starts (so no jax.devices() here).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=os.environ["RNNLAB_COORDINATOR"],
        num_processes=n,
        process_id=int(os.environ["RNNLAB_PROCESS_ID"]),
    )
    return True


def num_data_devices(mode: str) -> int:
    """How many devices share the batch: all devices (sharded), local devices (pmap), or 1."""
    if mode == "sharded":
        return jax.device_count()
    if mode == "pmap":
        return jax.local_device_count()
    return 1


def check_batch_size(batch_size: int, num_devices: int, what: str = "train.batch_size") -> None:
    """Raises a ``ValueError`` saying what to change if ``batch_size`` does not split over the devices."""
    if batch_size % num_devices:
        raise ValueError(
            f"{what}={batch_size} is not divisible by the {num_devices} data-parallel devices: use a "
            f"multiple of {num_devices} (e.g. {num_devices * max(1, batch_size // num_devices)}), "
            "or parallel=none"
        )


def _split_leading(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """[..., B, ...] -> [n, ..., B/n, ...] (the device axis first, as pmap wants)."""
    shape = x.shape[:axis] + (n, x.shape[axis] // n) + x.shape[axis + 1 :]
    return np.moveaxis(np.reshape(x, shape), axis, 0)


class DataParallel:
    """Places states and batches and compiles steps for one of ``MODES``.

    ``train_fn(state, batch, axis_name)`` and ``eval_fn(params, batch, axis_name)`` are pure functions; under
    ``pmap`` they get ``axis_name='data'`` and must ``psum`` their sums and gradients; otherwise ``None``.
    """

    def __init__(self, mode: str = "sharded"):
        if mode not in MODES:
            raise ValueError(f"unknown parallel mode {mode!r}; valid: {', '.join(MODES)}")
        self.mode = mode
        self.size = num_data_devices(mode)
        self.mesh = None
        if mode == "sharded":
            self.mesh = jax.make_mesh((self.size,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))
            self.replicated = NamedSharding(self.mesh, P())
        else:
            self.replicated = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    # --- placement -------------------------------------------------------------------------------------

    def put_state(self, state: Any) -> Any:
        """Canonical state (one copy) -> the layout the compiled step expects."""
        if self.mode == "pmap":
            return _pmap_replicate(state, self.size)
        return jax.device_put(state, self.replicated)

    def get_state(self, placed: Any) -> Any:
        """The inverse of ``put_state``: one copy of the state (what checkpoints store)."""
        if self.mode == "pmap":
            return jax.tree.map(lambda x: x[0], placed)
        return placed

    def put_batch(self, batch: dict[str, np.ndarray], *, seed_axis: bool = True) -> Any:
        """Host batch (leaves ``[K, B, ...]``, or ``[B, ...]`` without ``seed_axis``) -> device arrays."""
        axis = 1 if seed_axis else 0
        if self.mode == "pmap":
            return jax.tree.map(lambda x: _split_leading(np.asarray(x), self.size, axis), batch)
        if self.mode == "none":
            return jax.device_put(batch, self.replicated)
        spec = P(None, AXIS) if seed_axis else P(AXIS)
        sharding = NamedSharding(self.mesh, spec)
        if jax.process_count() > 1:
            return jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch
            )
        return jax.device_put(batch, sharding)

    def first(self, tree: Any) -> Any:
        """Outputs of a compiled step that are identical on every device -> one copy."""
        if self.mode == "pmap":
            return jax.tree.map(lambda x: x[0], tree)
        return tree

    # --- compilation -----------------------------------------------------------------------------------

    def compile_train(self, train_fn: Callable) -> Callable:
        """``(state, batch) -> (state, metrics)``, state donated."""
        if self.mode == "pmap":
            step = jax.pmap(lambda s, b: train_fn(s, b, AXIS), axis_name=AXIS, donate_argnums=0)

            def run(s, b):
                state, metrics = step(s, b)
                return state, self.first(metrics)

            return run
        kwargs = {}
        if self.mode == "sharded":
            kwargs = {"out_shardings": self.replicated}
        return jax.jit(lambda s, b: train_fn(s, b, None), donate_argnums=0, **kwargs)

    def compile_eval(self, eval_fn: Callable) -> Callable:
        """``(params, batch) -> sums`` (one copy)."""
        if self.mode == "pmap":
            step = jax.pmap(lambda p, b: eval_fn(p, b, AXIS), axis_name=AXIS)
            return lambda p, b: self.first(step(p, b))
        kwargs = {}
        if self.mode == "sharded":
            kwargs = {"out_shardings": self.replicated}
        return jax.jit(lambda p, b: eval_fn(p, b, None), **kwargs)


def _pmap_replicate(tree: Any, n: int) -> Any:
    """One copy -> ``[n, ...]`` copies, one per local device (``device_put_replicated`` is gone in 0.10)."""
    mesh = jax.make_mesh(
        (n,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.local_devices()[:n]
    )
    sharding = NamedSharding(mesh, P(AXIS))
    return jax.tree.map(lambda x: jax.device_put(jnp.broadcast_to(x, (n,) + jnp.shape(x)), sharding), tree)


def psum_if(tree: Any, axis_name: str | None) -> Any:
    """``lax.psum`` over ``axis_name``, or the identity when there is none."""
    return tree if axis_name is None else jax.lax.psum(tree, axis_name)
