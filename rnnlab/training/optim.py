"""The Optax chain built from ``config.optim``: optimizer, schedule, clipping, parameter groups.

Every factory returns an ``optax.GradientTransformation``; ``make_optimizer`` composes them::

    clip (global: the norm is over ALL parameters)
      -> partition {'default': opt(lr, wd), 'recurrent': opt(lr * recurrent_lr_scale, recurrent_wd)}

Recurrent weights are the parameters named ``recurrent_kernel`` (the cells' convention) and the LRU's
``nu_log``, ``theta_log``, ``gamma_log`` and input matrix ``B`` (Orvieto et al. 2023 train these at a smaller
learning rate without weight decay; the public minimal-LRU uses 0.5x). Weight decay only
touches matrices (``ndim >= 2``); biases, gains and LRU's diagonal parameters are never decayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

RECURRENT_NAME = "recurrent_kernel"
LRU_RECURRENT = ("nu_log", "theta_log", "gamma_log", "B")  # rnnlab.cells.linear.LRUCell's names


def _lookup(registry: Mapping, name: str, what: str):
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; valid: {', '.join(registry)}")
    return registry[name]


# --------------------------------------------------------------------------------------------------------
# Schedules


def _with_warmup(main: optax.Schedule, learning_rate: float, warmup_steps: int) -> optax.Schedule:
    if warmup_steps <= 0:
        return main
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, main], [warmup_steps])


def _constant(learning_rate, total_steps, *, warmup_steps, **_):
    return _with_warmup(optax.constant_schedule(learning_rate), learning_rate, warmup_steps)


def _warmup_cosine(learning_rate, total_steps, *, warmup_steps, decay_steps, min_lr_ratio, **_):
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=max(decay_steps or total_steps, warmup_steps + 1),
        end_value=learning_rate * min_lr_ratio,
    )


def _step(learning_rate, total_steps, *, warmup_steps, boundaries, decay_factor, **_):
    main = optax.piecewise_constant_schedule(
        learning_rate, {int(b) - warmup_steps: decay_factor for b in boundaries if b > warmup_steps}
    )
    return _with_warmup(main, learning_rate, warmup_steps)


#: name -> ``(learning_rate, total_steps, **settings) -> optax.Schedule`` (every kind with linear warmup)
SCHEDULES: dict[str, Callable[..., optax.Schedule]] = {
    "constant": _constant,
    "warmup_cosine": _warmup_cosine,  # Loshchilov & Hutter 2017 (SGDR), without restarts
    "step": _step,
}


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
      kind: a name in ``SCHEDULES``: 'constant', 'warmup_cosine' (Loshchilov & Hutter 2017, SGDR, without
        restarts) or 'step' (multiply by ``decay_factor`` at each of ``boundaries``).
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
    return _lookup(SCHEDULES, kind, "schedule")(
        learning_rate,
        total_steps,
        warmup_steps=warmup_steps,
        decay_steps=decay_steps,
        min_lr_ratio=min_lr_ratio,
        boundaries=boundaries,
        decay_factor=decay_factor,
    )


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


class Clip(NamedTuple):
    """A clipping rule: its transformation and whether it changes a given gradient (for the metrics)."""

    transform: Callable[[float], optax.GradientTransformation]
    fired: Callable[[float, Any], jax.Array]


def _max_abs(grads) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grads)]))


CLIPS: dict[str, Clip] = {
    "none": Clip(lambda value: optax.identity(), lambda value, grads: jnp.zeros((), bool)),
    "global_norm": Clip(clip_by_global_norm, lambda value, grads: optax.tree.norm(grads) > value),
    "value": Clip(clip_by_value, lambda value, grads: _max_abs(grads) > value),
}


def make_clip(kind: str, value: float) -> optax.GradientTransformation:
    """A name in ``CLIPS`` ('none' | 'global_norm' | 'value') -> the clipping transformation."""
    return _lookup(CLIPS, kind, "clip").transform(value)


def clip_fired(kind: str, value: float, grads) -> jax.Array:
    """Whether clipping of ``kind`` changes ``grads`` (a bool scalar), for the metrics."""
    return _lookup(CLIPS, kind, "clip").fired(value, grads)


# --------------------------------------------------------------------------------------------------------
# Optimizers


def _decay_mask(params):
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def sgd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Plain stochastic gradient descent (Robbins & Monro 1951)."""
    return optax.sgd(learning_rate)


