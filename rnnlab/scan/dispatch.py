"""How the time loop runs: the backends, the ``'auto'`` table per platform, and :func:`resolve`.

Every choice the loop makes about HOW to run (which implementation, hoisted projection or not, remat,
chunking, unrolling) is made here, once per call, from the cell, the ``RNN`` options, the platform and what
the call needs (gate collection, probes, the compute dtype). Nothing else in rnnlab checks the platform.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
from collections.abc import Iterator, Mapping

import jax
import numpy as np

from rnnlab import fused
from rnnlab.cells.base import RecurrentCell


class Backend(enum.StrEnum):
    """What runs the time loop (see the module docstring)."""

    XLA = "xla"
    ASSOCIATIVE = "associative"
    FUSED = "fused"
    NATIVE = "native"
    CUDNN = "cudnn"


MODES = ("auto", "sequential", "associative")
BACKENDS = ("auto", "xla", "fused", "native", "cudnn")
OPTION_NAMES = ("backend", "mode", "hoist", "unroll", "remat", "remat_chunk")


@dataclasses.dataclass(frozen=True)
class Defaults:
    """The ``'auto'`` choices of one platform."""

    hoist: bool  # compute x W_ih for all steps before the loop
    associative: bool  # run linear cells with associative_scan
    kernels: tuple[Backend, ...]  # whole-sequence backends, the first that has and accepts the cell wins
    seeds_vmap: bool  # a K-seed train step vectorises the seeds (vmap) instead of running them in turn (map)


# CPU, measured on a 2-core AVX2 machine (README "Speed", benchmarks/bench_rnn.py; PERF-FACTS): projecting
# inside the loop was 15-30% faster than hoisting at every benchmarked shape (D <= 64); a sequential lax.scan
# of a linear recurrence was 1.6-2.4x faster than associative_scan and used 1.7-3.1x less memory. The compiled
# C++ kernels (backend='native') were faster than the fused JAX kernel on every benchmarked shape once malloc
# kept XLA's temp buffers (rnnlab/hostmem.py; README "Speed"), so 'auto' takes them where they build, else the
# fused kernel (5-20% faster than differentiating the XLA scan). They run as one XLA custom call, which XLA's
# partitioner cannot split: a program partitioned over devices traces with them off (see
# `partitioned_over_devices`). GPU/TPU, not measured here: one large hoisted matmul and the O(log T)-depth
# associative scan are what parallel hardware rewards; the fused kernel stays the default there and cuDNN is
# opt-in (backend='cudnn'), until measured.
# Seeds: with the fused kernel, K = 8 vmapped seeds were x0.56-0.58 of 8 separate runs on CPU (batched GEMMs,
# `make bench`), while lax.map over the seeds runs the one-seed program K times, so 'map' became the CPU
# default. With the compiled kernels vmap pays (x1.18-1.27; map x0.92-1.01, README "Speed"), but the default
# stays 'map' until the experiments are re-measured with vmap. Accelerators reward the vectorised K
# (unmeasured here).
AUTO = {
    "cpu": Defaults(
        hoist=False, associative=False, kernels=(Backend.NATIVE, Backend.FUSED), seeds_vmap=False
    ),
    "gpu": Defaults(hoist=True, associative=True, kernels=(Backend.FUSED,), seeds_vmap=True),
    "tpu": Defaults(hoist=True, associative=True, kernels=(Backend.FUSED,), seeds_vmap=True),
}


CUSTOM_CALLS = (Backend.NATIVE,)  # backends that run as one opaque XLA custom call
_PARTITIONED = contextvars.ContextVar("rnnlab_partitioned_over_devices", default=False)


@contextlib.contextmanager
def partitioned_over_devices() -> Iterator[None]:
    """Trace inside this when XLA will partition the program over several devices (``jit`` with
    ``NamedSharding``): :func:`resolve` then skips the :data:`CUSTOM_CALLS` backends (for ``'auto'`` and
    ``'native'`` alike), whose one custom call XLA's partitioner would run on the whole, all-gathered batch
    on every device (measured: the compiled program all-gathers x and runs the call on the global batch)."""
    token = _PARTITIONED.set(True)
    try:
        yield
    finally:
        _PARTITIONED.reset(token)


def default_platform() -> str:
    """``'cpu'``, ``'gpu'`` or ``'tpu'``: where jax runs by default (CUDA and ROCm are both ``'gpu'``)."""
    name = jax.default_backend()
    return {"cuda": "gpu", "rocm": "gpu"}.get(name, name)


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """The time-loop options of :class:`RNN` (its attributes of the same names), validated on creation."""

    backend: str = "auto"
    mode: str = "auto"
    hoist: bool | str = "auto"
    unroll: int = 1
    remat: bool = False
    remat_chunk: int = 0

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if not (isinstance(self.hoist, (bool, np.bool_)) or self.hoist == "auto"):
            raise ValueError(f"hoist must be True, False or 'auto', got {self.hoist!r}")
        if not isinstance(self.unroll, (int, np.integer)) or isinstance(self.unroll, bool) or self.unroll < 1:
            raise ValueError(f"unroll must be a positive integer, got {self.unroll!r}")
        if not isinstance(self.remat, (bool, np.bool_)):
            raise ValueError(f"remat must be True or False, got {self.remat!r}")
        chunk = self.remat_chunk
        if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 0:
            raise ValueError(f"remat_chunk must be an integer >= 0 (0: off), got {chunk!r}")


def loop_options(options=()) -> LoopOptions:
    """A model's ``rnn_options`` (a mapping, or ``(key, value)`` pairs) as :class:`LoopOptions`.

    Raises:
      ValueError: not a mapping, an unknown key (the message lists the valid ones), or an invalid value.
    """
    if isinstance(options, LoopOptions):
        return options
    try:
        items = dict(options)
    except (TypeError, ValueError):
        raise ValueError(
            f"rnn_options must be a mapping such as {{'remat_chunk': 128}}, got {options!r}"
        ) from None
    unknown = sorted(set(items) - set(OPTION_NAMES))
    if unknown:
        raise ValueError(
            f"unknown rnn_options key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(OPTION_NAMES)}"
        )
    return LoopOptions(**items)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one :class:`RNN` call runs: the output of :func:`resolve`.

    Attributes:
      backend: the implementation (module docstring).
      hoist: the loop projects the inputs of all steps before it runs (else the step or the kernel does).
      remat: the loop body is checkpointed (recomputed in the backward pass).
      chunk: > 0: chunks of this many steps are checkpointed with their input projection.
      unroll: ``lax.scan``'s unroll factor.
    """

    backend: Backend
    hoist: bool
    remat: bool = False
    chunk: int = 0
    unroll: int = 1


