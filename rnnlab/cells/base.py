"""The cell contract shared by every recurrent cell.

Shape legend: B batch, T time, D input features, H hidden size, G gates, N state size.

A cell is a Flax linen module that never sees time, batching, optimizers or I/O:

* ``init_carry(rng, batch_shape) -> carry``: the initial carry, leaves ``[*batch_shape, H]``.
* ``project_inputs(x) -> xp``: the input projection ``x: [..., D]``. The time loop applies it to all time
  steps at once (one big matmul) before the loop starts.
* ``step(carry, xp_t) -> (carry, y_t)``: one recurrent step on a projected input.
* ``__call__(carry, x_t) = step(carry, project_inputs(x_t))``: the usual Flax cell contract.
* ``hidden(carry) -> h``: the part of the carry the literature calls h_t (for diagnostics).

Linear (diagonal) cells also implement ``linear_coeffs(xp) -> (a, b)`` with h_t = a_t * h_{t-1} + b_t and
``readout(h, xp) -> y`` so that the time loop can evaluate them with ``jax.lax.associative_scan``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

Array = jax.Array


class RecurrentCell(nn.Module):
    """Base class; subclasses define ``setup``, ``project_inputs``, ``step`` and optionally ``hidden``."""

    hidden_size: int
    param_dtype: Any = jnp.float32

    # Class constants, not dataclass fields: True for cells whose recurrence is diagonal and linear in the
    # carry (associative-scan capable); the carry's dtype when it differs from param_dtype (complex LRU).
    linear = False
    carry_dtype = None

    def __post_init__(self):
        if (
            not isinstance(self.hidden_size, (int, np.integer))
            or isinstance(self.hidden_size, bool)
            or self.hidden_size <= 0
        ):
            raise ValueError(
                f"{type(self).__name__}: hidden_size must be a positive integer, got {self.hidden_size!r}; "
                "pass e.g. hidden_size=128."
            )
        super().__post_init__()

    def init_carry(self, rng: Array | None, batch_shape: tuple[int, ...]):
        """Zero carry; leaves ``[*batch_shape, H]``. ``rng`` is accepted for API symmetry."""
        del rng
        dtype = self.carry_dtype or self.param_dtype
        return jnp.zeros((*batch_shape, self.hidden_size), dtype)

    def project_inputs(self, x: Array):
        raise NotImplementedError

    def step(self, carry, xp):
        raise NotImplementedError

    def __call__(self, carry, x: Array):
        return self.step(carry, self.project_inputs(x))

    def hidden(self, carry) -> Array:
        """h_t inside the carry (the whole carry unless the cell says otherwise)."""
        return carry

    def recurrent_matrix(self) -> Array | None:
        """The recurrent kernel ``[H, G*H]`` (None for diagonal cells)."""
        return None

    def input_size(self) -> int | None:
        """D the cell was initialised with (read from the input kernel), for clear shape errors."""
        return None


def gate(z: Array, slope: float) -> Array:
    """A sigmoid gate with slope (inverse temperature) beta: sigma(beta * z).

    beta > 1 gives steeper gates that saturate sooner; beta = 1 is the standard gate.
    """
    return jax.nn.sigmoid(z if slope == 1.0 else slope * z)


def per_block(block_init, num_blocks: int):
    """Initializer for ``[H, num_blocks*H]``: ``block_init`` applied independently to each gate's ``[H, H]``."""

    def init(key, shape, dtype=jnp.float32):
        h = shape[0]
        if shape[1] != num_blocks * h:
            raise ValueError(f"per_block expects [H, {num_blocks}H], got {shape}")
        keys = jax.random.split(key, num_blocks)
        return jnp.concatenate([block_init(k, (h, h), dtype) for k in keys], axis=1)

    return init
