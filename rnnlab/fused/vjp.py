"""The fused LSTM and GRU in JAX: one custom VJP over the whole sequence, on any platform.

Shape legend: B batch, T time, D input features, H hidden size, G gates (LSTM 4, GRU 3). All arrays are
time-major.

Why: differentiating ``lax.scan`` over a cell makes JAX accumulate dW_hh (``[H, G*H]``) inside the backward
loop, one small rank-B update per step. Here the backward loop carries only the state gradients (dc, dh),
emits the gate pre-activation gradients ``dz: [T, B, G*H]``, and after the loop

* ``dW_hh = sum_t h_{t-1}^T dz_t`` is ONE ``[H, T*B] x [T*B, G*H]`` matmul, and
* ``dxp = dz`` comes out stacked, so the input kernel's gradient (taken by JAX through the hoisted input
  projection outside this kernel) is one matmul too.

With ``input_kernel`` the projection ``x_t W_ih + b`` runs inside the forward loop instead (no
``[T, B, G*H]`` input array) and its gradients are still matmuls after the backward loop. The forward pass
saves only the post-activation gates and the carries (LSTM: i, f, g, o, c_{t-1}, h_t; GRU: r, z, n,
h_{t-1} W_hn + b_hn, h_t) and the backward pass adds the stacked ``dz``. On CPU the compiled kernels of
:mod:`rnnlab.fused.native` do the same in one call per pass (the CPU default where they build).

The forward equations are :func:`rnnlab.cells.gated.lstm_update` and :func:`~rnnlab.cells.gated.gru_update`
(the cells' own; LSTM gates ``(i, f, g, o)``, GRU reset-after ``(r, z, n)``, sigmoid slope ``gate_slope``);
only the backward passes are written here. Results equal ``RNN(cell, backend='xla')`` to float rounding.
Masking and probes follow :mod:`rnnlab.scan`: on steps where ``mask`` is False the carry is frozen and the
output is 0; ``probes`` (carry-shaped, ``[T, B, H]`` leaves) are added to the carry after every step.
Peephole and CIFG LSTMs are not covered (the time loop falls back to its XLA path for them).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from rnnlab.cells.gated import gru_update, lstm_update

Array = jax.Array


def _dgate(s: Array, slope: float) -> Array:
    """d sigma(slope * z) / dz from the gate value s = sigma(slope * z)."""
    d = s * (1.0 - s)
    return d if slope == 1.0 else slope * d


def _select(m, new, old):
    """``new`` where the step is valid (``m: [B]``), else ``old``; no-op without a mask."""
    return new if m is None else jnp.where(m[:, None], new, old)


def _prev(first: Array, seq: Array) -> Array:
    """The sequence shifted by one step: ``[first, seq[0], ..., seq[T-2]]`` (``[T, B, H]``)."""
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _outer_sum(a: Array, b: Array) -> Array:
    """``sum_{t,b} a[t,b]^T b[t,b]`` as one matmul: ``[T, B, H] x [T, B, N] -> [H, N]``."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


# ----------------------------------------------------------------------------------------------------- LSTM


def lstm_sequence(
    recurrent_kernel: Array,
    xp: Array,
    c0: Array,
    h0: Array,
    mask: Array | None = None,
    probes=None,
    *,
    gate_slope: float = 1.0,
    unroll: int = 1,
    input_kernel: Array | None = None,
    input_bias: Array | None = None,
):
    """An LSTM over a whole (projected) sequence, with a fused backward pass.

    Args:
      recurrent_kernel: ``[H, 4H]`` (gates ``i, f, g, o``).
      xp: ``[T, B, 4H]`` projected inputs ``x_t W_ih + b``; with ``input_kernel``, the raw inputs
        ``x: [T, B, D]``, projected step by step inside the loop (cheaper on CPU for small D).
      c0, h0: ``[B, H]`` initial carry.
      mask: ``[T, B]`` bool, True on valid steps, or None.
      probes: ``(p_c, p_h)`` with ``[T, B, H]`` leaves added to the carry after each step, or None.
      gate_slope: sigmoid slope beta of the i, f, o gates.
      unroll: ``lax.scan`` unroll factor for both loops.
      input_kernel, input_bias: ``[D, 4H]``, ``[4H]`` for the in-loop projection (see ``xp``).

    Returns:
      ``(c_T, h_T, ys)`` with ``ys: [T, B, H]`` (0 on masked steps).
    """
    if xp.shape[0] == 0:
        return c0, h0, jnp.zeros((0, *h0.shape), h0.dtype)
    proj = None if input_kernel is None else (input_kernel, input_bias)
    return _lstm(float(gate_slope), int(unroll), recurrent_kernel, xp, c0, h0, mask, probes, proj)


def _project(proj, x_t):
    """The input projection of one step when it runs inside the loop (else ``x_t`` is already projected)."""
    return x_t if proj is None else x_t @ proj[0] + proj[1]


def _project_grads(proj, xs, dxp):
    """(dx, d proj) from the stacked projected-input gradient ``dxp: [T, B, G*H]``: matmuls after the loop."""
    if proj is None:
        return dxp, None
    return dxp @ proj[0].T, (_outer_sum(xs, dxp), jnp.sum(dxp, axis=(0, 1)))


