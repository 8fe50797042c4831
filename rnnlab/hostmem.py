"""Host memory: keep the large blocks XLA:CPU frees for the next step instead of giving them back to the OS.

Why: glibc's malloc serves every block larger than its mmap threshold (at most 32 MiB) with a fresh ``mmap``
and returns it with ``munmap`` on free. XLA:CPU allocates each execution's temporary buffer in one block (an
LSTM training step at (B, T, D, H) = (32, 256, 32, 128): 45 MiB), so every step faults in and zero-fills
those pages anew: `perf` put a third of that step's time in the kernel (page faults, page clearing, munmap).
The settings: mmap off; a 1 GiB trim threshold (the main heap keeps what is freed at its top); a 64 MiB top
pad (a thread arena's heap that becomes empty is not unmapped: without it 4-5 of every 10 steps faulted in a
fresh block); at most two arenas (each may keep one step's block). Then the first ~10 steps each thread
finds its block and later steps fault in none (tests/test_hostmem.py). One arena reused as well but cost the
compile-heavy test suite ~4% more CPU time (lock contention: +36% voluntary context switches). README, Speed,
for the measured effect. The cost: a process keeps up to 1 GiB of freed memory at the heap's top.

``import rnnlab`` applies it once on glibc; ``RNNLAB_KEEP_FREED_MEMORY=0`` leaves malloc as it was. Other C
libraries: nothing is changed.
"""

import ctypes
import os
import platform

ENV = "RNNLAB_KEEP_FREED_MEMORY"
TRIM_THRESHOLD = 1 << 30  # bytes of free memory at the heap's top kept before any is returned
TOP_PAD = 64 << 20  # bytes added to every heap extension; also what keeps an empty thread heap mapped
ARENAS = 2
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8  # glibc <malloc.h>


def keep_freed_memory() -> bool:
    """Sets glibc's ``M_MMAP_MAX`` to 0, ``M_ARENA_MAX`` to 2, ``M_TOP_PAD`` to 64 MiB and
    ``M_TRIM_THRESHOLD`` to 1 GiB for this process (unless ``RNNLAB_KEEP_FREED_MEMORY=0`` or the C library is
    not glibc); returns whether all were set. Threads that already have an arena keep it: call before the
    first JAX computation."""
    if os.environ.get(ENV, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    settings = (
        (_M_MMAP_MAX, 0),
        (_M_ARENA_MAX, ARENAS),
        (_M_TOP_PAD, TOP_PAD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    )
    return all([bool(mallopt(option, value)) for option, value in settings])
