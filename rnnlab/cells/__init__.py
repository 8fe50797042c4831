"""Recurrent cells and their registry.

``get_cell(name, hidden_size=H, **options)`` builds a cell by name; the error for an unknown name or option
lists the valid ones. ``CELLS`` maps each name to ``(class, preset options)``.
"""

from __future__ import annotations

import dataclasses

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


def _lookup(name: str):
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(CELLS)}")
    return CELLS[name]


def get_cell(name: str, /, hidden_size: int, **options) -> RecurrentCell:
    """Build the cell registered as ``name`` with ``hidden_size`` and cell-specific ``options``.

    Flax's ``parent=`` and ``name=`` may be passed too (``parent=None`` gives a detached cell).

    Raises:
      ValueError: unknown name, unknown option (the message lists the valid ones), or an invalid value.
    """
    cls, preset = _lookup(name)
    valid = cell_options(name)  # ``name`` is positional-only, so Flax's ``name=`` can be passed in options
    unknown = sorted(set(options) - set(valid) - {"parent", "name"})
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for cell {name!r}; "
            f"valid options: {', '.join(valid)}"
        )
    return cls(hidden_size=hidden_size, **{**preset, **options})


__all__ = [
    "CELLS",
    "GRUCell",
    "LRUCell",
    "LSTMCell",
    "MinGRUCell",
    "RecurrentCell",
    "SimpleRNNCell",
    "cell_options",
    "gate",
    "get_cell",
]
