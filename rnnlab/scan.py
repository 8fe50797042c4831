"""The time loop: the only code in rnnlab that iterates over time.

Shape legend: B batch, T time, D input features, H hidden size, G gates.

``RNN(cell)`` runs any cell over ``x: [B, T, D]``. Inside, the cell becomes two pure functions —
``project(params, x)`` and ``step(params, carry, xp_t)`` — and the loop is a plain ``jax.lax.scan`` (or, for
linear cells, ``jax.lax.associative_scan``):

* **hoisted input projection**: ``x W_ih`` for all T steps is one matmul before the loop;
* **exact masking** with ``lengths: [B]``: on padded steps the carry is frozen and the output is exactly 0, so
  the final carry is the carry after each sequence's last valid step (the initial carry for length 0);
* **reverse** runs each sequence's *valid part* backwards (padding stays at the end);
* **probes**: zeros added to the carry after every step; ``grad(loss)(probes)`` is dL/d(carry_t) for every t
  in one backward pass (the vanishing-gradient diagnostic);
* **remat**: ``jax.checkpoint`` of the step (``remat=True``) or of chunks of ``remat_chunk`` steps with their
  input projection (the memory-lean choice for long sequences);
* **backend**: ``'fused'`` runs LSTM/GRU through :mod:`rnnlab.kernels` (a custom VJP whose weight gradient is
  one matmul after the backward loop); ``'xla'`` differentiates the ``lax.scan`` above.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import errors as flax_errors
from flax import linen as nn

from rnnlab import kernels
from rnnlab.cells.base import RecurrentCell
from rnnlab.cells.gated import GRUCell, LSTMCell

Array = jax.Array
MODES = ("auto", "sequential", "associative")
BACKENDS = ("auto", "fused", "xla")


def flip_sequences(x: Array, lengths: Array | None, time_axis: int = 1) -> Array:
    """Reverse the first ``lengths[b]`` steps of each sequence; padding stays where it is.

    Args:
      x: ``[B, T, ...]`` (or time-major with ``time_axis=0``: ``[T, B, ...]``).
      lengths: ``[B]`` int, or None (reverse everything).
    """
    if lengths is None:
        return jnp.flip(x, axis=time_axis)
    t = x.shape[time_axis]
    steps = jnp.arange(t)[None, :]  # [1, T]
    lens = lengths[:, None]  # [B, 1]
    idx = jnp.where(steps < lens, lens - 1 - steps, steps)  # [B, T]
    if time_axis == 0:
        idx = idx.T  # [T, B]
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=time_axis)


def sequence_mask(lengths: Array | None, t: int) -> Array | None:
    """``[B, T]`` bool, True on valid steps."""
    return None if lengths is None else jnp.arange(t)[None, :] < lengths[:, None]


def zero_probes(carry, t: int):
    """Zero probes for ``RNN(..., probes=...)``: the carry's structure with a time axis, leaves ``[B, T, ...]``."""
    return jax.tree.map(lambda c: jnp.zeros((c.shape[0], t, *c.shape[1:]), c.dtype), carry)


def _where(mask, new, old):
    """Select ``new`` where ``mask`` ([B]) else ``old``, for every leaf of a carry."""
    return jax.tree.map(
        lambda n, o: jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o), new, old
    )


def _check_lengths(lengths, b: int, t: int):
    if lengths is None:
        return None
    if jnp.shape(lengths) != (b,):
        raise ValueError(
            f"lengths must have shape [B] = ({b},), got {jnp.shape(lengths)}; "
            "pass one length per sequence in the batch."
        )
    if not jnp.issubdtype(jnp.asarray(lengths).dtype, jnp.integer):
        raise ValueError(f"lengths must be integers, got dtype {jnp.asarray(lengths).dtype}.")
    if not isinstance(lengths, jax.core.Tracer):
        concrete = np.asarray(lengths)  # numpy, so a concrete array closed over by a jitted fn is checked too
        lo, hi = (int(concrete.min()), int(concrete.max())) if concrete.size else (0, 0)
        if lo < 0:
            raise ValueError(f"lengths must be >= 0, got a minimum of {lo}.")
        if hi > t:
            raise ValueError(
                f"lengths must be <= T = {t} (the padded length of x), got a maximum of {hi}; "
                "pad x to the longest sequence or fix lengths."
            )
    return jnp.asarray(lengths, jnp.int32)


