"""The Optax chain built from ``config.optim``: optimizer, schedule, clipping, parameter groups.

Every factory returns an ``optax.GradientTransformation``; ``make_optimizer`` composes them::

    clip (global: the norm is over ALL parameters)
      -> partition {'default': opt(lr, wd), 'recurrent': opt(lr * recurrent_lr_scale, recurrent_wd)}

Recurrent weights are the parameters named ``recurrent_kernel`` (the cells' convention). Weight decay only
touches matrices (``ndim >= 2``); biases, gains and LRU's diagonal parameters are never decayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

RECURRENT_NAME = "recurrent_kernel"


# --------------------------------------------------------------------------------------------------------
# Schedules


def make_schedule(
    kind: str,
    learning_rate: float,
    total_steps: int,
    *,
    warmup_steps: int = 0,
    decay_steps: int = 0,
    min_lr_ratio: float = 0.0,
    boundaries: Sequence[int] = (),
    decay_factor: float = 0.1,
) -> optax.Schedule:
    """A learning-rate schedule with optional linear warmup from 0.

    Args:
      kind: 'constant', 'warmup_cosine' (Loshchilov & Hutter 2017, SGDR, without restarts) or 'step'
        (multiply by ``decay_factor`` at each of ``boundaries``).
      learning_rate: the peak rate.
      total_steps: the run's length; the cosine ends there unless ``decay_steps`` is set.
      warmup_steps: linear warmup length (all kinds).
      decay_steps: warmup_cosine: warmup + decay length; 0 means ``total_steps``.
      min_lr_ratio: warmup_cosine: final rate as a fraction of the peak.
      boundaries: step: the steps at which the rate drops.
      decay_factor: step: the factor applied at each boundary.

    Returns:
      ``step -> learning rate``.
    """
    if kind == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=learning_rate,
            warmup_steps=warmup_steps,
            decay_steps=max(decay_steps or total_steps, warmup_steps + 1),
            end_value=learning_rate * min_lr_ratio,
        )
    if kind == "constant":
        main = optax.constant_schedule(learning_rate)
    elif kind == "step":
        main = optax.piecewise_constant_schedule(
            learning_rate, {int(b) - warmup_steps: decay_factor for b in boundaries if b > warmup_steps}
        )
    else:
        raise ValueError(f"unknown schedule {kind!r}; valid: constant, warmup_cosine, step")
    if warmup_steps <= 0:
        return main
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, main], [warmup_steps])


# --------------------------------------------------------------------------------------------------------
# Clipping


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """Rescales the whole gradient so that its global L2 norm is at most ``max_norm``.

    Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks" (Alg. 1): the
    remedy for exploding gradients in RNNs; the direction is kept, only the step length is bounded.
    """
    return optax.clip_by_global_norm(max_norm)


def clip_by_value(max_abs: float) -> optax.GradientTransformation:
    """Clips every gradient entry to ``[-max_abs, max_abs]`` (Mikolov 2012; changes the direction)."""
    return optax.clip(max_abs)


def make_clip(kind: str, value: float) -> optax.GradientTransformation:
    """'none' | 'global_norm' | 'value' -> the clipping transformation."""
    if kind == "none":
        return optax.identity()
    if kind == "global_norm":
        return clip_by_global_norm(value)
    if kind == "value":
        return clip_by_value(value)
    raise ValueError(f"unknown clip {kind!r}; valid: none, global_norm, value")


def clip_fired(kind: str, value: float, grads) -> jax.Array:
    """Whether clipping of ``kind`` changes ``grads`` (a bool scalar), for the metrics."""
    if kind == "global_norm":
        return optax.tree.norm(grads) > value
    if kind == "value":
        leaves = jax.tree.leaves(grads)
        return jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves])) > value
    return jnp.zeros((), bool)


# --------------------------------------------------------------------------------------------------------
# Optimizers


def _decay_mask(params):
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def sgd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Plain stochastic gradient descent (Robbins & Monro 1951)."""
    return optax.sgd(learning_rate)


def momentum(
    learning_rate: optax.ScalarOrSchedule, beta: float = 0.9, nesterov: bool = False
) -> optax.GradientTransformation:
    """SGD with heavy-ball (Polyak 1964) or Nesterov momentum (Sutskever et al. 2013)."""
    return optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)


