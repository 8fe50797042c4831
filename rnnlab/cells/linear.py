"""Linear recurrent units with a diagonal recurrence h_t = a_t * h_{t-1} + b_t.

Because the recurrence is linear and element-wise, the time loop can evaluate it with
``jax.lax.associative_scan`` (O(log T) depth) as well as sequentially; both give the same result.

LRU (Orvieto et al. 2023, "Resurrecting recurrent neural networks for long sequences")::

    lambda = exp(-exp(nu_log) + i exp(theta_log))        # complex, |lambda| in [r_min, r_max] at init
    h_t = lambda * h_{t-1} + gamma * (x_t B)             # h: complex [N]; gamma = exp(gamma_log)
    y_t = Re(h_t C) + x_t W_skip                         # [H]: the readout, the cell's output

Parameters ``nu_log, theta_log, gamma_log [N]``, ``B/kernel [D, 2N]`` (B_re then B_im), ``C_re, C_im [N, H]``,
``skip/kernel [D, H]``. Ring initialisation: |lambda| uniform on the ring r_min..r_max (uniform in area),
phase uniform in [0, max_phase]; gamma = sqrt(1 - |lambda|^2) (the gamma-normalisation).
Here N = ``state_size`` (default H).

minGRU (Feng et al. 2024, "Were RNNs all we needed?")::

    z_t = sigma(beta * (x_t W_z + b_z));   h~_t = x_t W_h + b_h
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t;   y_t = h_t

Parameters ``input/kernel [D, 2H]`` (z first, then h~), ``input/bias [2H]``. No PyTorch built-in to map to.

With a zero gate bias the retention 1 - z_t is ~0.5 (h forgets by half each step). ``chrono_tmax`` applies
the chrono initialisation of Tallec & Ollivier 2018 ("Can recurrent neural networks warp time?") to the
minGRU gate: b_z = -log(u) / beta with u ~ U[1, T_max - 1], so that at zero input the retention is
1 - 1/tau with the time constant tau = 1 + u uniform in [2, T_max] (the LSTM's ``chrono_tmax`` convention).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell, gate


class LRUCell(RecurrentCell):
    """Linear Recurrent Unit; see the module docstring."""

    state_size: int | None = None
    r_min: float = 0.0
    r_max: float = 0.99
    max_phase: float = 2 * np.pi
    param_dtype: Any = jnp.float32
    linear = True

    def __post_init__(self):
        if not 0.0 <= self.r_min < self.r_max < 1.0:
            raise ValueError(f"need 0 <= r_min < r_max < 1, got r_min={self.r_min}, r_max={self.r_max}")
        if self.state_size is not None and self.state_size <= 0:
            raise ValueError(f"state_size must be positive, got {self.state_size}")
        super().__post_init__()

    @property
    def n(self) -> int:
        return self.state_size or self.hidden_size

    @property
    def carry_dtype(self):
        return jnp.complex128 if self.param_dtype == jnp.float64 else jnp.complex64

    def setup(self):
        n, h, pd = self.n, self.hidden_size, self.param_dtype
        r_min, r_max = self.r_min, self.r_max

        def nu_init(key, shape, dtype=pd):
            u = jax.random.uniform(key, shape, dtype)
            # |lambda| = exp(-exp(nu_log)) uniform in area on the ring r_min..r_max.
            return jnp.log(-0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2))

        def theta_init(key, shape, dtype=pd):
            return jnp.log(self.max_phase * jax.random.uniform(key, shape, dtype) + 1e-8)

        self.nu_log = self.param("nu_log", nu_init, (n,), pd)
        self.theta_log = self.param("theta_log", theta_init, (n,), pd)

        def gamma_init(key, shape, dtype=pd):
            del key
            mod = jnp.exp(-jnp.exp(self.nu_log))
            return 0.5 * jnp.log(1.0 - mod**2)  # log sqrt(1 - |lambda|^2)

        self.gamma_log = self.param("gamma_log", gamma_init, (n,), pd)
        normal = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
        # B = B_re + i B_im is stored as one real Dense kernel [D, 2N] (re first) so D is inferred lazily.
        self.input_dense = nn.Dense(2 * n, use_bias=False, kernel_init=normal, name="B", param_dtype=pd)
        self.skip = nn.Dense(h, use_bias=False, kernel_init=normal, name="skip", param_dtype=pd)
        self.C_re = self.param("C_re", nn.initializers.variance_scaling(0.5, "fan_in", "normal"), (n, h), pd)
        self.C_im = self.param("C_im", nn.initializers.variance_scaling(0.5, "fan_in", "normal"), (n, h), pd)

    def diagonal_recurrence(self):
        """The diagonal recurrence lambda ``[N]`` (complex; constant over time)."""
        return jnp.exp(-jnp.exp(self.nu_log) + 1j * jnp.exp(self.theta_log))

    def project_inputs(self, x):
        bx = self.input_dense(x)
        bx = jax.lax.complex(bx[..., : self.n], bx[..., self.n :]) * jnp.exp(self.gamma_log)
        return bx, self.skip(x)

    def linear_coeffs(self, xp):
        bx, _ = xp
        return jnp.broadcast_to(self.diagonal_recurrence(), bx.shape), bx

    def readout(self, h, xp):
        _, skip = xp
        return h.real @ self.C_re - h.imag @ self.C_im + skip

    def step(self, h, xp):
        a, b = self.linear_coeffs(xp)
        h = a * h + b
        return h, self.readout(h, xp)


def mingru_bias_init(hidden_size: int, chrono_tmax: float | None, gate_slope: float):
    """Bias initializer for minGRU's ``input/bias [2H]``: the gate's chrono bias (see the module docstring),
    zeros for h~ (and for the gate without ``chrono_tmax``)."""

    def init(key, shape, dtype=jnp.float32):
        if chrono_tmax is None:
            return jnp.zeros(shape, dtype)
        u = jax.random.uniform(key, (hidden_size,), dtype, 1.0, chrono_tmax - 1.0)
        return jnp.concatenate([-jnp.log(u) / gate_slope, jnp.zeros((hidden_size,), dtype)])

    return init


class MinGRUCell(RecurrentCell):
    """minGRU; see the module docstring."""

    gate_slope: float = 1.0
    chrono_tmax: float | None = None
    param_dtype: Any = jnp.float32
    linear = True

    def __post_init__(self):
        if not self.gate_slope > 0:
            raise ValueError(f"gate_slope must be > 0, got {self.gate_slope!r}")
        if self.chrono_tmax is not None and not self.chrono_tmax > 2:
            raise ValueError(
                f"chrono_tmax must be > 2 (the longest dependency, in steps), got {self.chrono_tmax!r}"
            )
        super().__post_init__()

    def setup(self):
        self.input_dense = nn.Dense(
            2 * self.hidden_size,
            name="input",
            param_dtype=self.param_dtype,
            bias_init=mingru_bias_init(self.hidden_size, self.chrono_tmax, self.gate_slope),
        )

    def project_inputs(self, x):
        return self.input_dense(x)

    def linear_coeffs(self, xp):
        z = gate(xp[..., : self.hidden_size], self.gate_slope)
        return 1.0 - z, z * xp[..., self.hidden_size :]

    def readout(self, h, xp):
        del xp
        return h

    def step(self, h, xp):
        a, b = self.linear_coeffs(xp)
        self.sow("intermediates", "gates", {"z": 1.0 - a})
        h = a * h + b
        return h, h
