"""Which recurrent layers a model runs, found by running it: cells, their parameters and their inputs.

Shape legend: B batch, T time, D input features of a layer.

The diagnostics never walk parameter paths or switch on model or cell types to find a layer. They run the
model once under ``flax.linen.intercept_methods`` and record every :class:`~rnnlab.scan.RNN` call: the RNN's
module path, its cell (detached), the cell's parameters and the inputs the RNN read. Any model built from
``RNN`` modules works (``SequenceModel``, ``Seq2Seq``, a bare ``RNN``, a user's own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell
from rnnlab.scan import RNN, zero_probes

Array = jax.Array
#: ``loss_fn(params, probes, batch) -> scalar``: the training loss with ``probes`` passed to the model.
LossFn = Callable[[Any, Any, Mapping[str, Array]], Array]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One ``RNN`` call of a model.

    Attributes:
      path: the RNN's module path, e.g. ``('rnn', 'layer0', 'forward')`` (``()`` for a bare RNN).
      cell: a detached copy of its cell (``parent=None``), to ``apply`` with ``params``.
      params: the cell's parameters.
      inputs: ``[B, T, D]``, what the RNN read (embeddings, or the outputs of the layer below).
      reverse: whether the RNN reads each sequence backwards.
    """

    path: tuple[str, ...]
    cell: RecurrentCell
    params: Any
    inputs: Array
    reverse: bool

    @property
    def name(self) -> str:
        return "/".join(self.path)


def trace_layers(
    model, params, inputs: Array, lengths: Array | None = None, *, intermediates: bool = False
) -> tuple[list[Layer], dict]:
    """Run ``model`` on ``inputs`` (``lengths: [B]``) and return ``(layers, collected)``: every RNN call in
    call order, and the ``'intermediates'`` collection if ``intermediates`` (else ``{}``)."""
    layers = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if isinstance(module, RNN) and context.method_name == "__call__":
            cell = module.cell  # the bound child: its variables are the cell's parameters
            layers.append(
                Layer(
                    tuple(module.path),
                    cell.clone(parent=None),
                    cell.variables.get("params", {}),
                    jnp.asarray(args[0] if args else kwargs["x"]),
                    module.reverse,
                )
            )
        return out

    mutable = ["intermediates"] if intermediates else False
    with nn.intercept_methods(record):
        out = model.apply({"params": params}, inputs, lengths, mutable=mutable)
    collected = out[1].get("intermediates", {}) if intermediates else {}
    return layers, collected


def forward_layer(layers: list[Layer], layer: int) -> Layer:
    """The ``layer``-th RNN that reads forwards (a bidirectional layer's forward direction)."""
    forward = [la for la in layers if not la.reverse]
    if not -len(forward) <= layer < len(forward):
        raise ValueError(
            f"layer must be in [-{len(forward)}, {len(forward)}) for a model with {len(forward)} "
            f"forward recurrent layer(s), got {layer}"
        )
    return forward[layer]


def layer_inputs(model, params, inputs: Array, lengths: Array | None = None, layer: int = 0) -> Array:
    """The inputs ``[B, T, D_l]`` that ``layer``'s (forward) RNN reads."""
    return forward_layer(trace_layers(model, params, inputs, lengths)[0], layer).inputs


def model_cell(model) -> RecurrentCell:
    """A detached copy of the cell that ``model`` (a ``SequenceModel`` or an ``RNN``) runs."""
    if isinstance(model, RNN):
        return model.cell.clone(parent=None)
    return model.make_cell(parent=None)


def model_probes(model, batch_size: int, length: int):
    """Zero probes for ``model`` (``SequenceModel``: a list per layer; ``RNN``: one carry-shaped pytree)."""
    if isinstance(model, RNN):
        return zero_probes(model_cell(model).init_carry(None, (batch_size,)), length)
    return model.zero_probes(batch_size, length)


def forward_probes(model, tree) -> list:
    """The forward-direction probe (or probe-gradient) tree of every layer, from ``model``'s probe tree."""
    if isinstance(model, RNN):
        return [tree]
    return [t[0] if getattr(model, "bidirectional", False) else t for t in tree]


def model_loss_fn(model, loss) -> LossFn:
    """A :data:`LossFn` for ``model`` and a loss given as an object with ``stats(outputs, batch)`` returning
    ``{'loss': (num, den)}`` (``rnnlab.losses.Loss``) or as a callable ``loss(outputs, batch) -> scalar``.
    The batch needs ``inputs`` and optionally ``lengths``.
    """

    def loss_fn(params, probes, batch):
        out = model.apply({"params": params}, batch["inputs"], batch.get("lengths"), probes=probes)
        if hasattr(loss, "stats"):
            num, den = loss.stats(out, batch)["loss"]
            return num / jnp.maximum(den, 1e-30)
        return loss(out, batch)

    return loss_fn