def rmsprop(
    learning_rate: optax.ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8
) -> optax.GradientTransformation:
    """RMSProp (Tieleman & Hinton 2012, Lecture 6.5), the optimizer of many classic RNN papers (Graves 2013)."""
    return optax.rmsprop(learning_rate, decay=decay, eps=eps)


def adam(
    learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam (Kingma & Ba 2015)."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def adamw(
    learning_rate: optax.ScalarOrSchedule,
    weight_decay: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """AdamW: Adam with decoupled weight decay on matrices only (Loshchilov & Hutter 2019)."""
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=_decay_mask)


def make_base_optimizer(
    name: str, learning_rate: optax.ScalarOrSchedule, weight_decay: float = 0.0, **hp
) -> optax.GradientTransformation:
    """One optimizer by name. For all but adamw, ``weight_decay`` is an L2 term added to the gradient.

    Args:
      name: sgd | momentum | rmsprop | adam | adamw.
      learning_rate: a number or a schedule.
      weight_decay: decay coefficient, applied to matrices (``ndim >= 2``) only.
      **hp: momentum, nesterov, b1, b2, eps, rmsprop_decay (the ones ``name`` does not use are ignored).
    """
    if name == "adamw":
        return adamw(
            learning_rate, weight_decay, b1=hp.get("b1", 0.9), b2=hp.get("b2", 0.999), eps=hp.get("eps", 1e-8)
        )
    if name == "sgd":
        opt = sgd(learning_rate)
    elif name == "momentum":
        opt = momentum(learning_rate, hp.get("momentum", 0.9), hp.get("nesterov", False))
    elif name == "rmsprop":
        opt = rmsprop(learning_rate, hp.get("rmsprop_decay", 0.9), hp.get("eps", 1e-8))
    elif name == "adam":
        opt = adam(learning_rate, hp.get("b1", 0.9), hp.get("b2", 0.999), hp.get("eps", 1e-8))
    else:
        raise ValueError(f"unknown optimizer {name!r}; valid: sgd, momentum, rmsprop, adam, adamw")
    if weight_decay > 0:
        opt = optax.chain(optax.add_decayed_weights(weight_decay, mask=_decay_mask), opt)
    return opt


def param_labels(params) -> object:
    """'recurrent' for leaves named ``recurrent_kernel``, 'default' for the rest (a pytree like ``params``)."""

    def label(path, _):
        names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        return "recurrent" if RECURRENT_NAME in names else "default"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(optim: Mapping, total_steps: int) -> optax.GradientTransformation:
    """The full chain from ``config.optim`` (see ``rnnlab.config.default_config``).

    Args:
      optim: the ``config.optim`` dict.
      total_steps: ``config.train.steps`` (the cosine schedule's default length).

    Returns:
      clip -> partition({'default': ..., 'recurrent': ...}) with ``optax.partition`` (formerly
      ``multi_transform``), the recurrent group at ``recurrent_lr_scale`` times the learning rate and with
      ``recurrent_weight_decay``.
    """
    hp = {k: optim[k] for k in ("momentum", "nesterov", "b1", "b2", "eps", "rmsprop_decay")}

    def schedule(scale: float) -> optax.Schedule:
        return make_schedule(
            optim["schedule"],
            optim["learning_rate"] * scale,
            total_steps,
            warmup_steps=optim["warmup_steps"],
            decay_steps=optim["decay_steps"],
            min_lr_ratio=optim["min_lr_ratio"],
            boundaries=tuple(optim["boundaries"]),
            decay_factor=optim["decay_factor"],
        )

    groups = {
        "default": make_base_optimizer(optim["name"], schedule(1.0), optim["weight_decay"], **hp),
        "recurrent": make_base_optimizer(
            optim["name"], schedule(optim["recurrent_lr_scale"]), optim["recurrent_weight_decay"], **hp
        ),
    }
    return optax.chain(make_clip(optim["clip"], optim["clip_value"]), optax.partition(groups, param_labels))


def learning_rate_fn(optim: Mapping, total_steps: int) -> Callable[[int], jax.Array]:
    """The default group's schedule (for logging)."""
    return make_schedule(
        optim["schedule"],
        optim["learning_rate"],
        total_steps,
        warmup_steps=optim["warmup_steps"],
        decay_steps=optim["decay_steps"],
        min_lr_ratio=optim["min_lr_ratio"],
        boundaries=tuple(optim["boundaries"]),
        decay_factor=optim["decay_factor"],
    )
