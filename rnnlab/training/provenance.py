"""Provenance: what produced a run directory, recorded in ``workdir/provenance.json``.

A number in a paper must be traceable to the code and machine that produced it. Every invocation of
``train_and_evaluate`` on a run directory (the first one and each resumption) appends a *session*: rnnlab's
version and git commit (with a dirty flag; 'unknown' outside a git checkout), the versions of the packages
that change results, the backend and devices, ``XLA_FLAGS``, host, command line, start and end times, the
step it started from and how it ended ('finished', 'failed: <error>'; 'running' when the process was killed).
A resumed run whose sessions differ in versions shows it in ``rnnlab report``
(``rnnlab.analysis.report_provenance``). The model's parameter count (``rnnlab.models.count_params``, one
seed) is recorded once for the run.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from typing import Any

import jax

PROVENANCE_FILE = "provenance.json"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # rnnlab/
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def git_state(path: str) -> dict[str, Any]:
    """``{'commit': sha or 'unknown', 'dirty': bool or None}`` of the git checkout holding ``path``."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", path, *args], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):  # no git, not a checkout, or git too slow
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    """Everything a session records about the code and the machine (not the times)."""
    devices = jax.devices()
    return {
        "rnnlab": {"version": _version("rnnlab"), **git_state(_PACKAGE_DIR)},
        "packages": {name: _version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": {
            "count": len(devices),
            "local": jax.local_device_count(),
            "kinds": sorted({d.device_kind for d in devices}),
            "processes": jax.process_count(),
        },
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "host": socket.gethostname(),
        "command": list(sys.argv),
    }


def read(workdir: str) -> dict[str, Any]:
    """The run's provenance (``{}`` when there is none, or it is unreadable)."""
    try:
        with open(os.path.join(workdir, PROVENANCE_FILE)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Session:
    """One invocation on a run directory: ``with Session(workdir) as s: ...; s.start(params, step)``.

    Args:
      workdir: the run directory.
      enabled: False in the processes that do not write files (all but process 0).
    """

    def __init__(self, workdir: str, enabled: bool = True):
        self.workdir, self.enabled = workdir, enabled
        self._data: dict[str, Any] | None = None
        self._started = now()

    def __enter__(self):
        return self

    def start(self, param_count: int, start_step: int) -> None:
        """Appends this session (status 'running') once the model exists and the start step is known."""
        if not self.enabled:
            return
        data = read(self.workdir)
        sessions = [s for s in data.get("sessions", []) if isinstance(s, dict)]
        self._data = {
            "param_count": int(param_count),
            "sessions": sessions
            + [{"started": self._started, "ended": None, "status": "running", "start_step": start_step}],
        }
        self._data["sessions"][-1].update(environment())
        self._write()

    def __exit__(self, exc_type, exc, tb):
        if self._data is None:
            return
        status = "finished" if exc is None else f"failed: {exc_type.__name__}: {str(exc)[:300]}"
        self._data["sessions"][-1].update(ended=now(), status=status)
        self._write()

    def _write(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        path = os.path.join(self.workdir, PROVENANCE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(self._data, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)