def _lstm_forward(slope, unroll, w, xp, c0, h0, mask, probes, proj, save):
    def body(carry, inp):
        c, h = carry
        xp_t, m_t, p_t = inp
        (c_new, h_new), (i, f, g, o) = lstm_update(_project(proj, xp_t) + h @ w, c, slope)
        c_n, h_n = _select(m_t, c_new, c), _select(m_t, h_new, h)
        if p_t is not None:
            c_n, h_n = c_n + p_t[0], h_n + p_t[1]
        y = None
        if p_t is not None or not save:  # else y is derived from h_n after the loop
            y = _select(m_t, h_new, jnp.zeros_like(h_new))
        saved = (i, f, g, o, c, h_n) if save else None
        return (c_n, h_n), (y, saved)

    (c_t, h_t), (ys, saved) = jax.lax.scan(body, (c0, h0), (xp, mask, probes), unroll=unroll)
    if ys is None:  # no probes: the output is the h carry (zeroed on padded steps)
        h_seq = saved[5]
        ys = h_seq if mask is None else jnp.where(mask[..., None], h_seq, jnp.zeros_like(h_seq))
    return (c_t, h_t, ys), saved


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _lstm(slope, unroll, w, xp, c0, h0, mask, probes, proj):
    out, _ = _lstm_forward(slope, unroll, w, xp, c0, h0, mask, probes, proj, save=False)
    return out


def _lstm_fwd(slope, unroll, w, xp, c0, h0, mask, probes, proj):
    out, saved = _lstm_forward(slope, unroll, w, xp, c0, h0, mask, probes, proj, save=True)
    return out, (w, h0, mask, probes is not None, proj, None if proj is None else xp, saved)


def _lstm_bwd(slope, unroll, res, cts):
    w, h0, mask, has_probes, proj, xs, (i, f, g, o, c_prev, h_seq) = res
    dc_t, dh_t, dys = cts
    wt = w.T

    def body(carry, inp):
        dc, dh = carry
        i, f, g, o, c, dy, m = inp
        dprobe = (dc, dh) if has_probes else None  # d(carry_t), before the mask splits it
        dc_new, dh_new = _select(m, dc, jnp.zeros_like(dc)), _select(m, dh + dy, jnp.zeros_like(dh))
        tc = jnp.tanh(f * c + i * g)
        dcc = dc_new + dh_new * o * (1.0 - tc * tc)
        dz = jnp.concatenate(
            [
                dcc * g * _dgate(i, slope),
                dcc * c * _dgate(f, slope),
                dcc * i * (1.0 - g * g),
                dh_new * tc * _dgate(o, slope),
            ],
            axis=-1,
        )
        dc_prev, dh_prev = dcc * f, dz @ wt
        if m is not None:  # frozen carry on padded steps: its gradient passes straight through
            dc_prev = dc_prev + jnp.where(m[:, None], jnp.zeros_like(dc), dc)
            dh_prev = dh_prev + jnp.where(m[:, None], jnp.zeros_like(dh), dh)
        return (dc_prev, dh_prev), (dz, dprobe)

    (dc0, dh0), (dz, dprobes) = jax.lax.scan(
        body, (dc_t, dh_t), (i, f, g, o, c_prev, dys, mask), reverse=True, unroll=unroll
    )
    dw = h0.T @ dz[0] + _outer_sum(h_seq[:-1], dz[1:])
    dxp, dproj = _project_grads(proj, xs, dz)
    return dw, dxp, dc0, dh0, None, dprobes, dproj


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


# ------------------------------------------------------------------------------------------------------ GRU


def gru_sequence(
    recurrent_kernel: Array,
    recurrent_bias: Array,
    xp: Array,
    h0: Array,
    mask: Array | None = None,
    probes=None,
    *,
    gate_slope: float = 1.0,
    unroll: int = 1,
    input_kernel: Array | None = None,
    input_bias: Array | None = None,
):
    """A reset-after GRU over a whole (projected) sequence, with a fused backward pass.

    Args:
      recurrent_kernel: ``[H, 3H]`` (gates ``r, z, n``).
      recurrent_bias: ``[H]``, b_hn (inside the reset gate's product).
      xp: ``[T, B, 3H]`` projected inputs ``x_t W_ih + b``; with ``input_kernel``, the raw inputs
        ``x: [T, B, D]``, projected step by step inside the loop.
      h0: ``[B, H]`` initial carry.
      mask: ``[T, B]`` bool, True on valid steps, or None.
      probes: ``[T, B, H]`` added to the carry after each step, or None.
      gate_slope: sigmoid slope beta of the r, z gates.
      unroll: ``lax.scan`` unroll factor for both loops.
      input_kernel, input_bias: ``[D, 3H]``, ``[3H]`` for the in-loop projection (see ``xp``).

    Returns:
      ``(h_T, ys)`` with ``ys: [T, B, H]`` (0 on masked steps).
    """
    if xp.shape[0] == 0:
        return h0, jnp.zeros((0, *h0.shape), h0.dtype)
    proj = None if input_kernel is None else (input_kernel, input_bias)
    return _gru(float(gate_slope), int(unroll), recurrent_kernel, recurrent_bias, xp, h0, mask, probes, proj)