def sequential_scan(
    step: Callable,
    carry,
    xs,
    mask=None,
    probes=None,
    *,
    unroll: int = 1,
    remat: bool = False,
    collect: bool = False,
):
    """Run ``step(carry, x_t) -> (carry, y_t, aux_t)`` over time-major ``xs`` (leaves ``[T, B, ...]``).

    ``mask: [T, B]`` freezes the carry and zeroes ``y`` on padded steps; ``probes`` (carry-shaped leaves
    ``[T, B, ...]``) are added to the carry after each step. Returns ``(carry, ys, auxs)``, time-major.
    """

    def body(carry, inp):
        x_t, m_t, p_t = inp
        new, y, aux = step(carry, x_t)
        if m_t is not None:
            new = _where(m_t, new, carry)
            y = jnp.where(m_t[:, None], y, jnp.zeros_like(y))
        if p_t is not None:
            new = jax.tree.map(jnp.add, new, p_t)
        return new, ((y, aux) if collect else (y, None))

    if remat:
        body = jax.checkpoint(body, prevent_cse=False)
    carry, (ys, auxs) = jax.lax.scan(body, carry, (xs, mask, probes), unroll=unroll)
    return carry, ys, auxs


def associative_linear_scan(a: Array, b: Array, h0: Array, mask=None, probes=None):
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (+ probe_t) with ``jax.lax.associative_scan``.

    Args: ``a, b: [T, B, N]`` (time-major), ``h0: [B, N]``, ``mask: [T, B]``, ``probes: [T, B, N]``.
    Returns ``h: [T, B, N]``. On padded steps a = 1, b = 0, which freezes the state exactly.
    """
    if mask is not None:
        m = mask[..., None]
        a = jnp.where(m, a, jnp.ones_like(a))
        b = jnp.where(m, b, jnp.zeros_like(b))
    if probes is not None:
        b = b + probes
    # Fold the initial state into the first step: h_1 = a_1 h0 + b_1.
    b = b.at[0].add(a[0] * h0)

    def combine(left, right):
        a_l, b_l = left
        a_r, b_r = right
        return a_r * a_l, a_r * b_l + b_r

    _, h = jax.lax.associative_scan(combine, (a, b), axis=0)
    return h


class RNN(nn.Module):
    """Runs ``cell`` over a batch of sequences.

    Attributes:
      cell: a :class:`~rnnlab.cells.base.RecurrentCell` (e.g. ``rnnlab.get_cell('lstm', hidden_size=128)``).
      reverse: process each sequence's valid part from its last step to its first.
      unroll: ``lax.scan`` unroll factor (keep 1 on CPU: larger is slower there).
      remat: checkpoint the loop body (recompute activations in the backward pass).
      remat_chunk: if > 0, checkpoint chunks of this many steps (their input projection included) instead
        of single steps (implies ``remat``): the memory-lean choice for long sequences.
      mode: ``'sequential'`` (lax.scan), ``'associative'`` (linear cells only) or ``'auto'`` (associative on
        GPU/TPU for linear cells, sequential otherwise — sequential was faster on CPU).
      hoist: ``True`` computes the input projection for all steps before the loop (one matmul); ``False``
        projects inside the loop step by step; ``'auto'`` (default) hoists on GPU/TPU and not on CPU, where
        projecting inside the loop was 15-30% faster at every benchmark shape (README, "Speed").
      backend: ``'fused'`` (LSTMCell/GRUCell only; a ValueError for other cells), ``'xla'`` or ``'auto'``
        (the default: fused wherever it applies, else xla — on CPU the fused kernel was 5-20% faster than
        xla at every benchmarked shape, LSTM and GRU; see ``benchmarks/bench_rnn.py``). The fused kernel is a
        ``jax.custom_vjp``: reverse mode only, so use ``backend='xla'`` for ``jax.jvp``/``jacfwd`` through the layer. The fused kernel covers masking, reverse, probes, unroll,
        ``hoist`` and ``gate_slope``; it falls back to ``'xla'`` automatically for peephole or CIFG LSTMs,
        ``remat`` and when the ``'intermediates'`` collection (gate statistics) is requested.
    """

    cell: RecurrentCell
    reverse: bool = False
    unroll: int = 1
    remat: bool = False
    remat_chunk: int = 0
    mode: str = "auto"
    hoist: bool | str = "auto"
    backend: str = "auto"

    def resolved_backend(self, collect: bool = False) -> str:
        """``'fused'`` or ``'xla'``: the backend this module runs (see ``backend``)."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        fusable = isinstance(self.cell, (LSTMCell, GRUCell))
        if self.backend == "fused" and not fusable:
            raise ValueError(
                f"backend='fused' supports LSTMCell and GRUCell, not {type(self.cell).__name__}; "
                "use backend='xla' or 'auto'."
            )
        if self.backend == "xla" or not fusable:
            return "xla"
        unsupported = (
            self.remat
            or self.remat_chunk
            or collect
            or (isinstance(self.cell, LSTMCell) and (self.cell.peephole or self.cell.cifg))
        )
        return "xla" if unsupported else "fused"

    def resolved_hoist(self, mode: str) -> bool:
        """Whether the input projection runs before the loop (see ``hoist``)."""
        if self.hoist not in (True, False, "auto"):
            raise ValueError(f"hoist must be True, False or 'auto', got {self.hoist!r}")
        if mode == "associative":
            return True  # the associative scan needs every step's coefficients at once
        if self.remat_chunk:
            return False  # each checkpointed chunk projects its own inputs
        if self.hoist == "auto":
            return jax.default_backend() not in ("cpu",)
        return bool(self.hoist)

    def resolved_mode(self) -> str:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.mode == "associative" and not self.cell.linear:
            raise ValueError(
                f"mode='associative' needs a linear cell (lru, mingru), not {type(self.cell).__name__}; "
                "use mode='sequential'."
            )
        if self.mode == "auto":
            parallel_hw = jax.default_backend() in ("gpu", "tpu", "cuda", "rocm")
            return "associative" if (self.cell.linear and parallel_hw) else "sequential"
        return self.mode

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
        lengths = _check_lengths(lengths, b, t)
        mode = self.resolved_mode()
        collect = self.is_mutable_collection("intermediates")
        backend = self.resolved_backend(collect)
        cell = self.cell
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
        hoist = self.resolved_hoist(mode)
        try:
            xp = cell.project_inputs(xt if hoist else xt[:1])
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

        if mode == "associative":
            a, bb = fns.linear_coeffs(params, xp)
            h = associative_linear_scan(a, bb, carry, mask, pt)
            final = h[-1] if t > 0 else carry
            # y_t is read from the state before the probe is added, as in the sequential loop.
            ys = fns.readout(params, h if pt is None else h - pt, xp)
            if mask is not None:
                ys = jnp.where(mask[..., None], ys, jnp.zeros_like(ys))
            auxs = None
        elif backend == "fused":
            final, ys = _fused_scan(
                cell, params, carry, xp if hoist else xt, mask, pt, self.unroll, hoisted=hoist
            )
            auxs = None
        elif self.remat_chunk:
            final, ys, auxs = _chunked_scan(
                fns, params, carry, xt, mask, pt, self.remat_chunk, self.unroll, collect
            )
        else:
            if hoist:
                step = lambda c, xp_t: fns.step(params, c, xp_t)
                xs = xp
            else:
                step = lambda c, x_t: fns.step(params, c, fns.project(params, x_t))
                xs = xt
            final, ys, auxs = sequential_scan(
                step, carry, xs, mask, pt, unroll=self.unroll, remat=self.remat, collect=collect
            )

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


