"""One real training step for a :class:`~rnnlab.scaling.points.Point`: the adding problem (inputs
``[K, B, T, 2]``), a ``SequenceModel`` with the point's cell, layers and time-loop options, Adam with
global-norm clipping, compiled by the training engine's data-parallel layer as ``rnnlab train`` compiles it.

Shape legend: K seeds, B batch, T time, H hidden size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from rnnlab import config as config_lib
from rnnlab import losses, optim, parallel, train
from rnnlab.models import SequenceModel, count_params
from rnnlab.scaling.points import Point
from rnnlab.tasks import get_task


@dataclasses.dataclass
class Step:
    """A compiled step and what it runs on.

    Attributes:
      run: ``(state, batch) -> (state, metrics)``; the state is donated (feed back the returned one).
      state, batch: placed on the devices as ``run`` expects.
      params: parameters of one seed.
      flops: matmul FLOPs of the forward and backward pass of all K seeds (:func:`matmul_flops`).
      memory: XLA's compiled sizes in bytes per device (``temp``, ``argument``, ``output``); None where the
        program is not lowered ahead of time (pmap).
      compile_s: seconds to lower and compile.
    """

    run: Callable
    state: Any
    batch: Any
    params: int
    flops: float
    memory: dict[str, int] | None
    compile_s: float


def matmul_flops(params_one_seed, tokens: int) -> float:
    """6 N_w FLOPs per token (Kaplan et al. 2020, "Scaling laws for neural language models"): every weight
    matrix applied at every step costs 2 FLOPs per entry forward and 4 backward (input and weight gradients).

    ``N_w`` counts the recurrent stack's matrices (``params['rnn']``, leaves of rank >= 2); the head runs once
    per sequence and biases and gates are element-wise, so they are left out of the floor.
    """
    weights = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params_one_seed["rnn"]) if p.ndim >= 2)
    return 6.0 * weights * tokens


def _model(point: Point, info) -> SequenceModel:
    return SequenceModel(
        cell=point.cell,
        hidden_size=point.hidden,
        num_layers=point.layers,
        head="last",
        num_outputs=info.num_outputs,
        rnn_options=tuple(sorted(point.rnn_options.items())),
    )


def _memory(compiled) -> dict[str, int]:
    stats = compiled.memory_analysis()
    return {
        "temp": int(stats.temp_size_in_bytes),
        "argument": int(stats.argument_size_in_bytes),
        "output": int(stats.output_size_in_bytes),
    }


def build(point: Point, initial_states: dict | None = None) -> Step:
    """Builds, places and compiles ``point``'s training step (nothing is executed).

    ``initial_states``: a dict the caller keeps across points; initial states (on the host) are reused from it
    for points with the same cell, H, layers and K (they depend on nothing else), which saves compiling the
    initialisation again for every T, B and backend.
    """
    task = get_task("adding", length=point.length)
    model = _model(point, task.info)
    config = config_lib.default_config()
    tx = optim.make_optimizer(config.optim, config.train.steps)
    dp = parallel.DataParallel(point.parallel)
    train_fn = train.make_train_step(losses.get_loss(task.info), tx, config.optim, config.train.steps)
    seeds = list(range(point.seeds))
    initial_states = {} if initial_states is None else initial_states
    key = (point.cell, point.hidden, point.layers, point.seeds)
    if key not in initial_states:
        initial_states[key] = jax.device_get(train.init_state(model, tx, task.info, seeds))
    state = initial_states[key].replace(apply_fn=train.ApplyFn(model))
    params = count_params(jax.tree.map(lambda p: p[0], state.params))
    flops = matmul_flops(jax.tree.map(lambda p: p[0], state.params), point.tokens)
    iterators = [task.iterator("train", point.batch, s) for s in seeds]
    batch = dp.put_batch(train._stack_seeds([next(it) for it in iterators]))  # pylint: disable=protected-access
    state = dp.put_state(state)
    run = dp.compile_train(train_fn)
    start = time.perf_counter()
    memory = None
    if hasattr(run, "lower"):  # jit: compile ahead of time and read XLA's memory plan before running
        run = run.lower(state, batch).compile()
        memory = _memory(run)
    return Step(run, state, batch, params, flops, memory, time.perf_counter() - start)
