"""Pure train and eval steps: written for one seed, run for each seed of the leading seed axis ``[K, ...]``.

Shapes: **K** seeds, **B** batch, **T** time. A train batch is ``[K, B, ...]`` (each seed its own data
stream), an eval batch ``[B, ...]`` is shared by all seeds.

A step never sees devices (``rnnlab.training.sharding`` compiles and places it) nor the kind of task: the
model is called through a ``Forward`` function ``forward(params, batch, *, train, rngs=None, carry=None) ->
(outputs, carry)`` from an adapter (``rnnlab.training.adapters``), where ``carry`` is whatever the adapter
keeps between batches (truncated BPTT's recurrent state; None otherwise).

The train step has two halves so that ``pmap`` can combine devices in between: ``gradients`` (forward and
backward on the batch: gradients of the batch's mean loss and the loss sums) and ``update`` (clipping, the
optimizer, the non-finite guard, metrics). Under ``jit`` the step is simply ``update(gradients(...))``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rnnlab.training import losses, optim
from rnnlab.training.state import TrainState

Forward = Callable[..., tuple[Any, Any]]
SEED_LOOPS = ("vmap", "map")


def per_seed(fn: Callable, seed_loop: str, *args):
    """``fn`` applied to each seed's slice of ``args`` (pytrees with leading axis K), results stacked on K:
    vectorised (``'vmap'``) or one seed after another (``'map'``, ``lax.map``)."""
    if seed_loop == "vmap":
        return jax.vmap(fn)(*args)
    if seed_loop == "map":
        return jax.lax.map(lambda a: fn(*a), args)
    raise ValueError(f"unknown seed_loop {seed_loop!r}; valid: {', '.join(SEED_LOOPS)}")


class Gradients(NamedTuple):
    """The backward half of a train step (leaves ``[K, ...]`` after vmap).

    Attributes:
      grads: gradients of the batch's mean loss (local numerator / count; see ``rnnlab.training.losses``).
      stats: ``{name: (numerator, count)}`` sums over the batch.
      carry: the carry the forward pass leaves for the next batch (None when nothing is carried).
    """

    grads: Any
    stats: losses.Stats
    carry: Any


@dataclasses.dataclass(frozen=True)
class TrainStep:
    """``step(state, batch) -> (state, metrics)`` for K seeds; metrics ``{name: [K]}``: the loss and task
    metrics, grad_norm (before clipping), update_norm, param_norm, clip_fired, learning_rate, and the
    non-finite flags nonfinite / loss_nonfinite / grad_nonfinite.

    Attributes:
      forward: the model call (see the module docstring).
      loss: the task's loss.
      tx: the optimizer (``optim.make_optimizer``).
      clip: the clipping rule's name (for ``clip_fired``) and ``clip_value`` its threshold.
      learning_rate: the schedule (logged).
      seed_loop: ``'vmap'`` or ``'map'`` (see the module docstring).
    """

    forward: Forward
    loss: losses.Loss
    tx: optax.GradientTransformation
    clip: str
    clip_value: float
    learning_rate: optax.Schedule
    seed_loop: str = "vmap"

    def __call__(self, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
        return self.update(state, self.gradients(state, batch))

    def gradients(self, state: TrainState, batch) -> Gradients:
        """``state`` leaves ``[K, ...]``, ``batch`` leaves ``[K, B, ...]`` -> ``Gradients`` with leaves
        ``[K, ...]``."""
        return per_seed(self._gradients, self.seed_loop, state, batch)

    def update(self, state: TrainState, gradients: Gradients) -> tuple[TrainState, dict[str, jax.Array]]:
        """Applies ``gradients`` (leaves ``[K, ...]``) to ``state``; a non-finite update is not applied."""
        return per_seed(self._update, self.seed_loop, state, gradients)

    def _gradients(self, state: TrainState, batch) -> Gradients:
        dropout_key = jax.random.fold_in(state.rng, state.step)

        def objective(params):
            outputs, carry = self.forward(
                params, batch, train=True, rngs={"dropout": dropout_key}, carry=state.carry
            )
            stats = self.loss.stats(outputs, batch)
            num, den = stats["loss"]
            return num / jnp.maximum(den, 1e-30), (stats, carry)

        grads, (stats, carry) = jax.grad(objective, has_aux=True)(state.params)
        return Gradients(grads, stats, carry)

    def _update(self, state: TrainState, g: Gradients) -> tuple[TrainState, dict[str, jax.Array]]:
        metrics = self.loss.finalize(g.stats)
        grad_norm = optax.tree.norm(g.grads)
        updates, opt_state = self.tx.update(g.grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        loss_finite = jnp.isfinite(metrics["loss"])
        grad_finite = jnp.isfinite(grad_norm)
        ok = loss_finite & grad_finite

        # A non-finite update is never applied (with nonfinite='stop' the host raises before saving anything);
        # what the batch would have carried on is dropped too (the next batch starts from zeros).
        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)

        new_state = state.replace(
            step=state.step + 1,
            params=keep(params, state.params),
            opt_state=keep(opt_state, state.opt_state),
            skipped=state.skipped + (~ok).astype(jnp.int32),
            carry=jax.tree.map(lambda c: jnp.where(ok, c, jnp.zeros_like(c)), g.carry),
        )
        metrics.update(
            grad_norm=grad_norm,
            update_norm=optax.tree.norm(updates),
            param_norm=optax.tree.norm(new_state.params),
            clip_fired=optim.clip_fired(self.clip, self.clip_value, g.grads).astype(jnp.float32),
            learning_rate=jnp.asarray(self.learning_rate(state.step), jnp.float32),
            nonfinite=(~ok).astype(jnp.float32),
            loss_nonfinite=(~loss_finite).astype(jnp.float32),
            grad_nonfinite=(~grad_finite).astype(jnp.float32),
        )
        return new_state, metrics


def make_train_step(
    forward: Forward, loss: losses.Loss, optim_config, total_steps: int, seed_loop: str = "vmap"
) -> TrainStep:
    """The ``TrainStep`` of ``config.optim`` (``total_steps`` = ``config.train.steps``)."""
    return TrainStep(
        forward=forward,
        loss=loss,
        tx=optim.make_optimizer(optim_config, total_steps),
        clip=optim_config["clip"],
        clip_value=optim_config["clip_value"],
        learning_rate=optim.learning_rate_fn(optim_config, total_steps),
        seed_loop=seed_loop,
    )


@dataclasses.dataclass(frozen=True)
class EvalStep:
    """``step(params, carry, batch) -> (sums, carry)``: ``params`` leaves ``[K, ...]``, ``carry``
    ``[K, B, ...]`` or None, ``batch`` leaves ``[B, ...]`` (shared by the seeds); ``sums``
    ``{name: (num [K], den [K])}`` add up over batches and devices (``loss.finalize`` turns them into
    means). ``seed_loop`` as in ``TrainStep``."""

    forward: Forward
    loss: losses.Loss
    seed_loop: str = "vmap"

    def __call__(self, params, carry, batch):
        return per_seed(lambda p, c: self._one(p, c, batch), self.seed_loop, params, carry)

    def _one(self, params, carry, batch):
        outputs, carry = self.forward(params, batch, train=False, carry=carry)
        return self.loss.stats(outputs, batch), carry
