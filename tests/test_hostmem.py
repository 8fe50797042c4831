"""rnnlab.hostmem: a training step whose XLA temp buffer is larger than glibc's mmap threshold reuses freed
memory instead of faulting in fresh pages every step."""

import os
import platform
import resource
import subprocess
import sys

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


_DEFAULT_SETTINGS_CHILD = """
import resource, jax, jax.numpy as jnp, rnnlab
x = jax.random.normal(jax.random.PRNGKey(0), (256, 256, 4))
layer = rnnlab.RNN(rnnlab.get_cell("lstm", hidden_size=32))
params = layer.init(jax.random.PRNGKey(1), x)
step = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)[1]), argnums=(0, 1)))
temp = step.lower(params, x).compile().memory_analysis().temp_size_in_bytes
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(step(params, x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(temp, *faults)
"""


@glibc
def test_by_default_a_temp_buffer_over_a_thread_heaps_64_mib_is_reused_too():
    # A block over 64 MiB (a glibc thread heap's size) allocated on a thread with an arena of its own is
    # mmapped whatever M_MMAP_MAX says; with the default single arena every thread allocates from the main
    # heap. Measured at (16, 2000, 2, 64) (86 MiB) with two arenas: 3 of 6 processes faulted ~33k pages (the
    # whole block) on every step.
    env = {k: v for k, v in os.environ.items() if k not in (hostmem.ENV, hostmem.ARENAS_ENV)}
    out = subprocess.run(
        [sys.executable, "-c", _DEFAULT_SETTINGS_CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    temp, *faults = map(int, out.stdout.split())
    assert temp > 64 << 20
    pages = temp / resource.getpagesize()
    assert faults[0] > 0.5 * pages  # the first step maps its block; later steps reuse it: now and then a step
    # finds a larger free block elsewhere and faults once more (5 processes x 10 steps: at most 2), where the
    # failure faults in the whole block on every step (10x)
    assert sum(faults[2:]) < 4 * pages, faults


@pytest.mark.filterwarnings("ignore:rnnlab was imported after JAX started")
def test_a_bad_arena_count_warns_and_keeps_the_default(monkeypatch):
    monkeypatch.setenv(hostmem.ARENAS_ENV, "two")
    with pytest.warns(UserWarning, match="is not a number of malloc arenas"):
        hostmem.keep_freed_memory()


def test_importing_rnnlab_after_jax_started_warns_that_the_settings_come_too_late():
    jax.block_until_ready(jnp.ones(1))  # this process's backend is running
    with pytest.warns(UserWarning, match="Import rnnlab before the first JAX computation"):
        hostmem.keep_freed_memory()
