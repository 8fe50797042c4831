"""One real training step for a :class:`~rnnlab.scaling.points.Point`: the config ``rnnlab train`` would run
(the adding problem, inputs ``[K, B, T, 2]``; a ``SequenceModel`` with the point's cell, layers and
``model.rnn`` loop options; Adam with global-norm clipping), built and compiled by the training package
exactly as its loop does.

Shape legend: K seeds, B batch, T time, H hidden size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from rnnlab.models import count_params
from rnnlab.scaling.points import Point
from rnnlab.training import builders, losses, sharding
from rnnlab.training import config as config_lib
from rnnlab.training.loop import stack_seeds
from rnnlab.training.state import example_args, make_init, seed_keys
from rnnlab.training.steps import make_train_step


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


def config_of(point: Point):
    """The training config of ``point`` (validated: an impossible point fails with the config's message)."""
    c = config_lib.default_config()
    c.num_seeds, c.parallel = point.seeds, point.parallel
    c.model.cell, c.model.hidden_size, c.model.num_layers = point.cell, point.hidden, point.layers
    for key, value in point.rnn_options.items():
        setattr(c.model.rnn, key, value)
    c.task.name, c.task.params = "adding", {"length": point.length}
    c.train.batch_size = c.train.eval_batch_size = point.batch
    c = config_lib.resolve(c)
    config_lib.validate(c, num_devices=sharding.num_data_devices(point.parallel))
    return c


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
    config = config_of(point)
    task = builders.load_task(config)
    model = builders.build_model(config.model, task.info)
    adapter = builders.make_adapter(config, task.info, model)
    dp = sharding.DataParallel(config.parallel)
    seed_loop = sharding.seed_loop(config.seed_loop, config.parallel)
    step = make_train_step(
        adapter.forward, losses.get_loss(task.info), config.optim, config.train.steps, seed_loop
    )
    seeds = [config.seed + k for k in range(point.seeds)]
    initial_states = {} if initial_states is None else initial_states
    key = (point.cell, point.hidden, point.layers, point.seeds)
    if key not in initial_states:
        initial_states[key] = jax.device_get(
            make_init(model, step.tx, example_args(task.info))(seed_keys(seeds))
        )
    state = initial_states[key].replace(carry=adapter.initial_carry(point.batch, point.seeds))
    one_seed = jax.tree.map(lambda p: p[0], state.params)
    iterators = [adapter.train_iterator(task, point.batch, s) for s in seeds]
    batch = dp.put_batch(stack_seeds([next(it) for it in iterators]))
    state = dp.put_state(state)
    run = dp.compile_train(step)
    start = time.perf_counter()
    memory = None
    if hasattr(run, "lower"):  # jit: compile ahead of time and read XLA's memory plan before running
        run = run.lower(state, batch).compile()
        memory = _memory(run)
    flops = matmul_flops(one_seed, point.tokens)
    return Step(run, state, batch, count_params(one_seed), flops, memory, time.perf_counter() - start)
