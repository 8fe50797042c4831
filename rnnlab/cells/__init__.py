"""Recurrent cells, their registry, and cell factories.

``get_cell(name, hidden_size=H, **options)`` builds a cell by name; the error for an unknown name or option
lists the valid ones. ``CELLS`` maps each name to ``(class, preset options)``. Models take cells as
factories (Zucchet et al.'s minimal-LRU injects cells the same way): :class:`CellSpec` is the hashable value
a config builds, and :func:`cell_factory` turns whatever a model was given into a factory.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell, gate
from rnnlab.cells.gated import GRUCell, LSTMCell
from rnnlab.cells.linear import LRUCell, MinGRUCell
from rnnlab.cells.vanilla import SimpleRNNCell

#: name -> (cell class, preset options applied before the caller's options)
CELLS: dict[str, tuple[type[RecurrentCell], dict]] = {
    "rnn": (SimpleRNNCell, {}),
    "irnn": (SimpleRNNCell, {"activation": "relu", "recurrent_init": "identity"}),
    "lstm": (LSTMCell, {}),
    "gru": (GRUCell, {}),
    "lru": (LRUCell, {}),
    "mingru": (MinGRUCell, {}),
}


def cell_options(name: str) -> list[str]:
    """The option names ``get_cell(name, ...)`` accepts (besides ``hidden_size``)."""
    cls, _ = _lookup(name)
    return sorted(
        f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("hidden_size", "parent", "name")
    )


# An option's annotation -> (accepted types, how to name them). Option values come from configs and command
# lines, where a wrong type would otherwise surface deep inside an initialiser.
_REAL = (numbers.Real,)
_OPTION_TYPES = {
    "float": (_REAL, "a number, e.g. 1.0"),
    "float | None": ((*_REAL, type(None)), "a number or None"),
    "int": ((numbers.Integral,), "an integer"),
    "int | None": ((numbers.Integral, type(None)), "an integer or None"),
    "bool": ((bool, np.bool_), "true or false"),
    "str": ((str,), "a string"),
}


def _check_types(cls, name: str, options: dict) -> None:
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in options.items():
        kind = _OPTION_TYPES.get(str(fields.get(key)))
        if kind is None:
            continue
        types, what = kind
        is_bool = isinstance(value, (bool, np.bool_))
        if not isinstance(value, types) or (is_bool and bool not in types):
            raise TypeError(
                f"cell {name!r}: option {key} must be {what}, got {value!r} ({type(value).__name__})"
            )


def _lookup(name: str):
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(CELLS)}")
    return CELLS[name]


def get_cell(name: str, /, hidden_size: int, **options) -> RecurrentCell:
    """Build the cell registered as ``name`` with ``hidden_size`` and cell-specific ``options``.

    Flax's ``parent=`` and ``name=`` may be passed too (``parent=None`` gives a detached cell).

    Raises:
      ValueError: unknown name, unknown option (the message lists the valid ones), or an invalid value.
      TypeError: an option of the wrong type (e.g. a string for ``forget_bias``).
    """
    cls, preset = _lookup(name)
    valid = cell_options(name)  # ``name`` is positional-only, so Flax's ``name=`` can be passed in options
    unknown = sorted(set(options) - set(valid) - {"parent", "name"})
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for cell {name!r}; "
            f"valid options: {', '.join(valid)}"
        )
    _check_types(cls, name, options)
    return cls(hidden_size=hidden_size, **{**preset, **options})


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """A cell described by value: ``CellSpec('lstm', 128, {'forget_bias': 2.0})``; calling it builds the cell.

    ``__call__(**flax_kwargs)`` (``parent=``, ``name=``) returns ``get_cell(name, hidden_size, **options,
    **flax_kwargs)``. The options are stored as a sorted tuple of pairs, so equal specs are equal and
    hashable: a model holding one can be a static argument of ``jax.jit``. The spec is validated when it is
    made (unknown names and options fail there, with the valid ones listed).
    """

    name: str
    hidden_size: int
    options: Any = ()

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(sorted(dict(self.options).items())))
        self(parent=None)

    def __call__(self, **flax_kwargs) -> RecurrentCell:
        return get_cell(self.name, self.hidden_size, **dict(self.options), **flax_kwargs)


#: what models accept as ``cell``: a registry name, a :class:`CellSpec`, or a factory ``f(**flax_kwargs)``
CellLike = str | CellSpec | Callable[..., RecurrentCell]


def cell_factory(
    cell: CellLike, hidden_size: int | None = None, options: Any = ()
) -> Callable[..., RecurrentCell]:
    """The factory ``f(**flax_kwargs) -> RecurrentCell`` for a model's ``cell`` argument.

    A registry name becomes ``CellSpec(cell, hidden_size, options)``; a :class:`CellSpec` or any callable
    taking only Flax's keyword arguments (``parent``, ``name``), e.g. ``functools.partial(get_cell, 'gru',
    64)``, is returned as is (it carries its own size and options, so ``options`` must be empty).

    Raises:
      TypeError: ``cell`` is a cell instance or not callable (a module instance would be shared by every
        layer); ValueError: options given with a factory, or an invalid name / option.
    """
    if isinstance(cell, str):
        return CellSpec(cell, hidden_size, options)
    if isinstance(cell, nn.Module) or not callable(cell):
        raise TypeError(
            f"cell must be a registry name ({', '.join(CELLS)}), a CellSpec or a factory, got {cell!r}; "
            "pass e.g. CellSpec('lstm', 128) or functools.partial(get_cell, 'lstm', 128)."
        )
    if dict(options):
        raise ValueError(
            f"cell_options {dict(options)} apply to a registry name; a CellSpec or factory carries its own "
            "options (e.g. CellSpec('lstm', 128, {'forget_bias': 2.0}))."
        )
    return cell


__all__ = [
    "CELLS",
    "CellLike",
    "CellSpec",
    "GRUCell",
    "LRUCell",
    "LSTMCell",
    "MinGRUCell",
    "RecurrentCell",
    "SimpleRNNCell",
    "cell_factory",
    "cell_options",
    "gate",
    "get_cell",
]
