"""rnnlab: recurrent networks in JAX/Flax — cells, one time loop, diagnostics of vanishing gradients.

This module re-exports the public API and, once per process, keeps freed host memory for reuse
(``rnnlab.hostmem``: XLA:CPU's per-step buffers are not mapped and unmapped anew every step).
"""

from rnnlab import hostmem as _hostmem
from rnnlab.cells import CELLS, CellSpec, cell_options, get_cell
from rnnlab.layers import Bidirectional, StackedRNN, masked_mean
from rnnlab.models import SequenceModel
from rnnlab.scan import RNN, flip_sequences, zero_probes

__version__ = "0.1.0"

_hostmem.keep_freed_memory()

__all__ = [
    "CELLS",
    "RNN",
    "Bidirectional",
    "CellSpec",
    "SequenceModel",
    "StackedRNN",
    "cell_options",
    "flip_sequences",
    "get_cell",
    "masked_mean",
    "zero_probes",
]
