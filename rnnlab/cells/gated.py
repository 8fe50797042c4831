"""Gated cells: LSTM (with forget bias, chrono init, peepholes, CIFG) and GRU (reset-after).

Gate convention (one for the whole library): gates are stacked along the last axis in PyTorch/cuDNN order,
``LSTM: (i, f, g, o)``, ``GRU: (r, z, n)``. Every sigmoid gate has a slope (inverse temperature) beta:
gate = sigma(beta * pre-activation) ("steeper gates"; beta = 1 is standard).

LSTM (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000)::

    [i, f, g, o] = x_t W_ih + b + h_{t-1} W_hh           # each [H]
    i, f, o = sigma(beta*i), sigma(beta*f), sigma(beta*o);   g = tanh(g)
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t);   y_t = h_t;   carry = (c_t, h_t)

Parameters ``input/kernel [D, 4H]``, ``input/bias [4H]``, ``recurrent_kernel [H, 4H]``.
PyTorch/cuDNN mapping: ``input/kernel = weight_ih_l0.T``, ``recurrent_kernel = weight_hh_l0.T``,
``input/bias = bias_ih_l0 + bias_hh_l0`` (same (i, f, g, o) order; ``jax.experimental.rnn`` uses it too).
Flax's ``OptimizedLSTMCell`` orders its gates (i, f, g, o) as well but stores them in separate Dense layers.

Options: ``forget_bias`` (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1.0), ``chrono_tmax``
(Tallec & Ollivier 2018: b_f ~ log U[1, T_max - 1], b_i = -b_f, overriding ``forget_bias``),
``peephole`` (Gers & Schmidhuber 2000: i, f see c_{t-1}, o sees c_t, via ``peephole [3, H]``),
``cifg`` (coupled input-forget gate, i = 1 - f, Greff et al. 2017; then gates are (f, g, o) and the kernels
are ``[., 3H]``), ``recurrent_init`` (``orthogonal`` (default), ``identity`` or ``gaussian``, applied to each
gate's ``[H, H]`` block, scaled by ``radius``; see ``rnnlab.cells.vanilla``).

GRU, reset-after variant (Cho et al. 2014 as implemented by cuDNN, PyTorch and Flax)::

    [r_x, z_x, n_x] = x_t W_ih + b;    [r_h, z_h, n_h] = h_{t-1} W_hh
    r = sigma(beta*(r_x + r_h));  z = sigma(beta*(z_x + z_h));  n = tanh(n_x + r * (n_h + b_hn))
    h_t = (1 - z) * n + z * h_{t-1};   y_t = h_t

Option ``chrono_tmax`` (Tallec & Ollivier 2018, Sec. 4 for the GRU): the update gate's input bias b_z ~ log
U[1, T_max - 1] / beta, so that z = sigma(beta b_z) keeps h_{t-1} with time constants up to T_max (without it
z starts near 0.5: h forgets by half each step). Parameters ``input/kernel [D, 3H]``, ``input/bias [3H]``,
``recurrent_kernel [H, 3H]``, ``recurrent_bias [H]`` (= b_hn). PyTorch mapping: ``input/kernel =
weight_ih_l0.T``, ``recurrent_kernel = weight_hh_l0.T``, ``input/bias = bias_ih_l0 + [bias_hh_l0[:2H], 0]``,
``recurrent_bias = bias_hh_l0[2H:]``. Flax ``nn.GRUCell`` mapping (its Dense layers ``ir, iz, in, hr, hz,
hn``): ``input/kernel = [ir|iz|in].kernel``, ``input/bias = [ir|iz|in].bias``, ``recurrent_kernel =
[hr|hz|hn].kernel``, ``recurrent_bias = hn.bias``.

Each step's equations after the matmuls are written once, as the pure functions :func:`lstm_update` and
:func:`gru_update`; the cells and the fused whole-sequence kernels (:mod:`rnnlab.fused`) both call them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell, gate, per_block
from rnnlab.cells.vanilla import RECURRENT_INITS, recurrent_initializer

Array = jax.Array


def lstm_bias_init(hidden_size: int, forget_bias: float, chrono_tmax: float | None, cifg: bool):
    """Bias initializer for the fused LSTM bias: zeros except the forget (and, for chrono, input) gate."""

    def init(key, shape, dtype=jnp.float32):
        h = hidden_size
        if chrono_tmax is not None:
            # Tallec & Ollivier (2018), "Can recurrent neural networks warp time?": b_f ~ log U[1, T_max - 1].
            bf = jnp.log(jax.random.uniform(key, (h,), dtype, 1.0, chrono_tmax - 1.0))
        else:
            bf = jnp.full((h,), forget_bias, dtype)
        if cifg:  # (f, g, o)
            return jnp.concatenate([bf, jnp.zeros((2 * h,), dtype)])
        bi = -bf if chrono_tmax is not None else jnp.zeros((h,), dtype)
        return jnp.concatenate([bi, bf, jnp.zeros((2 * h,), dtype)])

    return init


def gru_bias_init(hidden_size: int, chrono_tmax: float | None, gate_slope: float):
    """Bias initializer for the GRU's ``input/bias [3H]``: zeros, except the update gate's chrono bias."""

    def init(key, shape, dtype=jnp.float32):
        if chrono_tmax is None:
            return jnp.zeros(shape, dtype)
        bz = jnp.log(jax.random.uniform(key, (hidden_size,), dtype, 1.0, chrono_tmax - 1.0)) / gate_slope
        zeros = jnp.zeros((hidden_size,), dtype)
        return jnp.concatenate([zeros, bz, zeros])

    return init


def _check_chrono(chrono_tmax: float | None) -> None:
    if chrono_tmax is not None and not chrono_tmax > 2:
        raise ValueError(f"chrono_tmax must be > 2 (the longest dependency, in steps), got {chrono_tmax!r}")


def _check_gate_options(kind: str, radius: float, gate_slope: float) -> None:
    """The options LSTM and GRU share: recurrent initialisation, its radius, and the gate slope."""
    if not gate_slope > 0:
        raise ValueError(f"gate_slope must be > 0, got {gate_slope!r}")
    if kind not in RECURRENT_INITS:
        raise ValueError(f"unknown recurrent_init {kind!r}; valid: {', '.join(RECURRENT_INITS)}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")


def lstm_update(z: Array, c: Array, slope: float = 1.0, peephole: Array | None = None, cifg: bool = False):
    """The LSTM step after the matmuls: gate pre-activations ``z`` and ``c_{t-1}`` -> the new state.

    The one copy of the LSTM equations (module docstring), used by :class:`LSTMCell` and the fused kernels.

    Args:
      z: ``[..., G*H]`` pre-activations ``x_t W_ih + b + h_{t-1} W_hh``, gates ``(i, f, g, o)`` (``(f, g, o)``
        with ``cifg``).
      c: ``[..., H]`` cell state c_{t-1}.
      slope: sigmoid slope beta of the i, f, o gates.
      peephole: ``[3, H]`` peephole weights (i, f see c_{t-1}; o sees c_t), or None.
      cifg: coupled input-forget gate, i = 1 - f.

    Returns:
      ``((c_t, h_t), (i, f, g, o))`` with the post-activation gates (g = tanh of its pre-activation).
    """
    if cifg:
        zf, zg, zo = jnp.split(z, 3, axis=-1)
        zi = None
    else:
        zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    if peephole is not None:
        zf = zf + peephole[1] * c
        zi = None if zi is None else zi + peephole[0] * c
    f = gate(zf, slope)
    i = 1.0 - f if cifg else gate(zi, slope)
    g = jnp.tanh(zg)
    c = f * c + i * g
    if peephole is not None:
        zo = zo + peephole[2] * c
    o = gate(zo, slope)
    return (c, o * jnp.tanh(c)), (i, f, g, o)


def gru_update(xp: Array, hp: Array, h: Array, b_hn: Array, slope: float = 1.0):
    """The reset-after GRU step after the matmuls: the one copy of its equations (module docstring).

    Args:
      xp: ``[..., 3H]`` projected input ``x_t W_ih + b`` (gates ``r, z, n``).
      hp: ``[..., 3H]`` recurrent product ``h_{t-1} W_hh``.
      h: ``[..., H]`` h_{t-1}.
      b_hn: ``[H]`` the recurrent bias inside the reset gate's product.
      slope: sigmoid slope beta of the r, z gates.

    Returns:
      ``(h_t, (r, z, n, hn))`` with ``hn = h_{t-1} W_hn + b_hn`` (the fused backward pass needs it).
    """
    hs = h.shape[-1]
    rz = gate(xp[..., : 2 * hs] + hp[..., : 2 * hs], slope)
    r, z = rz[..., :hs], rz[..., hs:]
    hn = hp[..., 2 * hs :] + b_hn
    n = jnp.tanh(xp[..., 2 * hs :] + r * hn)
    return (1.0 - z) * n + z * h, (r, z, n, hn)


class LSTMCell(RecurrentCell):
    """LSTM with a fused gate kernel; see the module docstring for equations and options."""

    forget_bias: float = 1.0
    chrono_tmax: float | None = None
    peephole: bool = False
    cifg: bool = False
    gate_slope: float = 1.0
    recurrent_init: str = "orthogonal"
    radius: float = 1.0
    param_dtype: Any = jnp.float32

    forget_gate = "f"

    def __post_init__(self):
        _check_gate_options(self.recurrent_init, self.radius, self.gate_slope)
        _check_chrono(self.chrono_tmax)
        super().__post_init__()

    @property
    def num_gates(self) -> int:
        return 3 if self.cifg else 4

    def setup(self):
        h, g = self.hidden_size, self.num_gates
        self.input_dense = nn.Dense(
            g * h,
            name="input",
            param_dtype=self.param_dtype,
            bias_init=lstm_bias_init(h, self.forget_bias, self.chrono_tmax, self.cifg),
        )
        self.recurrent_kernel = self.param(
            "recurrent_kernel",
            per_block(recurrent_initializer(self.recurrent_init, self.radius), g),
            (h, g * h),
            self.param_dtype,
        )
        if self.peephole:
            self.peephole_weights = self.param("peephole", nn.initializers.zeros, (3, h), self.param_dtype)

    def init_carry(self, rng, batch_shape):
        del rng
        z = jnp.zeros((*batch_shape, self.hidden_size), self.param_dtype)
        return (z, z)

    def project_inputs(self, x):
        return self.input_dense(x)

    def step(self, carry, xp):
        c, h = carry
        peephole = self.peephole_weights if self.peephole else None
        (c, h), (i, f, _, o) = lstm_update(
            xp + h @ self.recurrent_kernel, c, self.gate_slope, peephole, self.cifg
        )
        self.sow("intermediates", "gates", {"i": i, "f": f, "o": o})
        return (c, h), h

    def hidden(self, carry):
        return carry[1]

    def recurrent_matrix(self):
        return self.recurrent_kernel

    def gate_blocks(self):
        sig = self.gate_slope / 4.0  # (sigma(beta z))' <= beta / 4
        names = ("f", "g", "o") if self.cifg else ("i", "f", "g", "o")
        return [(n, 1.0 if n == "g" else sig) for n in names]


class GRUCell(RecurrentCell):
    """GRU, reset-after convention of cuDNN/PyTorch/Flax; see the module docstring."""

    gate_slope: float = 1.0
    recurrent_init: str = "orthogonal"
    radius: float = 1.0
    chrono_tmax: float | None = None
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        _check_gate_options(self.recurrent_init, self.radius, self.gate_slope)
        _check_chrono(self.chrono_tmax)
        super().__post_init__()

    def setup(self):
        h = self.hidden_size
        self.input_dense = nn.Dense(
            3 * h,
            name="input",
            param_dtype=self.param_dtype,
            bias_init=gru_bias_init(h, self.chrono_tmax, self.gate_slope),
        )
        self.recurrent_kernel = self.param(
            "recurrent_kernel",
            per_block(recurrent_initializer(self.recurrent_init, self.radius), 3),
            (h, 3 * h),
            self.param_dtype,
        )
        self.recurrent_bias = self.param("recurrent_bias", nn.initializers.zeros, (h,), self.param_dtype)

    def project_inputs(self, x):
        return self.input_dense(x)

    def step(self, h, xp):
        h, (r, z, _, _) = gru_update(xp, h @ self.recurrent_kernel, h, self.recurrent_bias, self.gate_slope)
        self.sow("intermediates", "gates", {"r": r, "z": z})
        return h, h

    def recurrent_matrix(self):
        return self.recurrent_kernel

    def gate_blocks(self):
        sig = self.gate_slope / 4.0
        return [("r", sig), ("z", sig), ("n", 1.0)]