def sgd_momentum(
    learning_rate: optax.ScalarOrSchedule, beta: float = 0.9, nesterov: bool = False
) -> optax.GradientTransformation:
    """SGD with heavy-ball (Polyak 1964) or Nesterov momentum (Sutskever et al. 2013)."""
    return optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)


def rmsprop(
    learning_rate: optax.ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8
) -> optax.GradientTransformation:
    """RMSProp (Tieleman & Hinton 2012, Lecture 6.5), the optimizer of many classic RNN papers
    (Graves 2013)."""
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


def _l2(factory: Callable[..., optax.GradientTransformation]) -> Callable[..., optax.GradientTransformation]:
    """``factory`` with weight decay as an L2 term added to the gradient (matrices only)."""

    def make(learning_rate, weight_decay, **hp):
        opt = factory(learning_rate, **hp)
        if weight_decay > 0:
            opt = optax.chain(optax.add_decayed_weights(weight_decay, mask=_decay_mask), opt)
        return opt

    return make


#: name -> ``(learning_rate, weight_decay, **hp) -> GradientTransformation``; ``hp``: momentum, nesterov, b1,
#: b2, eps, rmsprop_decay (each optimizer takes the ones it uses).
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": _l2(lambda lr, **_: sgd(lr)),
    "momentum": _l2(lambda lr, momentum=0.9, nesterov=False, **_: sgd_momentum(lr, momentum, nesterov)),
    "rmsprop": _l2(lambda lr, rmsprop_decay=0.9, eps=1e-8, **_: rmsprop(lr, rmsprop_decay, eps)),
    "adam": _l2(lambda lr, b1=0.9, b2=0.999, eps=1e-8, **_: adam(lr, b1, b2, eps)),
    "adamw": lambda lr, weight_decay, b1=0.9, b2=0.999, eps=1e-8, **_: adamw(lr, weight_decay, b1, b2, eps),
}


def make_base_optimizer(
    name: str, learning_rate: optax.ScalarOrSchedule, weight_decay: float = 0.0, **hp
) -> optax.GradientTransformation:
    """One optimizer by name (``OPTIMIZERS``). For all but adamw, ``weight_decay`` is an L2 term added to the
    gradient.

    Args:
      name: sgd | momentum | rmsprop | adam | adamw.
      learning_rate: a number or a schedule.
      weight_decay: decay coefficient, applied to matrices (``ndim >= 2``) only.
      **hp: momentum, nesterov, b1, b2, eps, rmsprop_decay (the ones ``name`` does not use are ignored).
    """
    return _lookup(OPTIMIZERS, name, "optimizer")(learning_rate, weight_decay, **hp)


def param_labels(params) -> object:
    """'recurrent' for leaves named ``recurrent_kernel`` or an LRU cell's ``LRU_RECURRENT`` (directly under a
    ``cell`` scope), 'default' for the rest (a pytree like ``params``)."""

    def label(path, _):
        names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        lru = len(names) >= 2 and names[-2] == "cell" and names[-1] in LRU_RECURRENT
        lru = lru or (len(names) >= 3 and names[-3:-1] == ["cell", "B"])
        return "recurrent" if RECURRENT_NAME in names or lru else "default"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(optim: Mapping, total_steps: int) -> optax.GradientTransformation:
    """The full chain from ``config.optim`` (see ``rnnlab.training.config.default_config``).

    Args:
      optim: the ``config.optim`` dict.
      total_steps: ``config.train.steps`` (the cosine schedule's default length).

    Returns:
      clip -> partition({'default': ..., 'recurrent': ...}) with ``optax.partition`` (formerly
      ``multi_transform``), the recurrent group at ``recurrent_lr_scale`` times the learning rate and with
      ``recurrent_weight_decay``.
    """
    hp = {k: optim[k] for k in ("momentum", "nesterov", "b1", "b2", "eps", "rmsprop_decay")}
    groups = {
        "default": make_base_optimizer(
            optim["name"], learning_rate_fn(optim, total_steps), optim["weight_decay"], **hp
        ),
        "recurrent": make_base_optimizer(
            optim["name"],
            learning_rate_fn(optim, total_steps, optim["recurrent_lr_scale"]),
            optim["recurrent_weight_decay"],
            **hp,
        ),
    }
    return optax.chain(make_clip(optim["clip"], optim["clip_value"]), optax.partition(groups, param_labels))


def learning_rate_fn(optim: Mapping, total_steps: int, scale: float = 1.0) -> optax.Schedule:
    """The schedule of ``config.optim``, peak rate times ``scale`` (1: the default group's, logged)."""
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
