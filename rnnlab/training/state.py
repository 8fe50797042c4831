"""The train state: a pure pytree, its random keys, and its initialisation for K seeds at once.

Shapes: **K** seeds. Every leaf of a ``TrainState`` built here has a leading seed axis ``[K, ...]``.

Randomness: seed k's root key is ``PRNGKey(seed_k)``, split into (init, train); step s uses
``fold_in(train_key, s)`` (dropout), so a resumed run draws exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (a pytree of arrays; nothing static).

    Attributes:
      step: int32 ``[]`` (``[K]`` with the seed axis), the number of steps taken.
      params: the model parameters.
      opt_state: the optax state.
      rng: uint32 ``[2]`` raw key; step s uses ``fold_in(rng, s)``.
      skipped: int32, updates dropped because the loss or gradient was not finite.
      carry: what the model carries from one batch to the next: truncated BPTT's final carries of the last
        train chunk (leaves ``[B, ...]``, ``[K, B, ...]`` with the seed axis); None otherwise.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    skipped: jax.Array
    carry: Any = None


def example_inputs(info) -> np.ndarray:
    """``inputs`` of one example, enough to initialise a model: ``[1, 1]`` token ids, ``[1, 1, D]`` features,
    or an image ``[1, h, W]`` / a one-frame clip ``[1, 1, H, W]`` (image sizes do shape the parameters, the
    number of frames and steps does not)."""
    if info.vocab_size is not None:
        return np.zeros((1, 1), np.int32)
    if info.input_shape is not None:
        shape = info.input_shape if len(info.input_shape) == 2 else (1, *info.input_shape[1:])
        return np.zeros((1, *shape), np.float32)
    return np.zeros((1, 1, info.input_size), np.float32)


def example_args(info) -> tuple:
    """Positional arguments of ``model.init`` for a task: ``(inputs,)``; ``(inputs, lengths,
    decoder_inputs)`` for seq2seq; ``(images, decoder_inputs)`` for captioning; ``(inputs, lengths,
    features)`` for a task with per-token ``extra_inputs`` (``chars [1, 1, 1]``, others ``[1, 1]``)."""
    inputs = example_inputs(info)
    tokens = np.zeros((1, 1), np.int32)
    if info.kind == "seq2seq":
        return (inputs, None, inputs)
    if info.kind == "captioning":
        return (inputs, tokens)
    if info.extra_inputs:
        return (
            inputs,
            None,
            {k: np.zeros((1, 1, 1) if k == "chars" else (1, 1), np.int32) for k in info.extra_inputs},
        )
    return (inputs,)


def seed_keys(seeds: Sequence[int]) -> np.ndarray:
    """``[K, 2]`` uint32 root keys, ``PRNGKey(seed)`` for each seed."""
    return np.stack([np.asarray(jax.random.key_data(jax.random.key(s, impl="threefry2x32"))) for s in seeds])


def make_init(model, tx: optax.GradientTransformation, args: tuple) -> Callable[[np.ndarray], TrainState]:
    """``keys [K, 2] -> TrainState [K, ...]`` (jitted): K independently initialised states.

    Args:
      model: a Flax module.
      tx: the optimizer (its state is initialised too).
      args: positional arguments of ``model.init`` (``example_args``).
    """

    def init_one(key):
        init_key, train_key = jax.random.split(key)
        params = model.init({"params": init_key}, *args)["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            rng=train_key,
            skipped=jnp.zeros((), jnp.int32),
        )

    # lax.map, not vmap: vmap would batch the orthogonal initialisers' QRs over seeds, and two batched LAPACK
    # calls running at once deadlock XLA's CPU thread pool (docs/known-issues/batched-lapack-deadlock.md).
    return jax.jit(lambda keys: jax.lax.map(init_one, keys))


def init_state(model, tx: optax.GradientTransformation, info, seeds: Sequence[int]) -> TrainState:
    """K independently initialised states stacked on a leading seed axis (one per entry of ``seeds``)."""
    return make_init(model, tx, example_args(info))(seed_keys(seeds))


def abstract_params(model, info, num_seeds: int, sharding=None) -> Any:
    """``jax.ShapeDtypeStruct`` leaves ``[K, ...]`` like the parameters of ``num_seeds`` seeds (nothing runs:
    ``jax.eval_shape``), e.g. to restore them from a checkpoint."""
    args = example_args(info)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, *args)["params"])
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct((num_seeds, *s.shape), s.dtype, sharding=sharding), shapes
    )
