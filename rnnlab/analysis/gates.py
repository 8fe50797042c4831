"""Gate statistics per time step: mean and saturated fraction of every gate, and the memory time constant.

Shape legend: B batch, T time, H hidden size.

Cells sow their gates per step (``self.sow('intermediates', 'gates', ...)``); the time loop stacks them into
``[B, T, H]`` and sows the valid-step mask. A saturated sigmoid gate (near 0 or 1) passes almost no gradient
through its pre-activation; a forget gate near 1 keeps memory for about 1 / (1 - f) steps (Gers et al. 2000;
the quantity chrono initialisation sets, Tallec & Ollivier 2018).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from rnnlab.analysis.discovery import Layer, trace_layers

Array = jax.Array
SATURATION_LOW, SATURATION_HIGH = 0.05, 0.95


def _one_gate(g: Array, m: Array, low: float, high: float) -> dict[str, Array]:
    """``g: [B, T, H]``, ``m: [B, T]`` float mask -> per-step and overall mean / saturated fraction."""
    h = g.shape[-1]
    sat = ((g < low) | (g > high)).astype(g.dtype)
    count_t = m.sum(0) * h

    def per_t(v):
        return jnp.where(count_t > 0, (v * m[..., None]).sum((0, 2)) / jnp.maximum(count_t, 1), jnp.nan)

    total = jnp.maximum(count_t.sum(), 1)
    return {
        "mean_t": per_t(g),
        "saturated_t": per_t(sat),
        "mean": (g * m[..., None]).sum() / total,
        "saturated": (sat * m[..., None]).sum() / total,
    }


def forget_time_constant(f: Array, mask: Array | None = None) -> dict[str, Array]:
    """The LSTM forget gate's time constant per unit, tau_h = 1 / (1 - mean_{b,t} f), over units.

    With c_t = f c_{t-1} + ..., a constant f forgets as f^k = exp(-k / tau) for k >> 1 (tau ~ 1 / (1 - f));
    chrono initialisation (Tallec & Ollivier 2018) sets exactly this quantity. ``f: [B, T, H]``,
    ``mask: [B, T]``. Returns ``mean`` and ``median`` of tau over the H units.
    """
    m = jnp.ones(f.shape[:2], f.dtype) if mask is None else jnp.asarray(mask, f.dtype)
    f_bar = (f * m[..., None]).sum((0, 1)) / jnp.maximum(m.sum(), 1)  # [H]
    tau = 1.0 / jnp.maximum(1.0 - f_bar, 1e-6)
    return {"mean": tau.mean(), "median": jnp.median(tau)}


def layer_gate_statistics(
    gates: dict[str, Array],
    mask: Array | None = None,
    forget_gate: str | None = None,
    *,
    low: float = SATURATION_LOW,
    high: float = SATURATION_HIGH,
) -> dict[str, dict]:
    """Statistics of one layer's gates ``{name: [B, T, H]}`` on the valid steps of ``mask: [B, T]``.

    Returns ``{gate: stats}`` with ``stats`` = ``mean_t, saturated_t: [T]`` (over valid (b, h); NaN where no
    sequence is valid) and scalars ``mean``, ``saturated`` (over all valid entries). A gate is saturated when
    it is < ``low`` or > ``high``. With ``forget_gate`` (the cell's, e.g. the LSTM's ``'f'``) also
    ``'time_constant': {'mean', 'median'}`` (:func:`forget_time_constant`).
    """
    first = next(iter(gates.values()))
    mask = jnp.ones(first.shape[:2], bool) if mask is None else mask
    m = mask.astype(first.dtype)
    stats = {name: _one_gate(g, m, low, high) for name, g in sorted(gates.items())}
    if forget_gate in gates:
        stats["time_constant"] = forget_time_constant(gates[forget_gate], mask)
    return stats


def gate_statistics(model, params, inputs: Array, lengths: Array | None = None, **kwargs) -> dict[str, dict]:
    """Run ``model`` on ``inputs: [B, T, D]`` (``lengths: [B]``) collecting the gates of every RNN.

    Returns ``{layer_path: {gate: stats}}`` (see :func:`layer_gate_statistics`; ``kwargs``: ``low``,
    ``high``) with ``layer_path`` the RNN's module path, like ``'rnn/layer0'`` (``'.../forward'`` and
    ``'.../backward'`` for bidirectional layers). Cells that sow no gates (rnn, irnn, lru) are left out.
    """
    layers, collected = trace_layers(model, params, inputs, lengths, intermediates=True)
    out = {}
    for layer in layers:
        gates, mask = collected_gates(collected, layer)
        if gates:
            out[layer.name] = layer_gate_statistics(gates, mask, layer.cell.forget_gate, **kwargs)
    return out


def collected_gates(collected: Mapping, layer: Layer) -> tuple[dict[str, Array], Array | None]:
    """The gates ``{name: [B, T, H]}`` (empty if none) and the mask ``[B, T]`` (None without lengths) that
    the time loop sowed for ``layer`` into the ``'intermediates'`` collection ``collected``."""
    node = collected
    for key in layer.path:
        node = node.get(key, {})
    return node.get("gates", ({},))[0], (node["mask"][0] if "mask" in node else None)
