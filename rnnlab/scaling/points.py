"""What one measurement is: a :class:`Point` (cell, time-loop backend, T, H, B, layers, K seeds, devices,
data-parallel mode), the loop options each backend name stands for, and whether it applies on a platform.

Shape legend: K seeds, B batch (per seed, global over devices), T time, H hidden size.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rnnlab.cells import get_cell
from rnnlab.scan import Backend, resolve
from rnnlab.scan.dispatch import CUSTOM_CALLS
from rnnlab.training import sharding

#: backend name -> (``rnn_options``, the plan backend it must resolve to). 'remat' is the XLA scan with
#: chunks of ``remat_chunk`` steps checkpointed (their input projection included).
BACKENDS: dict[str, tuple[dict[str, Any], Backend]] = {
    "xla": ({"backend": "xla", "mode": "sequential"}, Backend.XLA),
    "fused": ({"backend": "fused", "mode": "sequential"}, Backend.FUSED),
    "native": ({"backend": "native", "mode": "sequential"}, Backend.NATIVE),
    "cudnn": ({"backend": "cudnn", "mode": "sequential"}, Backend.CUDNN),
    "associative": ({"mode": "associative"}, Backend.ASSOCIATIVE),
    "remat": ({"backend": "xla", "mode": "sequential"}, Backend.XLA),
}
#: rnnlab.training.sharding's modes: none (one device), sharded (jit + NamedSharding over B), pmap (one
#: program per device), seeds (the K seeds split over the devices, each training K/n models on whole batches).
PARALLEL = sharding.MODES


@dataclasses.dataclass(frozen=True)
class Point:
    """One training-step configuration to measure.

    Attributes:
      cell: a registry name (``rnnlab.CELLS``).
      backend: a key of :data:`BACKENDS`.
      length, hidden, batch, layers, seeds: T, H, B (per seed, global), stacked layers, K.
      devices: how many devices the measuring process sees (separate processes: XLA fixes it at start-up).
      parallel: one of :data:`PARALLEL`.
      remat_chunk: steps per checkpointed chunk (backend 'remat' only; at most T).
      timed: False: compile and record memory only (the long-T memory crossover needs no timing).
      group: points of one group are timed in interleaved rounds (fair ratios on a noisy machine).
      study: the study (plot/fit) the point belongs to.
    """

    cell: str = "lstm"
    backend: str = "xla"
    length: int = 100
    hidden: int = 128
    batch: int = 16
    layers: int = 1
    seeds: int = 1
    devices: int = 1
    parallel: str = "none"
    remat_chunk: int = 128
    timed: bool = True
    group: str = ""
    study: str = ""

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.parallel not in PARALLEL:
            raise ValueError(f"unknown parallel mode {self.parallel!r}; valid: {', '.join(PARALLEL)}")
        for name in ("length", "hidden", "batch", "layers", "seeds", "devices", "remat_chunk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")

    @property
    def rnn_options(self) -> dict[str, Any]:
        """The ``SequenceModel(rnn_options=...)`` of this point."""
        options = dict(BACKENDS[self.backend][0])
        if self.backend == "remat":
            options["remat_chunk"] = min(self.remat_chunk, self.length)  # a chunk longer than T only pads
        return options

    @property
    def key(self) -> str:
        """A stable identity (records are resumed by it); ``group`` and ``study`` are labels, not identity."""
        fields = dataclasses.asdict(self)
        fields.pop("group"), fields.pop("study")
        if self.backend != "remat":
            fields.pop("remat_chunk")
        return ",".join(f"{k}={v}" for k, v in fields.items())

    @property
    def tokens(self) -> int:
        """Tokens one step trains on: K B T."""
        return self.seeds * self.batch * self.length


def why_not(point: Point, platform: str, device_count: int | None = None) -> str | None:
    """None if ``point`` can run on ``platform`` as asked, else the reason (recorded as its status).

    A backend applies when :func:`rnnlab.scan.resolve` resolves to it (e.g. 'cudnn' resolves only on GPU,
    'associative' only for linear cells), so the sweep never times a silent fallback.
    """
    cell = get_cell(point.cell, point.hidden)
    options, wanted = BACKENDS[point.backend]
    try:
        plan = resolve(cell, options, platform)
    except ValueError as e:
        return str(e)
    if plan.backend is not wanted:
        return f"backend {point.backend!r} resolves to {plan.backend.value!r} on {platform}"
    if plan.backend in CUSTOM_CALLS and point.parallel in ("sharded", "seeds") and point.devices > 1:
        return f"backend {point.backend!r} is one custom call: parallel={point.parallel!r} does not split it"
    if point.parallel == "none" and point.devices > 1:
        return "parallel='none' runs on one device"
    if point.parallel != "none" and point.devices < 2:
        return f"parallel={point.parallel!r} needs at least 2 devices"
    if point.parallel == "seeds" and point.seeds % point.devices:
        return f"K={point.seeds} seeds do not split over {point.devices} devices"
    if point.parallel in ("sharded", "pmap") and point.batch % point.devices:
        return f"B={point.batch} does not split over {point.devices} devices"
    if device_count is not None and point.devices > device_count and platform != "cpu":
        return f"{point.devices} devices asked, {device_count} present"
    return None


def expand(
    study: str,
    base: Mapping[str, Any],
    vary: Mapping[str, Sequence[Any]],
    backends: Iterable[str],
    *,
    together: Sequence[str] = (),
    timed: bool = True,
) -> list[Point]:
    """Every combination of the ``vary`` axes (Point field -> values) x ``backends``, on top of ``base``.

    Points that differ only in their backend and the axes named in ``together`` form one group (timed in
    interleaved rounds, so their ratios are fair).
    """
    names = list(vary)
    points = []
    for values in itertools.product(*(vary[n] for n in names)):
        fields = {**base, **dict(zip(names, values, strict=True))}
        label = ",".join(f"{n}={v}" for n, v in zip(names, values, strict=True) if n not in together)
        group = f"{study}:{label}"
        for backend in backends:
            points.append(Point(**{**fields, "backend": backend}, timed=timed, group=group, study=study))
    return points
