"""Running a sweep: one worker process per device count (XLA fixes the number of devices when it
starts), records appended to ``workdir/records.jsonl`` group by group, so an interrupted sweep resumes where
it stopped.

    python -m rnnlab.scaling SPEC.json RECORDS.jsonl   # a worker (what run_sweep starts; see worker())

On CPU (forced with ``JAX_PLATFORMS=cpu``) a worker sees ``devices`` fake host devices
(``--xla_force_host_platform_device_count``); on a GPU host it sees the first ``devices`` GPUs
(``CUDA_VISIBLE_DEVICES``); elsewhere all devices (points asking for more are recorded as not applicable).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence

from rnnlab.scaling.measure import measure_group
from rnnlab.scaling.points import Point

RECORDS = "records.jsonl"
_FORCE = "--xla_force_host_platform_device_count"


def load_records(path: str) -> dict[str, dict]:
    """``{point key: record}`` from a records file (the last record of a key wins; bad lines are skipped)."""
    records = {}
    if not os.path.exists(path):
        return records
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "key" in record:
                records[record["key"]] = record
    return records


def _append(path: str, records: Sequence[dict]) -> None:
    with open(path, "a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def groups_of(points: Sequence[Point]) -> list[list[Point]]:
    """Points grouped by ``group`` label, in first-seen order."""
    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(p.group or p.key, []).append(p)
    return list(groups.values())


def worker_env(devices: int, platform: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker that should run on ``platform`` and see ``devices`` devices of it."""
    env = dict(os.environ if env is None else env)
    if platform == "cpu":
        env["JAX_PLATFORMS"] = "cpu"  # also on a machine with an accelerator (a CPU baseline)
        flags = re.sub(rf"{_FORCE}=\S+", "", env.get("XLA_FLAGS", "")).split()
        env["XLA_FLAGS"] = " ".join([*flags, f"{_FORCE}={devices}"])
    elif platform == "gpu" and "CUDA_VISIBLE_DEVICES" not in env:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(devices))
    return env


def run_sweep(
    points: Sequence[Point],
    workdir: str,
    *,
    platform: str,
    rounds: int = 3,
    budget_bytes: float = float("inf"),
    min_seconds: float = 0.2,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Measures every point not yet in ``workdir/records.jsonl``; returns the records of ``points`` in order.

    A worker that dies (killed for memory, a timeout) leaves its unfinished points recorded as errors, and
    the sweep goes on with the next device count.
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, RECORDS)
    done = load_records(path)
    todo = list(
        {p.key: p for p in points if p.key not in done}.values()
    )  # a shape two studies share runs once
    for devices in sorted({p.devices for p in todo}):
        groups = groups_of([p for p in todo if p.devices == devices])
        log(f"[scaling] {sum(map(len, groups))} points on {devices} device(s), {len(groups)} group(s)")
        spec = {
            "groups": [[dataclasses.asdict(p) for p in g] for g in groups],
            "rounds": rounds,
            "budget_bytes": budget_bytes,
            "min_seconds": min_seconds,
        }
        spec_path = os.path.join(workdir, f"spec_{devices}.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        cmd = [sys.executable, "-m", "rnnlab.scaling", spec_path, path]
        try:
            proc = subprocess.run(cmd, env=worker_env(devices, platform), timeout=timeout, check=False)
            failure = f"worker exited with code {proc.returncode}" if proc.returncode else ""
        except subprocess.TimeoutExpired:
            failure = f"worker timed out after {timeout} s"
        finished = load_records(path)
        lost = [p for g in groups for p in g if p.key not in finished]
        if lost:
            note = failure or "worker wrote no record"
            _append(
                path, [{**dataclasses.asdict(p), "key": p.key, "status": "error", "note": note} for p in lost]
            )
    records = load_records(path)
    return [{**records[p.key], "study": p.study, "group": p.group} for p in points]


def worker(spec_path: str, out_path: str) -> None:
    """Measures the groups of a spec file written by :func:`run_sweep`, appending records after each group."""
    with open(spec_path) as f:
        spec = json.load(f)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    initial_states = {}
    for group in spec["groups"]:
        points = [Point(**fields) for fields in group]
        log(f"[scaling] group {points[0].group or points[0].key}")
        records = measure_group(
            points,
            rounds=spec["rounds"],
            budget_bytes=spec["budget_bytes"],
            min_seconds=spec["min_seconds"],
            initial_states=initial_states,
            log=log,
        )
        _append(out_path, records)
