"""Minimal reproduction: two batched LAPACK custom calls deadlock XLA's CPU thread pool (jax 0.10.2).

    python docs/known-issues/batched_lapack_deadlock.py vmap 8    # hangs (killed by the 20 s timeout below)
    python docs/known-issues/batched_lapack_deadlock.py map 8     # finishes: the QRs are not batched

Each call of the jitted function makes three independent QR factorisations, each batched over K keys. On a
2-core machine the two intra-op workers each start one batched QR (``jax::ParallelBatchMap``) and wait for
batch items that are queued behind the other one: neither can finish. See batched-lapack-deadlock.md.
"""

import faulthandler
import sys

import jax
import jax.numpy as jnp


def three_orthogonal_blocks(key):
    init = jax.nn.initializers.orthogonal()
    return jnp.concatenate([init(k, (64, 64)) for k in jax.random.split(key, 3)], axis=1)


def main(mode: str = "vmap", k: int = 8, calls: int = 20, timeout_s: float = 20.0) -> None:
    if mode == "vmap":
        fn = jax.jit(jax.vmap(three_orthogonal_blocks))
    else:
        fn = jax.jit(lambda keys: jax.lax.map(three_orthogonal_blocks, keys))
    faulthandler.dump_traceback_later(timeout_s, exit=True)  # a hang ends the process (exit code 1)
    for i in range(calls):
        jax.block_until_ready(fn(jax.random.split(jax.random.key(i), k)))
    faulthandler.cancel_dump_traceback_later()
    print(f"{mode}, K={k}: {calls} calls finished")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "vmap", int(sys.argv[2]) if len(sys.argv) > 2 else 8)
