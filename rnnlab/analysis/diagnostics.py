"""Vanishing-gradient diagnostics: why plain RNNs fail on long sequences and how gating fixes it.

The public functions of the diagnostics modules, importable from one place:

* :mod:`~rnnlab.analysis.gradients` — ||dL/dh_t|| for every t in one backward pass through zero probes
  (:func:`grad_norms_per_step`) and the per-step decay rate fitted to it (:func:`fit_decay_rate`);
* :mod:`~rnnlab.analysis.jacobians` — ||dh_T/dh_t|| and its largest singular value from products of
  per-step Jacobians (:func:`state_jacobian_products`, :func:`jacobian_products`);
* :mod:`~rnnlab.analysis.gates` — mean and saturated fraction of every gate per step, the forget gate's
  time constant (:func:`gate_statistics`);
* :mod:`~rnnlab.analysis.spectrum` — the recurrent weights' spectrum against Pascanu et al.'s (2013)
  bound (:func:`recurrent_spectrum`);
* :mod:`~rnnlab.analysis.recorder` — everything at once for the metrics files (:func:`make_recorder`,
  :func:`record`, :func:`extra_metric`);
* :mod:`~rnnlab.analysis.discovery` — the recurrent layers of a model, found by running it
  (:func:`trace_layers`), and :func:`model_loss_fn`.
"""

from rnnlab.analysis.discovery import LossFn, layer_inputs, model_loss_fn, trace_layers
from rnnlab.analysis.gates import forget_time_constant, gate_statistics
from rnnlab.analysis.gradients import (
    fit_decay_rate,
    fit_log_decay_rate,
    grad_norms_per_layer,
    grad_norms_per_step,
)
from rnnlab.analysis.jacobians import cell_jacobian_products, jacobian_products, state_jacobian_products
from rnnlab.analysis.recorder import extra_metric, make_recorder, record
from rnnlab.analysis.spectrum import matrix_spectrum, recurrent_spectrum

__all__ = [
    "LossFn",
    "cell_jacobian_products",
    "extra_metric",
    "fit_decay_rate",
    "fit_log_decay_rate",
    "forget_time_constant",
    "gate_statistics",
    "grad_norms_per_layer",
    "grad_norms_per_step",
    "jacobian_products",
    "layer_inputs",
    "make_recorder",
    "matrix_spectrum",
    "model_loss_fn",
    "record",
    "recurrent_spectrum",
    "state_jacobian_products",
    "trace_layers",
]
