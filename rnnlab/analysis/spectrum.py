"""The spectrum of the recurrent weights against the bound of Pascanu, Mikolov & Bengio (2013).

Shape legend: H hidden size, G gate blocks, N state size.

For h_t = act(h_{t-1} W_hh + u_t) with |act'| <= gamma, ||dh_t/dh_{t-1}|| <= gamma sigma_max(W_hh), so
sigma_max < 1 / gamma is sufficient for the gradients to vanish (and sigma_max > 1 / gamma necessary for
them to explode). Everything here goes through the cell contract (:mod:`rnnlab.cells.base`): a cell's
``recurrent_matrix()`` and ``gate_blocks()``, its ``simple_recurrence`` flag, or a linear cell's
``diagonal_recurrence()``.

No linear algebra here is ever batched: a batched LAPACK call on the CPU backend can deadlock XLA's thread
pool when another one runs at the same time (docs/known-issues/batched-lapack-deadlock.md).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.cells.base import RecurrentCell

Array = jax.Array


def largest_singular_values(matrices: Array) -> Array:
    """``[N, M, M] -> [N]``: sigma_max of each matrix, one unbatched SVD at a time (``lax.map``)."""
    return jax.lax.map(lambda m: jnp.linalg.svd(m, compute_uv=False)[0], matrices)


def _host_spectral_radius(w):
    return np.asarray(np.max(np.abs(np.linalg.eigvals(np.asarray(w, np.float64)))), np.asarray(w).dtype)


def matrix_spectrum(w: Array) -> dict[str, Array]:
    """``w: [H, H]`` -> ``sigma_max`` (largest singular value) and ``spectral_radius`` (max |eigenvalue|).

    The eigenvalues are computed on the host (``jax.pure_callback``) so this also runs under jit on
    accelerators without a non-symmetric eigensolver.
    """
    w = jnp.asarray(w)
    sigma = jnp.linalg.svd(w, compute_uv=False)[0]
    radius = jax.pure_callback(
        _host_spectral_radius, jax.ShapeDtypeStruct((), w.dtype), w, vmap_method="sequential"
    )
    return {"sigma_max": sigma, "spectral_radius": radius}


def _summary(blocks: dict, sigma, radius, bound, applies: bool) -> dict[str, Any]:
    return {
        "blocks": blocks,
        "sigma_max": sigma,
        "spectral_radius": radius,
        "pascanu_bound": bound,
        "vanishing_guaranteed": (sigma < bound) & applies,
        "pascanu_applies": applies,
    }


def recurrent_spectrum(cell: RecurrentCell, cell_params) -> dict[str, Any]:
    """Spectral radius and sigma_max of ``cell``'s recurrent weights against Pascanu et al.'s (2013) bound.

    The bound is reported per ``[H, H]`` block of ``recurrent_matrix()`` (``gate_blocks()``: gamma = 1 for
    tanh/ReLU blocks, beta/4 for sigmoid gates of slope beta, bound 1/gamma).

    Returns a dict: ``blocks: {name: {sigma_max, spectral_radius, gamma, pascanu_bound}}``; top-level
    ``sigma_max``, ``spectral_radius`` (the max over blocks), ``pascanu_bound`` and ``vanishing_guaranteed``
    (sigma_max < bound), and ``pascanu_applies``: True only where the theorem's setting holds — a
    ``simple_recurrence`` (rnn/irnn) or a constant diagonal linear recurrence (the LRU: gamma = 1,
    W = diag(lambda), block ``'lambda'``). For gated cells the additive cell/update path is not of the form
    act(W h): ``vanishing_guaranteed`` is False and the block numbers are descriptive only. Cells without
    recurrent weights (minGRU) give NaNs.
    """
    variables = {"params": cell_params}
    lam = cell.apply(variables, method=type(cell).diagonal_recurrence)
    if lam is not None:
        mod = jnp.abs(lam).max()
        blocks = {"lambda": {"sigma_max": mod, "spectral_radius": mod, "gamma": 1.0, "pascanu_bound": 1.0}}
        return _summary(blocks, mod, mod, 1.0, True)
    gate_blocks = cell.gate_blocks()
    if not gate_blocks:
        nan = jnp.array(jnp.nan, jnp.float32)
        return _summary({}, nan, nan, nan, False)
    w = cell.apply(variables, method=type(cell).recurrent_matrix)  # [H, G*H]
    h = w.shape[0]
    blocks = {
        name: {**matrix_spectrum(w[:, k * h : (k + 1) * h]), "gamma": gamma, "pascanu_bound": 1.0 / gamma}
        for k, (name, gamma) in enumerate(gate_blocks)
    }
    sigma = jnp.max(jnp.stack([b["sigma_max"] for b in blocks.values()]))
    radius = jnp.max(jnp.stack([b["spectral_radius"] for b in blocks.values()]))
    applies = bool(cell.simple_recurrence)
    bound = 1.0 / gate_blocks[0][1] if applies else 1.0
    return _summary(blocks, sigma, radius, bound, applies)
