"""The ``RNN`` module: runs a cell over a batch of sequences with the :class:`~rnnlab.scan.dispatch.Plan`
that :func:`~rnnlab.scan.dispatch.resolve` picks (see :mod:`rnnlab.scan` for what every plan shares).

Shape legend: B batch, T time, D input features, H hidden size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import errors as flax_errors
from flax import linen as nn

from rnnlab import fused
from rnnlab.cells.base import RecurrentCell
from rnnlab.scan.dispatch import Backend, LoopOptions, Plan, default_platform, resolve
from rnnlab.scan.loops import (
    associative_linear_scan,
    check_lengths,
    chunked_scan,
    flip_sequences,
    sequence_mask,
    sequential_scan,
)

Array = jax.Array


class RNN(nn.Module):
    """Runs ``cell`` over a batch of sequences.

    Attributes:
      cell: a :class:`~rnnlab.cells.base.RecurrentCell` (e.g. ``rnnlab.get_cell('lstm', hidden_size=128)``).
      reverse: process each sequence's valid part from its last step to its first.
      unroll: ``lax.scan`` unroll factor (keep 1 on CPU: larger was slower there).
      remat: checkpoint the loop body (recompute activations in the backward pass).
      remat_chunk: if > 0, checkpoint chunks of this many steps (their input projection included) instead
        of single steps (implies ``remat``): the memory-lean choice for long sequences.
      mode: ``'sequential'``, ``'associative'`` (linear cells only) or ``'auto'`` (associative on GPU/TPU for
        linear cells, sequential on CPU, where it was faster).
      hoist: ``True`` projects the inputs of all steps before the loop (one matmul), ``False`` inside the
        loop step by step, ``'auto'`` by platform (inside on CPU, where it measured faster; hoisted on
        GPU/TPU). The associative scan always hoists; ``remat_chunk`` projects per chunk.
      backend: ``'auto'`` (a whole-sequence kernel where the cell has one and it applies, else ``'xla'``),
        ``'xla'`` (differentiate the ``lax.scan``), ``'fused'`` (LSTM/GRU custom VJP; falls back to ``'xla'``
        for peephole/CIFG LSTMs, ``remat`` and gate collection; forward-mode AD needs ``'xla'``),
        ``'native'`` (the same kernels compiled from C++ through ``jax.ffi``; CPU, float32/64, what
        ``'auto'`` runs on CPU; where no compiler built them, ``'fused'``) or ``'cudnn'`` (the LSTM through
        cuDNN, on a GPU in float32, without probes, peepholes, CIFG or a gate_slope other than 1;
        elsewhere it falls back to what ``'auto'`` picks).

    The knobs are resolved by :func:`resolve` (see :meth:`plan`); an invalid value fails at the first call.
    """

    cell: RecurrentCell
    reverse: bool = False
    unroll: int = 1
    remat: bool = False
    remat_chunk: int = 0
    mode: str = "auto"
    hoist: bool | str = "auto"
    backend: str = "auto"

    def plan(self, *, collect: bool = False, probes: bool = False, dtype=None, platform=None) -> Plan:
        """The :class:`Plan` a call runs with (``platform`` defaults to :func:`default_platform`)."""
        options = LoopOptions(self.backend, self.mode, self.hoist, self.unroll, self.remat, self.remat_chunk)
        platform = default_platform() if platform is None else platform
        return resolve(self.cell, options, platform, collect=collect, probes=probes, dtype=dtype)

    @nn.compact
    def __call__(self, x: Array, lengths: Array | None = None, initial_carry=None, probes=None):
        """Run the cell over ``x``.

        Args:
          x: ``[B, T, D]`` inputs.
          lengths: ``[B]`` valid lengths (0 <= lengths <= T), or None when every sequence has length T.
          initial_carry: the cell's carry for batch ``[B]``; zeros by default.
          probes: carry-shaped zeros with leaves ``[B, T, ...]`` (see :func:`zero_probes`); their gradient is
            dL/d(carry_t). Entries on padded steps are ignored.

        Returns:
          ``(final_carry, y)`` with ``y: [B, T, H]``, exactly zero on padded steps.
        """
        x = jnp.asarray(x)
        if x.ndim != 3:
            raise ValueError(
                f"RNN expects x of shape [B, T, D], got shape {x.shape} (rank {x.ndim}); "
                "add a batch axis (x[None]) or a feature axis (x[..., None])."
            )
        b, t, _ = x.shape
        lengths = check_lengths(lengths, b, t)
        cell = self.cell
        collect = self.is_mutable_collection("intermediates")
        dtype = jnp.promote_types(x.dtype, cell.param_dtype)
        plan = self.plan(collect=collect, probes=probes is not None, dtype=dtype)
        carry = cell.init_carry(None, (b,)) if initial_carry is None else initial_carry

        if self.reverse:
            x = flip_sequences(x, lengths)
            if probes is not None:
                probes = jax.tree.map(lambda p: flip_sequences(p, lengths), probes)
        xt = jnp.swapaxes(x, 0, 1)  # [T, B, D]
        mask = None if lengths is None else sequence_mask(lengths, t).T  # [T, B]
        pt = None if probes is None else jax.tree.map(lambda p: jnp.swapaxes(p, 0, 1), probes)
        if pt is not None and mask is not None:
            pt = jax.tree.map(
                lambda p: p * mask.reshape(mask.shape + (1,) * (p.ndim - 2)).astype(p.dtype), pt
            )

        # Create (or shape-check) every parameter, then run the loop on pure functions of them.
        try:
            xp = cell.project_inputs(xt if plan.hoist else xt[:1])
        except flax_errors.ScopeParamShapeError as e:
            raise ValueError(
                f"input feature size D = {x.shape[-1]} differs from the one this "
                f"{type(cell).__name__} was initialised with; re-initialise the model or pass "
                f"inputs with the original D. ({e})"
            ) from None
        params = cell.variables.get("params", {})
        fns = _PureCell(cell, collect)
        # The step computes in promote(input dtype, param dtype); give the carry that dtype from the start.
        if t > 0:
            out = jax.eval_shape(lambda c, v: fns.step(params, c, fns.project(params, v))[0], carry, xt[0])
            carry = jax.tree.map(lambda c, o: c.astype(o.dtype), carry, out)
        final, ys, auxs = _run(plan, cell, fns, params, carry, xp if plan.hoist else xt, mask, pt, collect)

        y = jnp.swapaxes(ys, 0, 1)
        if self.reverse:
            y = flip_sequences(y, lengths)
        if collect and auxs:
            auxs = jax.tree.map(lambda g: jnp.swapaxes(g, 0, 1), auxs)
            if self.reverse:
                auxs = jax.tree.map(lambda g: flip_sequences(g, lengths), auxs)
            self.sow("intermediates", "gates", auxs)
            if lengths is not None:
                self.sow("intermediates", "mask", sequence_mask(lengths, t))
        return final, y


def _run(plan: Plan, cell, fns, params, carry, xs, mask, pt, collect: bool):
    """``(final carry, ys [T, B, H], gates or None)``: ``plan`` on time-major ``xs`` (projected iff
    ``plan.hoist``), ``mask: [T, B]``, probes ``pt`` (leaves ``[T, B, ...]``)."""
    if plan.backend is Backend.ASSOCIATIVE:
        a, b = fns.linear_coeffs(params, xs)
        h = associative_linear_scan(a, b, carry, mask, pt)
        final = h[-1] if h.shape[0] else carry
        # y_t is read from the state before the probe is added, as in the sequential loop.
        ys = fns.readout(params, h if pt is None else h - pt, xs)
        if mask is not None:
            ys = jnp.where(mask[..., None], ys, jnp.zeros_like(ys))
        return final, ys, None
    if plan.backend in (Backend.FUSED, Backend.NATIVE, Backend.CUDNN):
        kernel = fused.kernel_for(plan.backend.value, cell)
        final, ys = kernel.run(cell, params, carry, xs, mask, pt, unroll=plan.unroll, hoisted=plan.hoist)
        return final, ys, None
    project = lambda x: fns.project(params, x)
    if plan.chunk:
        step = lambda c, xp_t: fns.step(params, c, xp_t)
        return chunked_scan(
            project, step, carry, xs, mask, pt, chunk=plan.chunk, unroll=plan.unroll, collect=collect
        )
    if plan.hoist:
        step = lambda c, xp_t: fns.step(params, c, xp_t)
    else:
        step = lambda c, x_t: fns.step(params, c, project(x_t))
    return sequential_scan(step, carry, xs, mask, pt, unroll=plan.unroll, remat=plan.remat, collect=collect)


class _PureCell:
    """The cell's methods as pure functions of its parameters (for use inside lax loops)."""

    def __init__(self, cell: RecurrentCell, collect: bool):
        self.cell = cell.clone(parent=None)
        self.collect = collect

    def _apply(self, method, params, *args, mutable=False):
        return self.cell.apply({"params": params}, *args, method=method, mutable=mutable)

    def project(self, params, x):
        return self._apply(type(self.cell).project_inputs, params, x)

    def step(self, params, carry, xp):
        if not self.collect:
            carry, y = self._apply(type(self.cell).step, params, carry, xp)
            return carry, y, None
        (carry, y), state = self._apply(type(self.cell).step, params, carry, xp, mutable=["intermediates"])
        gates = state.get("intermediates", {}).get("gates", ({},))[0]
        return carry, y, gates

    def linear_coeffs(self, params, xp):
        return self._apply(type(self.cell).linear_coeffs, params, xp)

    def readout(self, params, h, xp):
        return self._apply(type(self.cell).readout, params, h, xp)
