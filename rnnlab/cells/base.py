"""The cell contract shared by every recurrent cell.

Shape legend: B batch, T time, D input features, H hidden size (the output size), G gates, N state size.

A cell is a Flax linen module that computes ONE step. It never sees time, batching, masking, optimizers or
I/O: the time loop (:mod:`rnnlab.scan`) owns all of those, and the diagnostics (:mod:`rnnlab.analysis`)
read only what the cell declares below. Subclass :class:`RecurrentCell`.

A cell MUST implement:

* ``project_inputs(x) -> xp``: the part of the step that depends on the input alone, ``x: [..., D]``
  (usually ``x W_ih + b``: ``[..., G*H]``; any pytree is fine). Depending on the platform and the options
  (:func:`rnnlab.scan.resolve`) the loop applies it to all T steps at once before the loop ("hoisted", one
  large matmul: the GPU/TPU default) or inside the loop, step by step (the CPU default, measured faster
  there). The results must not depend on which.
* ``step(carry, xp_t) -> (carry, y_t)``: one step on a projected input; ``y_t: [..., H]`` is the cell's
  output (its readout), which the layers above read (including ``SequenceModel(head='last')``).

A cell MAY implement (the defaults suit a cell whose carry is one ``[B, H]`` array ``h`` with ``y_t = h_t``):

* ``init_carry(rng, batch_shape) -> carry``: the initial carry (default zeros ``[*batch_shape, H]``, in
  ``carry_dtype`` or ``param_dtype``). ``rng`` exists for API symmetry; no cell uses it.
* ``hidden(carry) -> h``: the part of the carry the literature calls h_t (default: the whole carry). The
  gradient and Jacobian diagnostics report norms of this part.
* ``recurrent_matrix() -> W_hh: [H, G*H]``: the recurrent kernel, G blocks of ``[H, H]`` side by side,
  and ``gate_blocks() -> [(name, gamma), ...]``: one entry per block, gamma = sup |activation'| of the
  nonlinearity the block feeds (1 for tanh/ReLU, beta/4 for a sigmoid of slope beta), for the spectrum
  diagnostics against Pascanu et al. (2013). Set the class constant ``simple_recurrence = True`` when the
  step is h_t = act(h_{t-1} W_hh + u_t) with one block (their theorem's setting).
* ``forget_gate``: class constant naming the sown gate whose value f gives a memory time constant
  1 / (1 - f) (the LSTM's ``'f'``).
* sow its gate values in ``step`` with ``self.sow('intermediates', 'gates', {name: [..., H]})``: the time
  loop stacks them over time when the ``'intermediates'`` collection is mutable (gate statistics).

Rules: parameters only (``self.param`` / submodules); no rng streams and no mutable state inside ``step``
(the loop calls it as a pure function of the parameters, possibly twice under remat). Options are dataclass
fields validated in ``__post_init__`` with a message that names the fix.

Linear (diagonal) cells, h_t = a_t * h_{t-1} + b_t element-wise, additionally set ``linear = True`` and
implement ``linear_coeffs(xp) -> (a, b)`` (``[..., N]`` each) and ``readout(h, xp) -> y``, so the loop can
also run them with ``jax.lax.associative_scan``; ``step`` must equal ``readout(a * h + b, xp)``. A linear
cell whose a_t does not depend on the input may expose it as ``diagonal_recurrence() -> lambda: [N]``
(possibly complex; its spectrum is then |lambda|).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

Array = jax.Array


class RecurrentCell(nn.Module):
    """Base class; see the module docstring for what subclasses must and may implement."""

    hidden_size: int
    param_dtype: Any = jnp.float32

    # Class constants, not dataclass fields (see the module docstring).
    linear = False  # diagonal linear recurrence: associative-scan capable
    carry_dtype = None  # the carry's dtype when it differs from param_dtype (complex LRU)
    simple_recurrence = False  # h_t = act(h_{t-1} W_hh + u_t): Pascanu et al.'s bound applies
    forget_gate = None  # name of the sown gate f with memory time constant 1 / (1 - f)

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
        raise NotImplementedError(f"{type(self).__name__} must implement project_inputs(x)")

    def step(self, carry, xp):
        raise NotImplementedError(f"{type(self).__name__} must implement step(carry, xp)")

    def __call__(self, carry, x: Array):
        return self.step(carry, self.project_inputs(x))

    def hidden(self, carry) -> Array:
        """h_t inside the carry (the whole carry unless the cell says otherwise)."""
        return carry

    def recurrent_matrix(self) -> Array | None:
        """The recurrent kernel ``[H, G*H]`` (None for cells without one)."""
        return None

    def gate_blocks(self) -> list[tuple[str, float]]:
        """``(name, gamma)`` per ``[H, H]`` block of :meth:`recurrent_matrix` (empty without one)."""
        return []

    def diagonal_recurrence(self) -> Array | None:
        """lambda ``[N]`` of a linear cell with a constant diagonal recurrence (None for the others)."""
        return None


def gate(z: Array, slope: float) -> Array:
    """A sigmoid gate with slope (inverse temperature) beta: sigma(beta * z).

    beta > 1 gives steeper gates that saturate sooner; beta = 1 is the standard gate.
    """
    return jax.nn.sigmoid(z if slope == 1.0 else slope * z)


def per_block(block_init, num_blocks: int):
    """Initializer for ``[H, num_blocks*H]``: ``block_init`` applied to each gate's ``[H, H]`` on its own."""

    def init(key, shape, dtype=jnp.float32):
        h = shape[0]
        if shape[1] != num_blocks * h:
            raise ValueError(f"per_block expects [H, {num_blocks}H], got {shape}")
        keys = jax.random.split(key, num_blocks)
        return jnp.concatenate([block_init(k, (h, h), dtype) for k in keys], axis=1)

    return init
