"""The time loop: the only code in rnnlab that iterates over time.

Shape legend: B batch, T time, D input features, H hidden size, G gates.

``RNN(cell)`` runs any cell over ``x: [B, T, D]``. Its knobs ``mode``, ``backend``, ``hoist``, ``remat`` /
``remat_chunk`` and ``unroll`` are turned ONCE, by :func:`resolve`, into a :class:`Plan` for the platform at
hand (the ``'auto'`` choices come from the table :data:`AUTO`). The plan runs one of five implementations,
pure array functions of the cell's parameters (the cell becomes ``project(params, x)`` and
``step(params, carry, xp_t)``):

* ``Backend.XLA``: ``jax.lax.scan`` over the step (:func:`sequential_scan`), or over checkpointed chunks of
  steps (:func:`chunked_scan`, for ``remat_chunk``);
* ``Backend.ASSOCIATIVE``: ``jax.lax.associative_scan`` of a linear cell's h_t = a_t * h_{t-1} + b_t
  (:func:`associative_linear_scan`);
* ``Backend.FUSED``: a whole-sequence kernel with a hand-written backward pass, found in :mod:`rnnlab.fused`'s
  registry for the cell's class (LSTM, GRU);
* ``Backend.NATIVE``: the same LSTM/GRU kernels compiled from C++ and called through ``jax.ffi`` (CPU,
  'auto' picks it where a compiler built it, :mod:`rnnlab.fused.native`);
* ``Backend.CUDNN``: cuDNN's LSTM through ``jax.experimental.rnn.lstm`` (GPU, float32 only).

All of them share:

* **the input projection** ``x W_ih``: hoisted (one matmul for all T steps before the loop; the GPU/TPU
  default) or computed step by step inside the loop (the CPU default, measured faster there);
* **exact masking** with ``lengths: [B]``: on padded steps the carry is frozen and the output is exactly 0, so
  the final carry is the carry after each sequence's last valid step (the initial carry for length 0);
* **reverse**: each sequence's *valid part* runs backwards (padding stays at the end);
* **probes**: zeros added to the carry after every step; ``grad(loss)(probes)`` is dL/d(carry_t) for every t
  in one backward pass (the vanishing-gradient diagnostic). The output y_t is emitted before the probe.

With the ``'intermediates'`` collection mutable, the loop sows the gates the cell sows per step, stacked
``[B, T, H]`` (``'gates'``), and the valid-step mask ``[B, T]`` (``'mask'``), for the gate diagnostics.

Modules: :mod:`~rnnlab.scan.dispatch` (the backends, the per-platform table, :func:`resolve`),
:mod:`~rnnlab.scan.loops` (the loops and masking as pure array functions), :mod:`~rnnlab.scan.rnn` (the
``RNN`` module that runs a plan).
"""

from rnnlab.scan.dispatch import (
    AUTO,
    BACKENDS,
    MODES,
    OPTION_NAMES,
    Backend,
    Defaults,
    LoopOptions,
    Plan,
    check,
    default_platform,
    loop_options,
    resolve,
)
from rnnlab.scan.loops import (
    associative_linear_scan,
    chunked_scan,
    flip_sequences,
    sequence_mask,
    sequential_scan,
    zero_probes,
)
from rnnlab.scan.rnn import RNN

__all__ = [
    "AUTO",
    "BACKENDS",
    "MODES",
    "OPTION_NAMES",
    "RNN",
    "Backend",
    "Defaults",
    "LoopOptions",
    "Plan",
    "associative_linear_scan",
    "check",
    "chunked_scan",
    "default_platform",
    "flip_sequences",
    "loop_options",
    "resolve",
    "sequence_mask",
    "sequential_scan",
    "zero_probes",
]