def _fused_scan(cell: RecurrentCell, params, carry, xs, mask, pt, unroll: int, hoisted: bool):
    """The sequence through :mod:`rnnlab.kernels`; returns ``(carry, ys)``.

    ``xs`` is time-major: projected ``[T, B, G*H]`` if ``hoisted``, else raw ``[T, B, D]`` (projected inside
    the loop with the cell's ``input`` Dense parameters).
    """
    opts = {"gate_slope": cell.gate_slope, "unroll": unroll}
    if not hoisted:
        opts.update(input_kernel=params["input"]["kernel"], input_bias=params["input"]["bias"])
    if isinstance(cell, LSTMCell):
        c, h, ys = kernels.lstm_sequence(params["recurrent_kernel"], xs, carry[0], carry[1], mask, pt, **opts)
        return (c, h), ys
    h, ys = kernels.gru_sequence(
        params["recurrent_kernel"], params["recurrent_bias"], xs, carry, mask, pt, **opts
    )
    return h, ys


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


def _chunked_scan(fns: _PureCell, params, carry, xt, mask, pt, chunk: int, unroll: int, collect: bool):
    """Sequential scan over chunks of ``chunk`` steps, each checkpointed with its input projection."""
    t, b = xt.shape[:2]
    n = -(-t // chunk)
    pad = n * chunk - t
    if mask is None:
        mask = jnp.ones((t, b), bool)
    if pad:
        # Padded steps are masked out, which freezes the carry exactly.
        xt = jnp.concatenate([xt, jnp.zeros((pad, *xt.shape[1:]), xt.dtype)])
        mask = jnp.concatenate([mask, jnp.zeros((pad, b), bool)])
        if pt is not None:
            pt = jax.tree.map(lambda p: jnp.concatenate([p, jnp.zeros((pad, *p.shape[1:]), p.dtype)]), pt)
    split = lambda a: a.reshape(n, chunk, *a.shape[1:])
    chunks = (split(xt), split(mask), None if pt is None else jax.tree.map(split, pt))

    @jax.checkpoint
    def run_chunk(carry, inp):
        x_c, m_c, p_c = inp
        xp = fns.project(params, x_c)
        step = lambda c, xp_t: fns.step(params, c, xp_t)
        carry, ys, auxs = sequential_scan(step, carry, xp, m_c, p_c, unroll=unroll, collect=collect)
        return carry, (ys, auxs)

    carry, (ys, auxs) = jax.lax.scan(run_chunk, carry, chunks)
    merge = lambda a: a.reshape(n * chunk, *a.shape[2:])[:t]
    return carry, merge(ys), (None if auxs is None else jax.tree.map(merge, auxs))
