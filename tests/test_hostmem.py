"""rnnlab.hostmem: a training step whose XLA temp buffer is larger than glibc's mmap threshold reuses freed
memory instead of faulting in fresh pages every step."""

import platform
import resource

import jax
import jax.numpy as jnp
import pytest

import rnnlab
from rnnlab import hostmem

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")


def _faults_per_step(step, args, warm=12, n=10) -> float:
    for _ in range(warm):
        jax.block_until_ready(step(*args))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        jax.block_until_ready(step(*args))
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n


@glibc
def test_a_step_with_a_large_temp_buffer_reuses_freed_memory():
    # 44 MiB of XLA temp memory (over glibc's largest mmap threshold, 32 MiB): with malloc's defaults every
    # step maps and faults in all of it anew (measured: ~11k faults in every step, 1.0x its pages); after
    # `import rnnlab` the first ~10 steps fault in a fresh block now and then (a thread finding its arena's
    # block), later steps none (4 processes x 30 steps: one fresh block after step 12 in all of them).
    x = jax.random.normal(jax.random.PRNGKey(0), (256, 128, 4))
    layer = rnnlab.RNN(rnnlab.get_cell("lstm", hidden_size=32))
    params = layer.init(jax.random.PRNGKey(1), x)
    step = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)[1]), argnums=(0, 1)))
    temp = step.lower(params, x).compile().memory_analysis().temp_size_in_bytes
    assert temp > 32 << 20
    assert _faults_per_step(step, (params, x)) < 0.25 * temp / resource.getpagesize()


def test_the_environment_variable_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv(hostmem.ENV, "0")
    assert hostmem.keep_freed_memory() is False
