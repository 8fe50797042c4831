"""What a sweep's records say: power laws fitted on logs, and the crossover points between backends.

Shape legend: B batch, T time (``length``), H hidden size (``hidden``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np

AXES = ("length", "hidden", "batch")
#: the point fields that identify a shape; records that agree on them (and the cell) are compared.
SHAPE = ("cell", "length", "hidden", "batch", "layers", "seeds", "devices", "parallel")


def total_bytes(record: dict) -> float | None:
    """XLA temp + argument + output bytes per device (None when not analysed)."""
    parts = [record.get(f"{k}_bytes") for k in ("temp", "argument", "output")]
    return None if any(p is None for p in parts) else float(sum(parts))


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """``y = coefficient * prod_x x^exponents[x]``, fitted by least squares on logs.

    Attributes:
      exponents: axis -> exponent, for the axes that vary in the data.
      coefficient: the prefactor.
      r2: the coefficient of determination of the fit on logs.
      n: the number of records fitted.
    """

    exponents: dict[str, float]
    coefficient: float
    r2: float
    n: int

    def __call__(self, **x: float) -> float:
        return self.coefficient * math.prod(x[k] ** e for k, e in self.exponents.items())


def fit_power_law(records: Iterable[dict], y: str = "step_s", axes: Sequence[str] = AXES) -> PowerLaw | None:
    """The power law of ``y`` in the ``axes`` that vary among ``records`` (those with ``y`` > 0).

    Returns None when no axis varies or the exponents are underdetermined (fewer records than parameters);
    with exactly as many, the fit is exact and ``r2`` is 1 by construction.
    """
    rows = [r for r in records if (r.get(y) or 0) > 0]
    used = [a for a in axes if len({r[a] for r in rows}) > 1]
    if not used or len(rows) < len(used) + 1:
        return None
    design = np.array([[math.log(r[a]) for a in used] + [1.0] for r in rows])
    target = np.array([math.log(r[y]) for r in rows])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    spread = float(np.sum((target - target.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else 1.0
    return PowerLaw(dict(zip(used, map(float, coef[:-1]), strict=True)), math.exp(coef[-1]), r2, len(rows))


def paired(records: Iterable[dict], first: str, second: str) -> list[tuple[dict, dict]]:
    """``(record of backend first, record of backend second)`` at equal shapes, both timed, by T."""
    by_shape: dict[tuple, dict[str, dict]] = {}
    for r in records:
        if r.get("step_s"):
            by_shape.setdefault(tuple(r[k] for k in SHAPE), {})[r["backend"]] = r
    pairs = [(b[first], b[second]) for b in by_shape.values() if first in b and second in b]
    return sorted(pairs, key=lambda p: tuple(p[0][k] for k in ("length", "hidden", "batch")))


def speed_crossover(
    records: Iterable[dict], fast: str, slow: str
) -> tuple[list[tuple[dict, float]], int | None]:
    """Where backend ``fast`` beats ``slow``: ``([(record of fast, time ratio fast/slow)], smallest T at
    which fast is faster at every larger measured T, or None if it never is)."""
    ratios = [(a, a["step_s"] / b["step_s"]) for a, b in paired(records, fast, slow)]
    crossover = None
    for record, ratio in reversed(sorted(ratios, key=lambda p: p[0]["length"])):
        if ratio >= 1.0:
            break
        crossover = record["length"]
    return ratios, crossover


@dataclasses.dataclass(frozen=True)
class MemoryCrossover:
    """Where ``plain`` stops fitting a memory budget and ``lean`` still fits.

    Attributes:
      measured: the smallest analysed T with plain over the budget and lean within it (None: not seen).
      plain_limit, lean_limit: T at which each backend's fitted memory ~ T^a reaches the budget (None: no
        fit); extrapolated beyond the analysed range when the budget is not reached there.
      plain_fit, lean_fit: the fitted power laws of total bytes in T.
    """

    measured: int | None
    plain_limit: float | None
    lean_limit: float | None
    plain_fit: PowerLaw | None
    lean_fit: PowerLaw | None


def memory_crossover(records: Sequence[dict], budget_bytes: float, plain: str = "xla", lean: str = "remat"):
    """:class:`MemoryCrossover` of ``records`` (one cell, H, B; varying T) against ``budget_bytes``."""
    mem = {
        b: {r["length"]: total_bytes(r) for r in records if r["backend"] == b and total_bytes(r)}
        for b in (plain, lean)
    }
    both = sorted(set(mem[plain]) & set(mem[lean]))
    measured = next((t for t in both if mem[plain][t] > budget_bytes >= mem[lean][t]), None)
    fits, limits = {}, {}
    for b in (plain, lean):
        rows = [{"length": t, "bytes": v} for t, v in mem[b].items()]
        fit = fits[b] = fit_power_law(rows, "bytes", ("length",))
        slope = fit.exponents.get("length", 0.0) if fit else 0.0
        limits[b] = (budget_bytes / fit.coefficient) ** (1 / slope) if fit and slope > 0 else None
    return MemoryCrossover(measured, limits[plain], limits[lean], fits[plain], fits[lean])


def efficiency(records: Iterable[dict]) -> list[dict]:
    """Data-parallel scaling: for each (parallel mode, devices) the tokens/s, the speed-up over the
    one-device run of the same shape and the efficiency speed-up / devices."""
    timed = [r for r in records if r.get("tokens_per_s")]
    base = {
        tuple(r[k] for k in ("cell", "length", "hidden", "batch", "seeds")): r
        for r in timed
        if r["devices"] == 1
    }
    out = []
    for r in sorted(timed, key=lambda r: (r["parallel"], r["devices"])):
        one = base.get(tuple(r[k] for k in ("cell", "length", "hidden", "batch", "seeds")))
        speedup = r["tokens_per_s"] / one["tokens_per_s"] if one else None
        out.append(
            {
                "parallel": r["parallel"],
                "devices": r["devices"],
                "tokens_per_s": r["tokens_per_s"],
                "speedup": speedup,
                "efficiency": None if speedup is None else speedup / r["devices"],
            }
        )
    return out
