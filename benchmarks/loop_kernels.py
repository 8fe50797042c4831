"""Kernels per time step: what limits a recurrent training step on CPU (issue 13's "measured limit").

    python benchmarks/loop_kernels.py                      # LSTM and GRU at the 4 bench shapes
    python benchmarks/loop_kernels.py --shapes 32,256,32,128 --cells lstm

XLA on CPU runs a ``lax.scan`` as a while loop whose body executes one kernel (thunk) after another. For the
training step of ``benchmarks/bench_rnn.py`` (forward + gradients) this compiles rnnlab's default CPU path and
Flax's ``nn.RNN``, finds the while loops of the optimised HLO (those with a trip count of T) and counts the
instructions of each loop body that do work: fusions, dots and custom calls (the GEMMs), copies,
concatenates, dynamic(-update) slices; not parameters, tuples, get-tuple-elements, constants or bitcasts.
With the measured time of the step it prints microseconds per time step and per kernel. Times are medians
of ``--rounds`` interleaved rounds in this process.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_rnn  # noqa: E402
from run import _shape  # noqa: E402  (the bench's B,T,D,H parser)

FREE = {"parameter", "tuple", "get-tuple-element", "constant", "bitcast"}
GEMM = {"dot", "custom-call"}
_INSTR = re.compile(r"^\s*(?:ROOT )?%\S+ = \S+(?:\{[^}]*\})? ([a-z-]+)\(")
_WHILE = re.compile(r"while\(.*body=%([\w.\-]+).*\"known_trip_count\":\{\"n\":\"(\d+)\"")


def _computations(hlo: str) -> dict[str, list[str]]:
    comps, name = {}, None
    for line in hlo.splitlines():
        if line and not line.startswith(" ") and "{" in line and not line.startswith("HloModule"):
            name = line.split()[0].lstrip("%")
            if name == "ENTRY":
                name = line.split()[1].lstrip("%")
            comps[name] = []
        elif name is not None and line.startswith("  "):
            comps[name].append(line)
    return comps


def _is_gemm(line: str) -> bool:
    op = _INSTR.match(line).group(1)
    return op in GEMM or (op == "fusion" and "kind=kCustom" in line)  # XNNPACK/oneDNN dot fusions


def loop_bodies(hlo: str, trips: int) -> list[dict[str, int]]:
    """``[{'kernels', 'gemms'}]`` for each while loop of ``hlo`` that runs ``trips`` iterations, in order."""
    comps = _computations(hlo)
    out = []
    for line in hlo.splitlines():
        m = _WHILE.search(line)
        if not m or int(m.group(2)) != trips:
            continue
        body = [x for x in comps.get(m.group(1), []) if _INSTR.match(x)]
        work = [x for x in body if _INSTR.match(x).group(1) not in FREE]
        out.append({"kernels": len(work), "gemms": sum(_is_gemm(x) for x in work)})
    return out


def _grad_fn(impl: str, cell: str, b: int, t: int, d: int, h: int):
    import jax
    import jax.numpy as jnp

    x = jax.random.normal(jax.random.PRNGKey(0), (b, t, d), jnp.float32)
    if impl == "flax":
        from flax import linen as nn

        layer = nn.RNN(nn.OptimizedLSTMCell(h) if cell == "lstm" else nn.GRUCell(h))
        params = layer.init(jax.random.PRNGKey(1), x)

        def loss(p, x):
            return jnp.sum(layer.apply(p, x))
    else:
        import rnnlab

        layer = rnnlab.RNN(rnnlab.get_cell(cell, hidden_size=h))  # the default path (backend, hoist 'auto')
        params = layer.init(jax.random.PRNGKey(1), x)

        def loss(p, x):
            return jnp.sum(layer.apply(p, x)[1])

    return jax.jit(jax.grad(loss, argnums=(0, 1))), params, x


def measure(cell: str, shape: tuple[int, int, int, int], rounds: int) -> list[dict]:
    import jax

    b, t, d, h = shape
    rows = []
    for impl in ("rnnlab", "flax"):
        fn, params, x = _grad_fn(impl, cell, b, t, d, h)
        loops = loop_bodies(fn.lower(params, x).compile().as_text(), t)
        jax.block_until_ready(fn(params, x))
        rows.append({"impl": impl, "loops": loops, "fn": (fn, params, x), "times": []})
    for _ in range(rounds):
        for row in rows:
            fn, params, x = row["fn"]
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, x))
            row["times"].append(time.perf_counter() - t0)
    for row in rows:
        row["seconds"] = sorted(row.pop("times"))[rounds // 2]
        del row["fn"]
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", type=_shape, nargs="+", default=list(bench_rnn.SHAPES))
    p.add_argument("--cells", nargs="+", choices=("lstm", "gru"), default=("lstm", "gru"))
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    print(
        "| cell | (B, T, D, H) | implementation | loops (kernels, of them GEMMs) | kernels per step | "
        "µs per step | µs per kernel |"
    )
    print("|---|---|---|---|---:|---:|---:|")
    for cell in args.cells:
        for shape in args.shapes:
            for row in measure(cell, shape, args.rounds):
                per_step = sum(loop["kernels"] for loop in row["loops"])
                us = 1e6 * row["seconds"] / shape[1]
                loops = ", ".join(f"{loop['kernels']} ({loop['gemms']})" for loop in row["loops"])
                head = f"| {cell.upper()} | {', '.join(map(str, shape))} | {row['impl']} | {loops} |"
                print(f"{head} {per_step} | {us:.0f} | {us / max(per_step, 1):.1f} |", flush=True)


if __name__ == "__main__":
    main()
