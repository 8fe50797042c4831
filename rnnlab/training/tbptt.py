"""Truncated backpropagation through time for language models (Williams & Peng 1990; the PTB LMs of Zaremba
et al. 2014): each seed's text is read as B contiguous streams, chunk after chunk, and the RNN's final state
of one chunk is the next chunk's initial state. The state crosses the boundary as a constant (a step input,
stopped), so gradients flow back ``T`` steps at most while the memory reaches further.

Shapes: **K** seeds, **B** batch (streams), **T** chunk length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab.training.adapters import Adapter
from rnnlab.training.state import example_inputs


def reset_carry(carry, reset: jax.Array | None):
    """Zero the carry rows where ``reset [B]`` is nonzero (a stream's first chunk of an epoch)."""
    if reset is None:
        return carry
    return jax.tree.map(lambda c: jnp.where((reset != 0).reshape((-1,) + (1,) * (c.ndim - 1)), 0, c), carry)


def zero_carry(model, info, batch_size: int, num_seeds: int):
    """Zero initial carries ``[K, B, ...]`` of a model that takes ``initial_carries`` / ``return_carries``
    (shapes from ``jax.eval_shape``: nothing runs)."""
    inputs = np.zeros((batch_size,) + example_inputs(info).shape[1:], example_inputs(info).dtype)
    shapes = jax.eval_shape(
        lambda k: model.init_with_output(k, inputs, return_carries=True)[0][1], jax.random.key(0)
    )
    return jax.tree.map(lambda s: jnp.zeros((num_seeds, *s.shape), s.dtype), shapes)


@dataclasses.dataclass(frozen=True)
class TBPTT(Adapter):
    """Truncated BPTT over contiguous streams (``task.iterator(..., stream=True)``, batches with ``reset``).

    Attributes:
      model: a model with ``initial_carries`` / ``return_carries`` (``SequenceModel``).
      info: the task's ``TaskInfo`` (for the carry's shapes).
    """

    info: Any = None

    def forward(self, params, batch, *, train: bool, rngs=None, carry=None) -> tuple[Any, Any]:
        """Outputs ``[B, T, V]`` from ``carry`` (zeroed on rows with ``batch['reset']``), and the final
        carries, as constants for the next chunk."""
        outputs, carry = self.model.apply(
            {"params": params},
            batch["inputs"],
            batch["lengths"],
            train=train,
            rngs=rngs,
            initial_carries=reset_carry(carry, batch.get("reset")),
            return_carries=True,
        )
        return outputs, jax.lax.stop_gradient(carry)

    def train_iterator(self, task, batch_size: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        return task.iterator("train", batch_size, seed, stream=True)

    def initial_carry(self, batch_size: int, num_seeds: int) -> Any:
        return zero_carry(self.model, self.info, batch_size, num_seeds)

    def eval_batches(self, task, batch_size: int, split: str = "test") -> Iterator[dict[str, np.ndarray]]:
        """``split`` read as B contiguous streams in order (the last chunk padded, masked by its
        lengths)."""
        return task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False, stream=True)
