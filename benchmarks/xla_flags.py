"""Which XLA CPU options pay for the default LSTM/GRU training step (issue 13: "XLA CPU options that pay").

    python benchmarks/xla_flags.py                 # LSTM and GRU at the two shapes of issue 13's misses
    python benchmarks/xla_flags.py --shapes 32,256,32,128 --rounds 9 --options none "eigen dot"

Each option set is passed to one ``jax.jit`` as ``compiler_options`` (the DebugOptions fields that
``XLA_FLAGS`` would set, here per program), so all sets compile in one process and are timed **interleaved**
(every round times each set once, in a rotating order; medians over rounds). The table gives each set's speed
as a ratio to no options (> 1 = faster) for the training step of ``benchmarks/bench_rnn.py`` (forward +
gradients of ``RNN(cell)``'s default CPU path) and for a 1024^3 f32 matmul, and the largest change of an
output array against no options, relative to that array's largest magnitude (does it change the numbers?).
On jaxlib 0.10.2 XLA:CPU runs dots through YNNPACK by default (``ynn_fusion`` in the optimised HLO); "eigen
dot" turns that off. Not in the sets: oneDNN dots (``xla_cpu_use_onednn`` + ``..._onednn_fusion_type=DOT``)
kill the process with an illegal instruction on this 2-core AVX2 machine (and fail to compile via XLA_FLAGS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import _shape  # noqa: E402  (the bench's B,T,D,H parser)

SHAPES = ((32, 256, 32, 128), (128, 100, 64, 256))  # the shapes of issue 13's misses
YNN, XNN = "xla_cpu_experimental_ynn_fusion_type", "xla_cpu_experimental_xnn_fusion_type"
OPTIONS = {
    "none": {},
    "eigen dot": {YNN: ""},
    "xnnpack dot": {YNN: "", XNN: "LIBRARY_FUSION_TYPE_DOT"},
    "ynn dot only": {YNN: "LIBRARY_FUSION_TYPE_DOT"},
    "xnn graph greedy": {"xla_cpu_experimental_xnn_graph_fusion_mode": "XNN_GRAPH_FUSION_MODE_GREEDY"},
    "fast math": {"xla_cpu_enable_fast_math": True},
    "one eigen thread": {"xla_cpu_multi_thread_eigen": False},
}


def _builders(cell: str | None, shape):
    """``build(options) -> fn``: ``fn()`` runs the program compiled with ``options`` — the training step of
    ``cell`` at ``shape``, or (cell None) a 1024^3 f32 matmul."""
    import jax
    import jax.numpy as jnp

    import rnnlab

    if cell is None:
        fn = lambda a: a @ a  # noqa: E731
        args = (jax.random.normal(jax.random.PRNGKey(2), (1024, 1024), jnp.float32),)
    else:
        b, t, d, h = shape
        layer = rnnlab.RNN(rnnlab.get_cell(cell, hidden_size=h))  # the default path
        x = jax.random.normal(jax.random.PRNGKey(0), (b, t, d), jnp.float32)
        fn = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)[1]), argnums=(0, 1))
        args = (layer.init(jax.random.PRNGKey(1), x), x)

    def build(opts):
        compiled = jax.jit(fn, compiler_options=opts)
        return lambda: compiled(*args)

    return build


def measure(cell, shape, names, rounds: int) -> dict[str, dict]:
    """``{option set: {'ratio': median speed vs none, 'change': max relative change of an output}}``."""
    import bench_rnn
    import jax
    import numpy as np

    build = _builders(cell, shape)
    fns = {n: build(OPTIONS[n]) for n in names}
    outs = {n: jax.tree.leaves(jax.block_until_ready(fn())) for n, fn in fns.items()}  # compile + warm up
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            times[n].append(bench_rnn._time(lambda n=n: jax.block_until_ready(fns[n]())))
    base = statistics.median(times["none"])
    result = {}
    for n in names:
        change = max(
            float(np.max(np.abs(o - c)) / max(float(np.max(np.abs(c))), 1e-30))
            for o, c in zip(outs[n], outs["none"], strict=True)
        )
        result[n] = {"ratio": base / statistics.median(times[n]), "change": change}
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", type=_shape, nargs="+", default=list(SHAPES))
    p.add_argument("--cells", nargs="+", choices=("lstm", "gru"), default=["lstm", "gru"])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--options", nargs="+", choices=list(OPTIONS), default=list(OPTIONS))
    args = p.parse_args(argv)
    names = ["none", *[n for n in args.options if n != "none"]]
    columns = {"matmul 1024^3": measure(None, None, names, args.rounds)}
    for cell in args.cells:
        for shape in args.shapes:
            columns[f"{cell.upper()} {','.join(map(str, shape))}"] = measure(cell, shape, names, args.rounds)
            print(f"measured {cell} {shape}", file=sys.stderr, flush=True)
    print("| option set | compiler options | " + " | ".join(columns) + " | max output change |")
    print("|---|---|" + "---:|" * (len(columns) + 1))
    for n in names:
        ratios = " | ".join(f"×{col[n]['ratio']:.2f}" for col in columns.values())
        change = max(col[n]["change"] for col in columns.values())
        opts = ", ".join(f"{k}={v!r}" for k, v in OPTIONS[n].items()) or "(none)"
        print(f"| {n} | `{opts}` | {ratios} | {change:.1e} |")


if __name__ == "__main__":
    main()