def check(cell: RecurrentCell, options: LoopOptions) -> None:
    """The platform-independent errors: options ``cell`` can never run with."""
    if options.mode == "associative" and not cell.linear:
        raise ValueError(
            f"mode='associative' needs a linear cell (lru, mingru), not {type(cell).__name__}; "
            "use mode='sequential'."
        )
    if options.backend in ("fused", "native", "cudnn") and fused.kernel_for(options.backend, cell) is None:
        have = ", ".join(c.__name__ for c in fused.cell_classes(options.backend))
        raise ValueError(
            f"backend={options.backend!r} supports {have}, not {type(cell).__name__}; "
            "use backend='xla' or 'auto'."
        )


def resolve(
    cell: RecurrentCell,
    options: LoopOptions | Mapping,
    platform: str,
    *,
    collect: bool = False,
    probes: bool = False,
    dtype=None,
) -> Plan:
    """The :class:`Plan` for running ``cell`` with ``options`` (see :func:`loop_options`) on ``platform``
    ('cpu', 'gpu' or 'tpu').

    ``mode='associative'`` (linear cells) always runs associative; ``'auto'`` does where :data:`AUTO` says,
    unless ``collect`` (gate statistics need the per-step cell). Otherwise a whole-sequence kernel runs when
    one is registered for the cell's class under the requested backend (``'auto'``: the platform's
    ``kernels`` in order; ``'native'`` falls back to ``'fused'``, ``'cudnn'`` to ``'auto'``) and accepts the
    cell's options, the platform, the compute ``dtype`` (default ``cell.param_dtype``) and ``probes``, and
    neither ``remat`` nor ``collect`` is asked for: kernels are single custom-VJP calls (nothing to
    checkpoint, no per-step gates). Inside :func:`partitioned_over_devices` the custom-call backends are
    skipped. Everything else runs the XLA scan. ``remat_chunk`` implies ``remat`` and
    projects inside each chunk.

    Raises:
      ValueError: an invalid option, or one the cell cannot run with (see :func:`check`).
    """
    options = loop_options(options)
    check(cell, options)
    auto = AUTO.get(platform, AUTO["gpu"])  # other accelerators: as GPUs
    linear_auto = options.mode == "auto" and cell.linear and auto.associative and not collect
    if options.mode == "associative" or linear_auto:
        return Plan(Backend.ASSOCIATIVE, hoist=True, unroll=options.unroll)
    hoist = auto.hoist if options.hoist == "auto" else bool(options.hoist)
    remat = bool(options.remat or options.remat_chunk)
    wanted = {
        "auto": auto.kernels,
        "fused": (Backend.FUSED,),
        "native": (Backend.NATIVE, Backend.FUSED),
        "cudnn": (Backend.CUDNN, *auto.kernels),
    }
    dtype = cell.param_dtype if dtype is None else dtype
    candidates = [] if (remat or collect) else wanted.get(options.backend, [])
    if _PARTITIONED.get():
        candidates = [backend for backend in candidates if backend not in CUSTOM_CALLS]
    for backend in candidates:
        kernel = fused.kernel_for(backend.value, cell)
        if kernel is not None and kernel.accepts(cell, platform=platform, dtype=dtype, probes=probes):
            return Plan(backend, hoist if kernel.hoist is None else kernel.hoist, unroll=options.unroll)
    hoist = hoist and not options.remat_chunk  # each checkpointed chunk projects its own inputs
    return Plan(Backend.XLA, hoist, remat, options.remat_chunk, options.unroll)
