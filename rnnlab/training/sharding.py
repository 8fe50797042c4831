"""Data parallelism over devices behind one interface: ``jit`` + ``NamedSharding`` on a 1-D ``('data',)``
mesh (default), ``pmap``, or one device; and multi-process start-up.

The pure steps of ``rnnlab.training.steps`` never see a device axis: the state has a leading seed axis
``[K, ...]`` (replicated over devices) and a train batch ``[K, B, ...]`` is split over devices along B (eval
batches ``[B, ...]``). Under ``jit`` the arrays are global, so the steps compute global means as they are.
Under ``pmap`` each device sees its slice: ``DataParallel`` runs the gradient half of the train step per
device, combines the devices' gradients weighted by their loss counts and sums their statistics (``psum``),
then runs the update half, so every mode computes the same global mean (losses are (sum, count) pairs, see
``rnnlab.training.losses``).

``parallel='seeds'`` shards the K seeds instead of the batch: a 1-D ``('seed',)`` mesh over all devices, the
state and train batch split along K (each device trains K/n whole models on their whole batches; K must be a
multiple of the device count), eval batches replicated. The seeds never interact, so there is nothing to
communicate: it scales a K-seed sweep with the devices (one process).

Several processes (multi-host, or several processes on one machine)
--------------------------------------------------------------------
Set these variables in every process, then run the usual command; ``initialize_distributed`` (called by
``train_and_evaluate``) calls ``jax.distributed.initialize``::

    RNNLAB_COORDINATOR=127.0.0.1:12355 RNNLAB_NUM_PROCESSES=2 RNNLAB_PROCESS_ID=0 \\
        python -m rnnlab train --config experiments/adding.py --workdir /tmp/run &
    RNNLAB_COORDINATOR=127.0.0.1:12355 RNNLAB_NUM_PROCESSES=2 RNNLAB_PROCESS_ID=1 \\
        python -m rnnlab train --config experiments/adding.py --workdir /tmp/run

On CPU the cross-process collectives use gloo (set here). Each process loads its own slice of every
batch: the iterators of process p are seeded with ``seed + 1000 * p``, and
``jax.make_array_from_process_local_data`` assembles the global batch; only process 0 writes metrics, and
checkpoints hold every process's iterator positions (resume with as many processes). ``parallel='sharded'``
is the mode that spans processes; ``pmap`` uses local devices only.

When one process fails, the others stop within seconds with a message naming it
(``rnnlab.training.multihost``, ``rnnlab.training.watchdog``); a process that dies without a word is declared
dead by the coordination service after ``HEARTBEAT_TIMEOUT_S``, and nobody waits in the shutdown barrier
longer than ``SHUTDOWN_TIMEOUT_S`` (JAX's defaults: 100 s and 300 s). JAX's preemption service is off: it
catches SIGTERM, so a stuck process would ignore ``kill``.
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

from rnnlab.scan import dispatch

MODES = ("sharded", "pmap", "none", "seeds")
AXIS = "data"
SEED_AXIS = "seed"
HEARTBEAT_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 60


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
    jax.config.update("jax_enable_preemption_service", False)
    jax.distributed.initialize(
        coordinator_address=os.environ["RNNLAB_COORDINATOR"],
        num_processes=n,
        process_id=int(os.environ["RNNLAB_PROCESS_ID"]),
        heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
        shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S,
    )
    return True


def num_data_devices(mode: str) -> int:
    """How many devices share the batch: all devices (sharded), local devices (pmap), or 1 (none; seeds,
    where each seed's batch stays whole on its device)."""
    if mode == "sharded":
        return jax.device_count()
    if mode == "pmap":
        return jax.local_device_count()
    return 1


def _split_leading(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """[..., B, ...] -> [n, ..., B/n, ...] (the device axis first, as pmap wants)."""
    shape = x.shape[:axis] + (n, x.shape[axis] // n) + x.shape[axis + 1 :]
    return np.moveaxis(np.reshape(x, shape), axis, 0)


def seed_loop(choice: str, mode: str) -> str:
    """How a train step runs its K seeds (``rnnlab.training.steps.SEED_LOOPS``): ``choice`` unless it is
    ``'auto'``; then ``'vmap'`` for ``parallel='seeds'`` (the seed axis is what is sharded) and otherwise the
    platform's entry in ``rnnlab.scan.dispatch.AUTO``."""
    if choice != "auto":
        return choice
    if mode == "seeds":
        return "vmap"
    return "vmap" if dispatch.AUTO[dispatch.default_platform()].seeds_vmap else "map"


class DataParallel:
    """Places states and batches and compiles the steps of ``rnnlab.training.steps`` for one of ``MODES``."""

    def __init__(self, mode: str = "sharded"):
        if mode not in MODES:
            raise ValueError(f"unknown parallel mode {mode!r}; valid: {', '.join(MODES)}")
        self.mode = mode
        self.size = num_data_devices(mode)
        self.mesh = None
        if mode == "sharded":
            self.mesh = jax.make_mesh((self.size,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))
            self.replicated = NamedSharding(self.mesh, P())
        elif mode == "seeds":
            if jax.process_count() > 1:
                raise ValueError(
                    "parallel='seeds' runs in one process; use parallel='sharded' across processes"
                )
            auto = (jax.sharding.AxisType.Auto,)
            self.mesh = jax.make_mesh((jax.device_count(),), (SEED_AXIS,), axis_types=auto)
            self.replicated = NamedSharding(self.mesh, P())
        else:
            self.replicated = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    # --- placement -------------------------------------------------------------------------------------

    def put_state(self, state: Any) -> Any:
        """Canonical state (one copy) -> the layout the compiled step expects."""
        if self.mode == "pmap":
            return _pmap_replicate(state, self.size)
        if self.mode == "seeds":
            return jax.device_put(state, self._split_seeds(state))
        return jax.device_put(state, self.replicated)

    def get_state(self, placed: Any) -> Any:
        """The inverse of ``put_state``: one copy of the state (what checkpoints store)."""
        if self.mode == "pmap":
            return _first(placed)
        return placed

    def put_batch(self, batch: dict[str, np.ndarray], *, seed_axis: bool = True) -> Any:
        """Host batch (leaves ``[K, B, ...]``, or ``[B, ...]`` without ``seed_axis``) -> device arrays."""
        axis = 1 if seed_axis else 0
        if self.mode == "pmap":
            return jax.tree.map(lambda x: _split_leading(np.asarray(x), self.size, axis), batch)
        if self.mode == "none":
            return jax.device_put(batch, self.replicated)
        if self.mode == "seeds":
            return jax.device_put(batch, self._split_seeds(batch) if seed_axis else self.replicated)
        spec = P(None, AXIS) if seed_axis else P(AXIS)
        sharding = NamedSharding(self.mesh, spec)
        if jax.process_count() > 1:
            return jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch
            )
        return jax.device_put(batch, sharding)

    def _split_seeds(self, tree: Any) -> NamedSharding:
        """parallel='seeds': the sharding of leaves ``[K, ...]`` split along K (checked to divide)."""
        n = self.mesh.size
        for k in {np.shape(x)[0] for x in jax.tree.leaves(tree)}:
            if k % n:
                raise ValueError(
                    f"num_seeds={k} is not divisible by the {n} devices of parallel='seeds': use a multiple "
                    f"of {n} seeds, or parallel='sharded'"
                )
        return NamedSharding(self.mesh, P(SEED_AXIS))

    # --- compilation -----------------------------------------------------------------------------------

    def compile_train(self, step) -> Callable:
        """A ``steps.TrainStep`` -> ``(state, batch) -> (state, metrics)`` compiled, the state donated."""
        if self.mode == "pmap":
            per_device = jax.pmap(
                lambda s, b: step.update(s, _combine(step.gradients(s, b))), axis_name=AXIS, donate_argnums=0
            )

            def run(state, batch):
                state, metrics = per_device(state, batch)
                return state, _first(metrics)

            return run
        kwargs = {"out_shardings": self.replicated} if self.mode == "sharded" else {}
        train = self._traced(lambda s, b: step.update(s, step.gradients(s, b)))
        return jax.jit(train, donate_argnums=0, **kwargs)

    def compile_eval(self, step) -> Callable:
        """A ``steps.EvalStep`` -> ``(params, carry, batch) -> (sums, carry)`` compiled (sums: one copy)."""
        if self.mode == "pmap":

            def summed(params, carry, batch):
                sums, carry = step(params, carry, batch)
                return jax.lax.psum(sums, AXIS), carry

            per_device = jax.pmap(summed, axis_name=AXIS)

            def run(params, carry, batch):
                sums, carry = per_device(params, carry, batch)
                return _first(sums), carry

            return run
        kwargs = {"out_shardings": self.replicated} if self.mode == "sharded" else {}
        return jax.jit(self._traced(step), **kwargs)

    def _traced(self, fn: Callable) -> Callable:
        """``fn`` traced under ``dispatch.partitioned_over_devices`` where XLA partitions it over several
        devices (sharded and seeds modes): the time loop then avoids kernels XLA cannot split."""
        if self.mesh is None or self.mesh.size == 1:
            return fn

        def traced(*args):
            with dispatch.partitioned_over_devices():
                return fn(*args)

        return traced


def _first(tree: Any) -> Any:
    """Values identical on every device (pmap outputs ``[n, ...]``) -> one copy."""
    return jax.tree.map(lambda x: x[0], tree)


def _combine(g):
    """Inside ``pmap``: per-device ``steps.Gradients`` (gradients of each device's mean loss, ``[K, ...]``)
    -> those of the global mean, each device weighted by its share of the loss count; statistics summed."""
    count = g.stats["loss"][1]  # [K]
    weight = count / jnp.maximum(jax.lax.psum(count, AXIS), 1e-30)
    grads = jax.tree.map(lambda x: x * weight.reshape((-1,) + (1,) * (x.ndim - 1)), g.grads)
    return g._replace(grads=jax.lax.psum(grads, AXIS), stats=jax.lax.psum(g.stats, AXIS))


def _pmap_replicate(tree: Any, n: int) -> Any:
    """One copy -> ``[n, ...]`` copies, one per local device (``device_put_replicated`` is gone in 0.10)."""
    mesh = jax.make_mesh(
        (n,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.local_devices()[:n]
    )
    sharding = NamedSharding(mesh, P(AXIS))
    return jax.tree.map(lambda x: jax.device_put(jnp.broadcast_to(x, (n,) + jnp.shape(x)), sharding), tree)
