"""Vanilla (Elman) RNN cells: tanh or ReLU, with the recurrent initialisations the field compares.

Equations (x_t: [D], h_t: [H])::

    h_t = act(x_t W_ih + b + h_{t-1} W_hh)        y_t = h_t

Parameters: ``input/kernel [D, H]``, ``input/bias [H]``, ``recurrent_kernel [H, H]``.
PyTorch ``nn.RNN`` mapping: ``input/kernel = weight_ih_l0.T``, ``recurrent_kernel = weight_hh_l0.T``,
``input/bias = bias_ih_l0 + bias_hh_l0``.

Recurrent initialisations (``recurrent_init``), all scaled so the spectral radius is ``radius``:

* ``orthogonal``: a random orthogonal matrix times ``radius`` (Saxe et al. 2014).
* ``gaussian``: i.i.d. N(0, radius^2 / H); its spectral radius is ~``radius`` for large H (circular law).
* ``identity``: ``radius * I`` — with ReLU and zero bias this is the IRNN of Le, Jaitly & Hinton (2015).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
RECURRENT_INITS = ("orthogonal", "gaussian", "identity")


def recurrent_initializer(kind: str, radius: float):
    if kind == "orthogonal":
        return nn.initializers.orthogonal(radius)
    if kind == "gaussian":

        def gaussian(key, shape, dtype=jnp.float32):
            return radius / jnp.sqrt(shape[0]).astype(dtype) * jax.random.normal(key, shape, dtype)

        return gaussian
    if kind == "identity":

        def identity(key, shape, dtype=jnp.float32):
            del key
            return radius * jnp.eye(shape[0], shape[1], dtype=dtype)

        return identity
    raise ValueError(f"unknown recurrent_init {kind!r}; valid: {', '.join(RECURRENT_INITS)}")


class SimpleRNNCell(RecurrentCell):
    """Elman RNN cell, ``h_t = act(x_t W_ih + b + h_{t-1} W_hh)`` (see the module docstring)."""

    activation: str = "tanh"
    recurrent_init: str = "orthogonal"
    radius: float = 1.0
    bias_init: float = 0.0
    param_dtype: Any = jnp.float32

    simple_recurrence = True

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.recurrent_init not in RECURRENT_INITS:
            raise ValueError(
                f"unknown recurrent_init {self.recurrent_init!r}; valid: {', '.join(RECURRENT_INITS)}"
            )
        if not self.radius > 0:
            raise ValueError(f"radius must be > 0, got {self.radius!r}")
        super().__post_init__()

    def setup(self):
        self.input_dense = nn.Dense(
            self.hidden_size,
            use_bias=True,
            name="input",
            bias_init=nn.initializers.constant(self.bias_init),
            param_dtype=self.param_dtype,
        )
        self.recurrent_kernel = self.param(
            "recurrent_kernel",
            recurrent_initializer(self.recurrent_init, self.radius),
            (self.hidden_size, self.hidden_size),
            self.param_dtype,
        )

    def project_inputs(self, x):
        return self.input_dense(x)

    def step(self, h, xp):
        h = ACTIVATIONS[self.activation](xp + h @ self.recurrent_kernel)
        return h, h

    def recurrent_matrix(self):
        return self.recurrent_kernel

    def gate_blocks(self):
        return [("h", 1.0)]  # tanh' <= 1 and relu' <= 1
