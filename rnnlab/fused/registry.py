"""The registry through which the time loop finds a whole-sequence kernel for a cell and a backend.

:func:`kernel_for` maps ``(backend, cell)`` to a :class:`SequenceKernel`; :mod:`rnnlab.scan` asks it and never
looks at concrete cell classes. The registrations are in :mod:`rnnlab.fused`.

Shape legend: B batch, T time, D input features, H hidden size, G gates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rnnlab.cells.base import RecurrentCell


@dataclasses.dataclass(frozen=True)
class SequenceKernel:
    """A whole-sequence implementation of one cell class for one backend of the time loop.

    Attributes:
      run: ``run(cell, params, carry, xs, mask, probes, *, unroll, hoisted) -> (final_carry, ys)``, with
        ``xs`` the projected inputs ``[T, B, G*H]`` if ``hoisted``, else the raw inputs ``[T, B, D]``;
        ``mask: [T, B]`` or None; ``probes`` carry-shaped with ``[T, B, H]`` leaves, or None;
        ``ys: [T, B, H]``, 0 on masked steps.
      accepts: ``accepts(cell, *, platform, dtype, probes) -> bool``: whether the kernel covers this cell's
        options on ``platform`` ('cpu', 'gpu', 'tpu') in compute ``dtype`` (with probes if ``probes``); the
        time loop falls back to the next choice where it does not.
      hoist: the only input projection the kernel takes (False: raw inputs, it projects them itself), or
        None when it takes both.
    """

    run: Callable
    accepts: Callable[..., bool]
    hoist: bool | None = None


_KERNELS: dict[tuple[str, type], SequenceKernel] = {}


def register(backend: str, cell_class: type[RecurrentCell], kernel: SequenceKernel) -> None:
    """Make ``kernel`` the ``backend`` implementation of ``cell_class`` (and of its subclasses)."""
    _KERNELS[(backend, cell_class)] = kernel


def kernel_for(backend: str, cell: RecurrentCell) -> SequenceKernel | None:
    """The ``backend`` kernel registered for ``cell``'s class or its nearest base class, or None."""
    for cls in type(cell).__mro__:
        if (backend, cls) in _KERNELS:
            return _KERNELS[(backend, cls)]
    return None


def cell_classes(backend: str) -> list[type[RecurrentCell]]:
    """The cell classes with a registered ``backend`` kernel."""
    return [cls for name, cls in _KERNELS if name == backend]
