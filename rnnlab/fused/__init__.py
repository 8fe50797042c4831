"""Whole-sequence kernels for LSTM and GRU, and the registry through which the time loop finds them.

Shape legend: B batch, T time, D input features, H hidden size, G gates (LSTM 4, GRU 3).

:mod:`rnnlab.scan` asks :func:`kernel_for` ``(backend, cell)`` for a :class:`SequenceKernel` and never looks
at concrete cell classes. Registered here, for :class:`~rnnlab.cells.LSTMCell` and
:class:`~rnnlab.cells.GRUCell`:

* ``'fused'``: custom VJPs written in JAX (:mod:`rnnlab.fused.vjp`), any platform and dtype;
* ``'native'``: the same passes as compiled C++ through ``jax.ffi`` (:mod:`rnnlab.fused.native`), CPU,
  float32/float64, where a C++ compiler could build them (:mod:`rnnlab.fused.build`); CPU default;
* ``'cudnn'`` (LSTM only): cuDNN through ``jax.experimental.rnn.lstm`` (:mod:`rnnlab.fused.cudnn`), GPU,
  float32.

Peephole and CIFG LSTMs are covered by none of them (the time loop runs its XLA scan).
Measured speed and memory against the XLA scan, Flax and PyTorch: README.md, "Speed".
"""

from rnnlab.cells.gated import GRUCell, LSTMCell
from rnnlab.fused import cudnn, native, vjp
from rnnlab.fused.registry import SequenceKernel, cell_classes, kernel_for, register
from rnnlab.fused.vjp import gru_sequence, lstm_sequence

__all__ = [
    "SequenceKernel",
    "cell_classes",
    "gru_sequence",
    "kernel_for",
    "lstm_sequence",
    "register",
]


def _plain_lstm(cell) -> bool:
    return not (cell.peephole or cell.cifg)


register("fused", LSTMCell, SequenceKernel(vjp.run_lstm, lambda cell, **_: _plain_lstm(cell)))
register("fused", GRUCell, SequenceKernel(vjp.run_gru, lambda cell, **_: True))
register("native", LSTMCell, SequenceKernel(native.run_lstm, native.accepts, hoist=False))
register("native", GRUCell, SequenceKernel(native.run_gru, native.accepts, hoist=False))
register("cudnn", LSTMCell, SequenceKernel(cudnn.run_lstm, cudnn.accepts, hoist=False))