def _gru_forward(slope, unroll, w, bhn, xp, h0, mask, probes, proj, save):
    def body(h, inp):
        xp_t, m_t, p_t = inp
        h_new, (r, z, n, hn) = gru_update(_project(proj, xp_t), h @ w, h, bhn, slope)
        h_n = _select(m_t, h_new, h)
        if p_t is not None:
            h_n = h_n + p_t
        y = None
        if p_t is not None or not save:
            y = _select(m_t, h_new, jnp.zeros_like(h_new))
        saved = (r, z, n, hn, h_n) if save else None
        return h_n, (y, saved)

    h_t, (ys, saved) = jax.lax.scan(body, h0, (xp, mask, probes), unroll=unroll)
    if ys is None:
        h_seq = saved[4]
        ys = h_seq if mask is None else jnp.where(mask[..., None], h_seq, jnp.zeros_like(h_seq))
    return (h_t, ys), saved


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _gru(slope, unroll, w, bhn, xp, h0, mask, probes, proj):
    out, _ = _gru_forward(slope, unroll, w, bhn, xp, h0, mask, probes, proj, save=False)
    return out


def _gru_fwd(slope, unroll, w, bhn, xp, h0, mask, probes, proj):
    out, saved = _gru_forward(slope, unroll, w, bhn, xp, h0, mask, probes, proj, save=True)
    return out, (w, h0, mask, probes is not None, proj, None if proj is None else xp, saved)


def _gru_bwd(slope, unroll, res, cts):
    w, h0, mask, has_probes, proj, xs, (r, z, n, hn, h_seq) = res
    dh_t, dys = cts
    wt, hs = w.T, w.shape[0]

    h_prev = _prev(h0, h_seq)

    def body(dh, inp):
        r, z, n, hn, h, dy, m = inp
        dprobe = dh if has_probes else None
        dh_new = _select(m, dh + dy, jnp.zeros_like(dh))
        dan = dh_new * (1.0 - z) * (1.0 - n * n)  # d(pre-tanh of n) = d(n_x)
        # d(h W_hh + [0, 0, b_hn]), [B, 3H]: the r, z columns are also d(x W_ih + b)'s; the n column is
        # d(h W_hn + b_hn) = dan * r, while d(n_x) = dan is emitted alone and joined after the loop (one
        # concatenation per step instead of two; same gradients; x0.98-1.11 in two runs, README "Speed")
        dzh = jnp.concatenate(
            [dan * hn * _dgate(r, slope), dh_new * (h - n) * _dgate(z, slope), dan * r], axis=-1
        )
        dh_prev = dzh @ wt + dh_new * z
        if m is not None:
            dh_prev = dh_prev + jnp.where(m[:, None], jnp.zeros_like(dh), dh)
        return dh_prev, (dzh, dan, dprobe)

    dh0, (dzh, dan, dprobes) = jax.lax.scan(
        body, dh_t, (r, z, n, hn, h_prev, dys, mask), reverse=True, unroll=unroll
    )
    dw = _outer_sum(h_prev, dzh)  # dW_hh = sum_t h_{t-1}^T dzh_t, one matmul
    dbhn = jnp.sum(dzh[..., 2 * hs :], axis=(0, 1))
    dxp = jnp.concatenate([dzh[..., : 2 * hs], dan], axis=-1)  # d(x W_ih + b), [T, B, 3H]
    dxp, dproj = _project_grads(proj, xs, dxp)
    return dw, dbhn, dxp, dh0, None, dprobes, dproj


_gru.defvjp(_gru_fwd, _gru_bwd)


# ------------------------------------------------------------------------------ the registry's entry points


def _projection(cell, params, unroll: int, hoisted: bool) -> dict:
    """Keyword arguments shared by the two kernels: the slope, unroll, and the in-loop projection."""
    opts = {"gate_slope": cell.gate_slope, "unroll": unroll}
    if not hoisted:
        opts.update(input_kernel=params["input"]["kernel"], input_bias=params["input"]["bias"])
    return opts


def run_lstm(cell, params, carry, xs, mask, probes, *, unroll, hoisted):
    """:class:`~rnnlab.fused.registry.SequenceKernel` ``run`` of the LSTM (see there)."""
    opts = _projection(cell, params, unroll, hoisted)
    c, h, ys = lstm_sequence(params["recurrent_kernel"], xs, carry[0], carry[1], mask, probes, **opts)
    return (c, h), ys


def run_gru(cell, params, carry, xs, mask, probes, *, unroll, hoisted):
    """:class:`~rnnlab.fused.registry.SequenceKernel` ``run`` of the GRU (see there)."""
    opts = _projection(cell, params, unroll, hoisted)
    return gru_sequence(params["recurrent_kernel"], params["recurrent_bias"], xs, carry, mask, probes, **opts)
