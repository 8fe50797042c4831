"""All diagnostics of one model at once, as a flat dict of floats and lists for the metrics files.

Shape legend: T time, L layers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.analysis.discovery import LossFn, forward_layer, trace_layers
from rnnlab.analysis.gates import (
    SATURATION_HIGH,
    SATURATION_LOW,
    collected_gates,
    layer_gate_statistics,
)
from rnnlab.analysis.gradients import fit_decay_rate, fit_log_decay_rate, grad_norms_per_layer
from rnnlab.analysis.jacobians import cell_jacobian_products
from rnnlab.analysis.spectrum import recurrent_spectrum

Array = jax.Array


def _gates(gates: Mapping[str, Array], mask, forget_gate, low: float, high: float) -> dict[str, Array]:
    """The flat gate entries of one layer (nothing for cells that sow no gates)."""
    if not gates:
        return {}
    out = {}
    for name, st in layer_gate_statistics(gates, mask, forget_gate, low=low, high=high).items():
        if name == "time_constant":
            out["forget_time_constant_mean"] = st["mean"]
            out["forget_time_constant_median"] = st["median"]
        else:
            out[f"gate_{name}_mean"] = st["mean"]
            out[f"gate_{name}_saturated"] = st["saturated"]
    return out


def _record_arrays(model, loss_fn, params, batch, *, layer, jacobian, index, low, high):
    lengths = batch.get("lengths")
    out = {}
    norms = grad_norms_per_layer(loss_fn, model, params, batch, align="end")  # [L, T]
    out["grad_norm_t"] = norms[layer]
    out["log_decay_rate"] = fit_log_decay_rate(norms[layer])
    out["decay_rate"] = jnp.exp(out["log_decay_rate"])
    if norms.shape[0] > 1:
        for k in range(norms.shape[0]):
            out[f"grad_norm_t_layer{k}"] = norms[k]
            out[f"decay_rate_layer{k}"] = fit_decay_rate(norms[k])
    # One forward pass finds the layer (its cell, parameters and inputs) and collects its gates.
    layers, collected = trace_layers(model, params, batch["inputs"], lengths, intermediates=True)
    found = forward_layer(layers, layer)
    if jacobian:
        length = None if lengths is None else lengths[index]
        jac = cell_jacobian_products(found.cell, found.params, found.inputs[index], length)
        out["jac_norm_t"] = jac["norm"]
        out["jac_sigma_max_t"] = jac["sigma_max"]
        out["jac_decay_rate"] = jac["decay_rate"]
        out["jac_log_decay_rate"] = jac["log_decay_rate"]
    out.update(_gates(*collected_gates(collected, found), found.cell.forget_gate, low, high))
    spec = recurrent_spectrum(found.cell, found.params)
    if not spec["blocks"]:  # no recurrent weights (minGRU): nothing to record, rather than NaNs in a report
        return out
    for key in ("sigma_max", "spectral_radius", "pascanu_bound", "vanishing_guaranteed"):
        out[key] = jnp.asarray(spec[key], jnp.float32)
    for name, blk in spec["blocks"].items():
        out[f"sigma_max_{name}"] = blk["sigma_max"]
        out[f"spectral_radius_{name}"] = blk["spectral_radius"]
    return out


def _to_python(values: Mapping[str, Array]) -> dict[str, float | list[float]]:
    out = {}
    for k, v in values.items():
        a = np.asarray(v, np.float64)
        out[k] = float(a) if a.ndim == 0 else a.tolist()
    return out


def make_recorder(
    model,
    loss_fn: LossFn,
    *,
    layer: int = 0,
    jacobian: bool = True,
    index: int = 0,
    low: float = SATURATION_LOW,
    high: float = SATURATION_HIGH,
    jit: bool = True,
) -> Callable:
    """A function ``recorder(params, batch) -> dict`` (compiled once) for ``model`` and its ``loss_fn``.

    The flat dict holds Python floats and lists (ready for ``metrics.jsonl``):

    * ``grad_norm_t`` ``[T]`` — ||dL/dh_t|| of ``layer``, each sequence right-aligned (index t is distance
      T - 1 - t from its last valid step); ``decay_rate``, ``log_decay_rate`` fitted to it; for deeper
      models also ``grad_norm_t_layer{l}``, ``decay_rate_layer{l}``.
    * ``jac_norm_t``, ``jac_sigma_max_t`` ``[T]``, ``jac_decay_rate``, ``jac_log_decay_rate`` — the Jacobian
      products on sequence ``index`` (``jacobian=False`` skips them: O(T S^3)).
    * ``gate_<g>_mean``, ``gate_<g>_saturated`` per gate; ``forget_time_constant_mean/median`` (cells with a
      forget gate: the LSTM).
    * ``sigma_max``, ``spectral_radius``, ``pascanu_bound``, ``vanishing_guaranteed`` (0/1) and per block
      ``sigma_max_<b>``, ``spectral_radius_<b>`` (cells with recurrent weights: not the minGRU).

    ``layer`` counts the model's forward-reading recurrent layers. Gradient clipping is not recorded here:
    training logs ``grad_norm`` and ``clip_fired`` every step.
    """
    core = functools.partial(
        _record_arrays, model, loss_fn, layer=layer, jacobian=jacobian, index=index, low=low, high=high
    )
    core = jax.jit(core) if jit else core

    def recorder(params, batch):
        batch = {k: v for k, v in batch.items() if hasattr(v, "shape")}
        return _to_python(core(params, batch))

    return recorder


def record(model, params, batch: Mapping[str, Array], loss_fn: LossFn, **kwargs) -> dict[str, Any]:
    """One-off :func:`make_recorder` call (compiles each time; build a recorder once for training loops).

    ``kwargs``: the options of :func:`make_recorder`.
    """
    return make_recorder(model, loss_fn, **kwargs)(params, batch)


def extra_metric(model, loss_fn: LossFn, **kwargs) -> Callable:
    """``fn(state, batch) -> dict`` for ``train_and_evaluate(..., extra_metrics=[fn])``, on
    ``state.params``."""
    recorder = make_recorder(model, loss_fn, **kwargs)
    return lambda state, batch: recorder(state.params, batch)
