"""Host memory: keep the large blocks XLA:CPU frees for the next step instead of giving them back to the OS.

Why: glibc's malloc serves every block larger than its mmap threshold (at most 32 MiB) with a fresh ``mmap``
and returns it with ``munmap`` on free. XLA:CPU allocates each execution's temporary buffer in one block (an
LSTM training step at (B, T, D, H) = (32, 256, 32, 128): 45 MiB), so every step faults in and zero-fills
those pages anew: `perf` put a third of that step's time in the kernel (page faults, page clearing, munmap).
The settings: mmap off; a 1 GiB trim threshold (the heap keeps what is freed at its top); a 64 MiB top pad;
ONE arena. Why one: XLA runs a step on its worker threads, and a thread that glibc gives an arena of its own
allocates from heaps of at most 64 MiB, so a larger block (the step's temp buffer at (16, 2000, 2, 64): 86
MiB) is mmapped there whatever ``M_MMAP_MAX`` says and unmapped on free. With two arenas a process either
reused its blocks or faulted in ~33k pages (the whole temp buffer) on every step, depending on which arena
the worker thread drew (measured: 3 of 6 processes). With one arena every thread allocates from the main
heap, which grows without that limit: 0 faults per step after the first (tests/test_hostmem.py).
The cost: threads that allocate at once wait for each other; in the compile-heavy test suite one arena cost
~4% more CPU time than two (+36% voluntary context switches), so tests/conftest.py asks for two
(``RNNLAB_MALLOC_ARENAS``) and the test of the default runs in a process of its own. A process keeps up to
1 GiB of freed memory at the heap's top. README, Speed, for the measured effect.

``import rnnlab`` applies it once on glibc; ``RNNLAB_KEEP_FREED_MEMORY=0`` leaves malloc as it was;
``RNNLAB_MALLOC_ARENAS=N`` sets the arena count. Other C libraries: nothing is changed.
"""

import ctypes
import os
import platform
import sys
import warnings

ENV = "RNNLAB_KEEP_FREED_MEMORY"
ARENAS_ENV = "RNNLAB_MALLOC_ARENAS"
TRIM_THRESHOLD = 1 << 30  # bytes of free memory at the heap's top kept before any is returned
TOP_PAD = 64 << 20  # bytes added to every heap extension (and what keeps an emptied thread heap mapped)
ARENAS = 1  # the default; RNNLAB_MALLOC_ARENAS overrides it
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8  # glibc <malloc.h>


def keep_freed_memory() -> bool:
    """Sets glibc's ``M_MMAP_MAX`` to 0, ``M_ARENA_MAX`` to 1 (or ``RNNLAB_MALLOC_ARENAS``), ``M_TOP_PAD`` to
    64 MiB and ``M_TRIM_THRESHOLD`` to 1 GiB for this process (unless ``RNNLAB_KEEP_FREED_MEMORY=0`` or the C
    library is not glibc); returns whether all were set. Threads that already have an arena keep it: call
    before the first JAX computation (a warning says when it came later)."""
    if os.environ.get(ENV, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    arenas = os.environ.get(ARENAS_ENV, str(ARENAS))
    if not arenas.isdigit() or int(arenas) < 1:
        warnings.warn(
            f"{ARENAS_ENV}={arenas!r} is not a number of malloc arenas: using {ARENAS}", stacklevel=3
        )
        arenas = str(ARENAS)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    settings = (
        (_M_MMAP_MAX, 0),
        (_M_ARENA_MAX, int(arenas)),
        (_M_TOP_PAD, TOP_PAD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    )
    applied = all([bool(mallopt(option, value)) for option, value in settings])
    bridge = sys.modules.get("jax._src.xla_bridge")
    if bridge is not None and bridge.backends_are_initialized():
        warnings.warn(
            "rnnlab was imported after JAX started its backend: XLA's worker threads keep the malloc arenas "
            "they have, so a step's temp buffer over 64 MiB may still be mapped and unmapped on every step "
            "(rnnlab/hostmem.py). Import rnnlab before the first JAX computation.",
            stacklevel=3,
        )
    return applied
