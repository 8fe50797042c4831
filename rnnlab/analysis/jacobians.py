"""Products of per-step Jacobians, ||dh_T/dh_t|| and its largest singular value, along one trajectory.

Shape legend: T time, D input features, S the flattened real state size (H for most cells, 2H for the
LSTM's (c, h), 2N for the LRU's complex state as (re, im) pairs).

The per-step Jacobians J_t = ds_t/ds_{t-1} of a cell's pure step function (``jax.jacfwd``) are multiplied
backwards, P_t = J_T ... J_{t+1}, inside a reverse ``lax.scan``; this is the quantity whose norm Bengio,
Simard & Frasconi (1994) and Pascanu, Mikolov & Bengio (2013) bound. Cumulative products like these are also
what recurrentgemma's ``lru_linear_scan(return_a_prod=True)`` returns.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.analysis.discovery import forward_layer, trace_layers
from rnnlab.analysis.gradients import fit_log_decay_rate
from rnnlab.analysis.spectrum import largest_singular_values
from rnnlab.cells.base import RecurrentCell

Array = jax.Array


def _real_view(carry):
    """``(to_vec, from_vec)`` between a carry and a real vector ``[S]`` (complex leaves as (re, im))."""
    leaves, treedef = jax.tree.flatten(carry)
    specs = [(leaf.shape, leaf.dtype) for leaf in leaves]

    def to_vec(c):
        parts = []
        for leaf in jax.tree.leaves(c):
            if jnp.iscomplexobj(leaf):
                parts += [jnp.real(leaf).ravel(), jnp.imag(leaf).ravel()]
            else:
                parts.append(leaf.ravel())
        return jnp.concatenate(parts)

    def from_vec(v):
        out, i = [], 0
        for shape, dtype in specs:
            n = int(np.prod(shape))
            if jnp.issubdtype(dtype, jnp.complexfloating):
                out.append(jax.lax.complex(v[i : i + n], v[i + n : i + 2 * n]).reshape(shape).astype(dtype))
                i += 2 * n
            else:
                out.append(v[i : i + n].reshape(shape).astype(dtype))
                i += n
        return jax.tree.unflatten(treedef, out)

    return to_vec, from_vec


def state_jacobian_products(
    step_fn: Callable,
    carry0,
    xs,
    mask: Array | None = None,
    *,
    hidden: Callable = lambda c: c,
    return_products: bool = False,
) -> dict[str, Array]:
    """||dh_T/dh_t|| and sigma_max(dh_T/dh_t) along one trajectory of a pure step function.

    The per-step Jacobians J_t = ds_t/ds_{t-1} of the full state s (``jax.jacfwd``) are multiplied backwards,
    P_t = ds_T/ds_t = J_T ... J_{t+1}, with a reverse ``lax.scan`` (each J_t is built inside the scan, so only
    one [S, S] matrix lives at a time). The reported block is the ``hidden`` part: rows and columns of h in
    P_t — the same quantity the probes measure (a perturbation of h_t, everything downstream included, e.g.
    the LSTM's cell-state path).

    Args:
      step_fn: ``step_fn(carry, x_t) -> carry`` (pure).
      carry0: the initial carry (any pytree; complex leaves are treated as (re, im) pairs).
      xs: per-step inputs, leaves ``[T, ...]``.
      mask: ``[T]`` bool, False on padded steps (the carry is frozen there, as in the time loop).
      hidden: ``hidden(carry) -> h`` (e.g. ``cell.hidden``).
      return_products: also return ``products: [T, S_h, S_h]`` (the hidden block of P_t).

    Returns:
      ``norm: [T]`` (Frobenius) and ``sigma_max: [T]``, index t holding dh_T/dh_{t+1} in 0-based step order
      (so the last entry is the identity and index t aligns with probe index t), NaN on padded steps; and
      ``decay_rate``, ``log_decay_rate`` fitted to ``norm`` by :func:`fit_decay_rate`.
    """
    to_vec, from_vec = _real_view(carry0)
    s0 = to_vec(carry0)
    t = jax.tree.leaves(xs)[0].shape[0]
    mask = jnp.ones((t,), bool) if mask is None else jnp.asarray(mask, bool)

    def f(s, x_t, m_t):
        return jnp.where(m_t, to_vec(step_fn(from_vec(s), x_t)), s)

    def forward(s, inp):
        return f(s, *inp), s  # collect s_{t-1}

    _, prev = jax.lax.scan(forward, s0, (xs, mask))
    select = jax.jacfwd(lambda v: to_vec(hidden(from_vec(v))))(s0)  # [S_h, S]: picks h out of s
    jac = jax.jacfwd(f)

    def backward(p, inp):
        s, x_t, m_t = inp
        block = select @ p @ select.T  # dh_T/dh_t for this t
        return p @ jac(s, x_t, m_t), block

    _, blocks = jax.lax.scan(backward, jnp.eye(s0.shape[0], dtype=s0.dtype), (prev, xs, mask), reverse=True)
    norm = jnp.where(mask, jnp.sqrt(jnp.sum(blocks**2, axis=(1, 2))), jnp.nan)
    sigma = jnp.where(mask, largest_singular_values(blocks), jnp.nan)
    log_rate = fit_log_decay_rate(norm, mask)
    out = {"norm": norm, "sigma_max": sigma, "log_decay_rate": log_rate, "decay_rate": jnp.exp(log_rate)}
    if return_products:
        out["products"] = blocks
    return out


def cell_jacobian_products(
    cell: RecurrentCell, cell_params, x: Array, length: Array | int | None = None, **kwargs
) -> dict[str, Array]:
    """:func:`state_jacobian_products` of ``cell`` on one sequence ``x: [T, D]`` from a zero carry.

    ``length`` (scalar, may be traced): steps at or after it are padding (frozen carry, NaN in the output).
    """
    cls = type(cell)
    variables = {"params": cell_params}
    xp = cell.apply(variables, x[:, None], method=cls.project_inputs)  # leaves [T, 1, ...]
    carry0 = cell.init_carry(None, (1,))
    step = lambda c, xp_t: cell.apply(variables, c, xp_t, method=cls.step)[0]
    mask = None if length is None else jnp.arange(x.shape[0]) < length
    return state_jacobian_products(step, carry0, xp, mask, hidden=cell.hidden, **kwargs)


def jacobian_products(
    model, params, inputs: Array, lengths: Array | None = None, *, index: int = 0, layer: int = 0, **kwargs
) -> dict[str, Array]:
    """:func:`cell_jacobian_products` for sequence ``index`` of a batch, at ``layer`` of ``model``
    (its forward direction; the layers are found by :func:`~rnnlab.analysis.discovery.trace_layers`).

    Args: ``inputs: [B, T, D]`` (or ``[B, T]`` ids), ``lengths: [B]``. Returns ``norm, sigma_max: [T]``,
    ``decay_rate``, ``log_decay_rate`` (see :func:`state_jacobian_products`).
    """
    found = forward_layer(trace_layers(model, params, inputs, lengths)[0], layer)
    length = None if lengths is None else lengths[index]
    return cell_jacobian_products(found.cell, found.params, found.inputs[index], length, **kwargs)
