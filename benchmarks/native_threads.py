"""Interleaved: the native LSTM/GRU training step with 1 thread vs XLA's pool, vs rnnlab fused (hoist=False).

    python benchmarks/native_threads.py lstm,16,2000,2,64 gru,64,1000,1,128   # cell,B,T,D,H ...

Prints ms/step (medians of 5 rotating rounds) per implementation; results: benchmarks/RESULTS-native.md.
"""

import statistics
import sys
import time

import jax
import jax.numpy as jnp

import rnnlab
from rnnlab.fused import native


def seconds(step, min_s=0.2):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s or n == 0:
        step()
        n += 1
    return (time.perf_counter() - t0) / n


def native_step(cell, params, xs, h, threads):
    zeros = jnp.zeros((xs.shape[1], h))
    if cell == "lstm":
        loss = lambda a, xs: jnp.sum(native.lstm_sequence(*a, xs, zeros, zeros, max_threads=threads)[2])
    else:
        loss = lambda a, xs: jnp.sum(native.gru_sequence(*a, xs, zeros, max_threads=threads)[1])
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return lambda: jax.block_until_ready(grad(params, xs))


def steps(cell, b, t, d, h):
    x = jax.random.normal(jax.random.PRNGKey(0), (b, t, d))
    layer = rnnlab.RNN(rnnlab.get_cell(cell, hidden_size=h), backend="fused", hoist=False)
    p = layer.init(jax.random.PRNGKey(1), x)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)[1]), argnums=(0, 1)))
    flat = jax.tree_util.tree_leaves_with_path(p)
    get = lambda name: next(v for k, v in flat if name in jax.tree_util.keystr(k))
    names = ["'input']['kernel", "'input']['bias", "recurrent_kernel"] + (
        ["recurrent_bias"] if cell == "gru" else []
    )
    params, xs = tuple(get(n) for n in names), jnp.swapaxes(x, 0, 1)
    return {
        "fused": lambda: jax.block_until_ready(grad(p, x)),
        "native t=1": native_step(cell, params, xs, h, 1),
        "native t=pool": native_step(cell, params, xs, h, 0),
    }


def main(specs):
    for spec in specs:
        cell, *shape = spec.split(",")
        fs = steps(cell, *map(int, shape))
        for step in fs.values():
            step()  # compile
        times, names = {k: [] for k in fs}, list(fs)
        for r in range(5):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                times[k].append(seconds(fs[k]))
        print(
            spec, "  ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in times.items()), flush=True
        )


if __name__ == "__main__":
    main(sys.argv[1:])
