"""Measuring a group of points in this process: compile each training step once, read XLA's memory plan,
skip what does not fit the memory budget, then time every runnable point in interleaved rounds beside a
1024^3 float32 matmul (the rate that defines the matmul-FLOP floor).

A record is a flat dict: the point's fields, then ``status`` ('ok', 'memory_only', 'over_budget', 'n/a',
'error'), ``note``, ``platform``, ``device_kind``, ``params``, ``flops`` (matmul FLOPs of the step),
``temp_bytes`` / ``argument_bytes`` / ``output_bytes`` (per device), ``compile_s``, ``step_s`` (median
seconds per step), ``step_s_rounds``, ``tokens_per_s`` (K B T per second), ``matmul_gflops`` (the rate
measured in the same rounds), ``floor_s`` and ``floor_pct`` (the matmul-FLOP floor and step time's share of
it), ``load_avg`` (1-minute load average at the start and the end of the group).
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from rnnlab.scaling.points import Point, why_not
from rnnlab.scaling.step import Step, build
from rnnlab.scan import default_platform

MATMUL_N = 1024
STATUSES = ("ok", "memory_only", "over_budget", "n/a", "error")


def _matmul() -> Callable[[], None]:
    """A closure that runs one 1024^3 f32 matmul to completion (compiled on first use)."""
    a = jnp.ones((MATMUL_N, MATMUL_N), jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(mm(a, a))
    return lambda: jax.block_until_ready(mm(a, a))


def _timed(fn: Callable[[], None], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


@dataclasses.dataclass
class _Live:
    """A point being timed: its compiled step (state fed back after each call) and its calls per round."""

    point: Point
    step: Step
    calls: int
    record: dict

    def __call__(self):
        self.step.state, _ = self.step.run(self.step.state, self.step.batch)
        jax.block_until_ready(self.step.state)


def _prepare(
    point: Point, budget_bytes: float, min_seconds: float, initial_states: dict, log
) -> tuple[dict, _Live | None]:
    """The point's record so far, and the point ready to time (None if it is not to be timed)."""
    record = {**dataclasses.asdict(point), "key": point.key, "status": "ok", "note": ""}
    record.update(platform=default_platform(), device_kind=jax.devices()[0].device_kind)
    reason = why_not(point, default_platform(), jax.device_count())
    if reason:
        return {**record, "status": "n/a", "note": reason}, None
    try:
        step = build(point, initial_states)
    except Exception as e:  # noqa: BLE001 - a point that fails to build is a result, not a crash
        return {**record, "status": "error", "note": f"build: {type(e).__name__}: {e}"[:500]}, None
    record.update(params=step.params, flops=step.flops, compile_s=step.compile_s)
    if step.memory is not None:
        record.update({f"{k}_bytes": v for k, v in step.memory.items()})
        total = sum(step.memory.values())
        if total > budget_bytes:
            note = f"needs {total / 2**20:.0f} MiB > budget {budget_bytes / 2**20:.0f} MiB (XLA memory plan)"
            return {**record, "status": "over_budget", "note": note}, None
    if not point.timed:
        return {**record, "status": "memory_only"}, None
    live = _Live(point, step, 1, record)
    try:
        start = time.perf_counter()
        live()  # warm-up (and, under pmap, the compilation)
        first = time.perf_counter() - start
        if step.memory is None:
            record["compile_s"] = first
        live.calls = max(1, math.ceil(min_seconds / max(_timed(live, 1), 1e-9)))
    except Exception as e:  # noqa: BLE001 - e.g. out of memory at run time
        return {**record, "status": "error", "note": f"run: {type(e).__name__}: {e}"[:500]}, None
    log(f"  ready {point.key} (compile {record['compile_s']:.1f} s, {live.calls} calls/round)")
    return record, live


def measure_group(
    points: Sequence[Point],
    *,
    rounds: int = 3,
    budget_bytes: float = float("inf"),
    min_seconds: float = 0.2,
    initial_states: dict | None = None,
    log=lambda msg: None,
) -> list[dict]:
    """Records of ``points`` (see the module docstring), timed in ``rounds`` interleaved rounds.

    Args:
      points: points of one group (run together, in this process).
      rounds: timed rounds; each times every runnable point for at least ``min_seconds`` and the matmul.
      budget_bytes: a point whose XLA temp + argument + output bytes exceed this is not run.
      initial_states: see :func:`rnnlab.scaling.step.build` (share one dict between groups).
    """
    initial_states = {} if initial_states is None else initial_states
    load_start = os.getloadavg()[0]
    prepared = [_prepare(p, budget_bytes, min_seconds, initial_states, log) for p in points]
    records = [record for record, _ in prepared]
    live = [lv for _, lv in prepared if lv is not None]
    del prepared
    matmul = _matmul()
    mm_times, times = [], {id(lv): [] for lv in live}
    for _ in range(rounds if live else 0):
        mm_times.append(_timed(matmul, 3))
        for lv in live:
            try:
                times[id(lv)].append(_timed(lv, lv.calls))
            except Exception as e:  # noqa: BLE001
                lv.record.update(status="error", note=f"run: {type(e).__name__}: {e}"[:500])
    rate = 2 * MATMUL_N**3 / statistics.median(mm_times) if mm_times else None
    load = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    for lv in live:
        sec = times[id(lv)]
        if lv.record["status"] != "ok" or not sec:
            continue
        step_s = statistics.median(sec)
        floor_s = lv.record["flops"] / rate
        lv.record.update(
            step_s=step_s,
            step_s_rounds=sec,
            tokens_per_s=lv.point.tokens / step_s,
            matmul_gflops=rate / 1e9,
            floor_s=floor_s,
            floor_pct=100 * floor_s / step_s,
        )
    live.clear()  # the compiled programs and their device buffers go before the next group
    return [{**record, "load_avg": load} for record in records]
