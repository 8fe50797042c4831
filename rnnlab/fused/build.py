"""Compiles the C++ kernels of ``rnnlab/fused/csrc`` on first use and registers them with XLA:CPU.

The library is built with the system's C++ compiler (``$CXX``, else ``c++``, ``g++`` or ``clang++``) against
the FFI headers jaxlib ships (``jax.ffi.include_dir()``), for this machine's CPU (``-march=native``), into a
cache directory (``$RNNLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/rnnlab`` or ``~/.cache/rnnlab``), once per
(sources, compiler, jax version, CPU): a later process loads it in milliseconds. Concurrent first uses (pytest
workers) wait on a file lock for one build. Without a compiler (a ``$CXX`` that is set is the only one tried),
with a failing build, or with ``RNNLAB_NATIVE=0``, :func:`load` returns False and the time loop uses its JAX
kernels: nothing requires a compiler. Why it returned False goes to the ``rnnlab.fused.build`` logger (a
failed build as a warning, the others at INFO).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax

log = logging.getLogger(__name__)
SOURCE_DIR = Path(__file__).parent / "csrc"
TARGETS = tuple(
    f"rnnlab_{cell}_{direction}_{dtype}"
    for cell in ("lstm", "gru")
    for direction in ("forward", "backward")
    for dtype in ("f32", "f64")
)
# -O2: the hot loops are intrinsics; -O3 doubled the build time (16 s -> 37 s of CPU) for no measured gain.
FLAGS = ("-O2", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden")


def cache_dir() -> Path:
    """Where built libraries are kept."""
    if os.environ.get("RNNLAB_CACHE_DIR"):
        return Path(os.environ["RNNLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnlab"


def _compiler() -> str | None:
    """``$CXX`` if it is set (and None if it is not a program), else the first of c++, g++, clang++."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    return next((shutil.which(name) for name in ("c++", "g++", "clang++") if shutil.which(name)), None)


def _cpu_signature() -> str:
    """The CPU features ``-march=native`` compiles for (a library built on another CPU may not run here)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return os.uname().machine


def _library_path(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    digest = hashlib.sha256()
    for part in (version, jax.__version__, " ".join(FLAGS), _cpu_signature()):
        digest.update(part.encode())
    for src in sorted(SOURCE_DIR.iterdir()):
        if src.suffix in (".cc", ".h"):
            digest.update(src.name.encode() + src.read_bytes())
    return cache_dir() / f"rnnlab_rnn_cpu-{digest.hexdigest()[:16]}.so"


def _build(cxx: str, path: Path) -> None:
    """Compiles into a temporary file and renames it, so a reader never sees half a library."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same library
        if path.exists():
            return
        log.warning("rnnlab: compiling the CPU LSTM/GRU kernels once into %s ...", path)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
        os.close(fd)
        cmd = [cxx, *FLAGS, "-isystem", jax.ffi.include_dir(), str(SOURCE_DIR / "rnn_cpu.cc"), "-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            os.unlink(tmp)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        os.replace(tmp, path)


# One build and one registration per process: XLA's FFI registry is process-wide, and so is the library.
@functools.cache
def load() -> bool:
    """Builds (if needed) and loads the kernels, registering their FFI targets; False if unavailable."""
    if os.environ.get("RNNLAB_NATIVE", "1") == "0":
        log.info("rnnlab: RNNLAB_NATIVE=0, the CPU kernels are off; using the JAX ones")
        return False
    cxx = _compiler()
    if cxx is None:
        log.info("rnnlab: no C++ compiler (CXX=%r), using the JAX kernels", os.environ.get("CXX"))
        return False
    try:
        path = _library_path(cxx)
        if not path.exists():
            _build(cxx, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        log.warning("rnnlab: CPU kernels unavailable, using the JAX ones (%s)", e)
        return False
    for name in TARGETS:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
    return True
