"""Training-step throughput of LSTM/GRU layers: rnnlab (xla / fused / native backends) vs Flax vs PyTorch.

rnnlab rows: ``RNN(cell, backend=...)`` with the input projection hoisted out of the loop (``hoist=True``) or
computed inside it (``hoist=False``, as Flax and PyTorch-on-CPU do; rnnlab's CPU default). The ``native``
row (compiled C++ kernels, ``rnnlab.fused.native``) appears where they build. The row of the implementation
that ``RNN(cell)`` picks by default carries " (default)" in its name, so a script can read its ratios.

A training step is the forward pass plus gradients w.r.t. every parameter and the input; the loss is
``sum(y)``. Throughput is tokens/s = B*T / (seconds per step). Implementations are timed **interleaved**:
for each (cell, shape), every round times each implementation once (in a rotating order) plus a 1024^3 f32
matmul, and the table reports medians over rounds. "% floor" is the matmul-FLOP floor of the step (forward
2*B*T*(D+H)*G*H FLOPs, backward 2x forward, G = 4 for LSTM, 3 for GRU) at the matmul rate measured in the same
rounds, divided by the measured step time.

Threads: JAX runs with its defaults (one Eigen pool over all cores); PyTorch with ``torch.set_num_threads``
set to the core count. PyTorch twice: the reference row in a process of its own (``torch_worker.py``, glibc's
malloc defaults, as PyTorch runs by itself; one pipe round trip per step, ~0.1 ms) and the row "(in this
process)", which shares the malloc settings ``import rnnlab`` makes (``rnnlab.hostmem``). Run through
``benchmarks/run.py``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

import rnnlab  # (before any JAX computation: its malloc settings must reach XLA's threads)

SHAPES = ((32, 256, 32, 128), (64, 1000, 1, 128), (128, 100, 64, 256), (16, 2000, 2, 64))
QUICK_SHAPES = ((8, 64, 8, 32),)
GATES = {"lstm": 4, "gru": 3}
MIN_SECONDS = 0.2  # per measurement: repeat a step until this much time has passed


@dataclass
class Impl:
    name: str
    build: Callable  # (cell, B, T, D, H) -> step() that runs one training step to completion
    cells: tuple = ("lstm", "gru")
    reference: str | None = None  # 'torch' | 'flax': the baseline the ratio columns divide by


def _jax_step(loss, params, x):
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    memory = grad.lower(params, x).compile().memory_analysis()

    def step():
        return jax.block_until_ready(grad(params, x))

    step.temp_mib = memory.temp_size_in_bytes / 2**20 if memory is not None else None  # XLA's peak scratch
    return step


def _rnnlab(backend: str, hoist: bool = True):
    def build(cell_name, b, t, d, h):
        layer = rnnlab.RNN(rnnlab.get_cell(cell_name, hidden_size=h), backend=backend, hoist=hoist)
        x = jax.random.normal(jax.random.PRNGKey(0), (b, t, d), jnp.float32)
        params = layer.init(jax.random.PRNGKey(1), x)
        if backend != "xla":
            assert layer.plan().backend == backend, "bench row would not run the fused kernel"
        return _jax_step(lambda p, x: jnp.sum(layer.apply(p, x)[1]), params, x)

    return build


def _flax(cell_name, b, t, d, h):
    from flax import linen as nn

    cell = nn.OptimizedLSTMCell(h) if cell_name == "lstm" else nn.GRUCell(h)
    layer = nn.RNN(cell)
    x = jax.random.normal(jax.random.PRNGKey(0), (b, t, d), jnp.float32)
    params = layer.init(jax.random.PRNGKey(1), x)
    return _jax_step(lambda p, x: jnp.sum(layer.apply(p, x)), params, x)


def _torch(cell_name, b, t, d, h):
    import torch

    torch.manual_seed(0)
    layer = (torch.nn.LSTM if cell_name == "lstm" else torch.nn.GRU)(d, h, batch_first=True)
    x = torch.randn(b, t, d, requires_grad=True)
    inputs = [x, *layer.parameters()]

    def step():
        y, _ = layer(x)
        return torch.autograd.grad(y.sum(), inputs)

    return step


class _TorchProcess:
    """``benchmarks/torch_worker.py``, started once with glibc's malloc defaults (RNNLAB_KEEP_FREED_MEMORY=0:
    the worker never imports rnnlab, the variable only documents the intent)."""

    proc = None

    @classmethod
    def call(cls, line: str) -> None:
        if cls.proc is None:
            worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_worker.py")
            env = {**os.environ, "RNNLAB_KEEP_FREED_MEMORY": "0"}
            cls.proc = subprocess.Popen(
                [sys.executable, worker], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
            )
        cls.proc.stdin.write(line + "\n")
        cls.proc.stdin.flush()
        if cls.proc.stdout.readline().strip() != "ok":
            raise RuntimeError(f"benchmarks/torch_worker.py failed on {line!r}")


def _torch_own_process(cell_name, b, t, d, h):
    _TorchProcess.call(f"build {cell_name} {b} {t} {d} {h}")
    return lambda: _TorchProcess.call("step")


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def default_row_name() -> str:
    """The bench name of what ``RNN(cell)`` runs by default on this platform (LSTM and GRU agree)."""
    plan = rnnlab.RNN(rnnlab.get_cell("lstm", hidden_size=8)).plan()
    return f"rnnlab ({plan.backend.value}{'' if plan.hoist else ', hoist=False'})"


def implementations(use_torch: bool = True) -> list[Impl]:
    from rnnlab.fused import native

    impls = [
        Impl("rnnlab (xla)", _rnnlab("xla")),
        Impl("rnnlab (fused)", _rnnlab("fused")),
        Impl("rnnlab (xla, hoist=False)", _rnnlab("xla", hoist=False), cells=("lstm",)),
        Impl("rnnlab (fused, hoist=False)", _rnnlab("fused", hoist=False)),
    ]
    if native.available():
        impls.append(Impl("rnnlab (native, hoist=False)", _rnnlab("native", hoist=False)))
    default = default_row_name()
    for impl in impls:
        if impl.name == default:
            impl.name += " (default)"
    impls.append(Impl("Flax RNN(OptimizedLSTMCell / GRUCell)", _flax, reference="flax"))
    if use_torch and torch_available():
        impls.append(Impl("PyTorch nn.LSTM / nn.GRU", _torch_own_process, reference="torch"))
        impls.append(Impl("PyTorch nn.LSTM / nn.GRU (in this process)", _torch))
    return impls


def _time(step: Callable) -> float:
    """Seconds per call: repeat until MIN_SECONDS have passed (at least once)."""
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return elapsed / n


def _matmul_step():
    a = jax.random.normal(jax.random.PRNGKey(2), (1024, 1024), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    return lambda: jax.block_until_ready(mm(a))


def step_flops(cell: str, b: int, t: int, d: int, h: int) -> float:
    """Matmul FLOPs of one training step: forward 2*B*T*(D+H)*G*H, backward twice that."""
    return 3 * 2 * b * t * (d + h) * GATES[cell] * h


def measure(
    shapes=SHAPES, rounds: int = 5, cells=("lstm", "gru"), log=print, use_torch: bool = True
) -> tuple[list[dict], float]:
    """Time every implementation, interleaved; returns (rows, matmul FLOP/s)."""
    if use_torch and torch_available():
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    matmul = _matmul_step()
    matmul()
    rates, rows = [], []
    impls = implementations(use_torch)
    for cell in cells:
        for shape in shapes:
            steps = {}
            for impl in impls:
                if cell in impl.cells:
                    steps[impl.name] = impl.build(cell, *shape)
                    steps[impl.name]()  # compile / warm up
            times = {name: [] for name in steps}
            names = list(steps)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
                    times[name].append(_time(steps[name]))
                rates.append(2 * 1024**3 / _time(matmul))
            log(
                f"  measured {cell} {shape}: "
                + ", ".join(f"{n} {statistics.median(v) * 1e3:.1f} ms" for n, v in times.items())
            )
            for impl in impls:
                if impl.name in times:
                    med = statistics.median(times[impl.name])
                    rows.append(
                        {
                            "cell": cell,
                            "shape": shape,
                            "impl": impl.name,
                            "reference": impl.reference,
                            "seconds": med,
                            "spread": (max(times[impl.name]) - min(times[impl.name])) / med,
                            "temp_mib": getattr(steps[impl.name], "temp_mib", None),
                        }
                    )
            del steps
    return rows, statistics.median(rates)


def markdown_table(rows: list[dict], flops_per_second: float) -> str:
    """One Markdown table: tokens/s, ratios vs PyTorch and Flax in the same (cell, shape), % of the floor, and
    the compiled step's XLA temp memory (its peak scratch; '—' where not XLA)."""
    lines = [
        "| cell | (B, T, D, H) | implementation | tokens/s | ms/step | vs PyTorch | vs Flax | % of floor | "
        "XLA temp MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cell, shape = row["cell"], row["shape"]
        group = [r for r in rows if r["cell"] == cell and r["shape"] == shape]
        ref = {r["reference"]: r["seconds"] for r in group if r["reference"]}
        tokens = shape[0] * shape[1] / row["seconds"]
        ratio = {k: f"×{ref[k] / row['seconds']:.2f}" if k in ref else "—" for k in ("torch", "flax")}
        floor = step_flops(cell, *shape) / flops_per_second / row["seconds"]
        temp = "—" if row.get("temp_mib") is None else f"{row['temp_mib']:.1f}"
        lines.append(
            f"| {cell.upper()} | {', '.join(map(str, shape))} | {row['impl']} | {tokens / 1e3:.1f}k | "
            f"{row['seconds'] * 1e3:.1f} | {ratio['torch']} | {ratio['flax']} | {100 * floor:.0f}% | "
            f"{temp} |"
        )
    return "\n".join(lines)
