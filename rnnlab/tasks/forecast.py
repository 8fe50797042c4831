"""Forecasting a univariate series: windows of past values -> the next `horizon` values.

Shape legend: B batch, T = `window` steps, k = `horizon`.
"""

from __future__ import annotations

import numpy as np

from rnnlab.tasks.base import TaskInfo
from rnnlab.tasks.batching import ArraySource, Loader
from rnnlab.tasks.dataset_task import DatasetTask


class ForecastTask(DatasetTask):
    """Forecasting the next `horizon` values of a univariate series: inputs float32 `[B, window, 1]` (values
    standardised with the train mean / std), targets float32 `[B]` (horizon 1: the next value) or `[B, k]`
    (horizon k: the next k values; num_outputs = k). A window belongs to the split holding all its targets
    (its inputs may reach back into the previous split). `relative=True` subtracts each window's last value
    from its inputs and targets (the model forecasts changes, so a trending series needs no extrapolation of
    levels; errors are unchanged: predictions and targets shift together). Baseline: MSE of the naive forecast
    (the last value repeated), or of the seasonal-naive one (the value one `season` earlier) when `season` is
    set and fits in the window; both are in `baseline_forecasts`."""

    kind = "regression"

    def __init__(
        self,
        name,
        dataset,
        *,
        window=20,
        season: int | None = None,
        horizon: int = 1,
        relative: bool = False,
        **kwargs,
    ):
        super().__init__(name, dataset, **kwargs)
        self.window, self.season, self.horizon = int(window), season, int(horizon)
        self.relative = bool(relative)
        if self.horizon < 1:
            raise ValueError(f"{name}: horizon must be >= 1, got {horizon}")
        parts = {s: sorted((int(r["t"]), float(r["value"])) for r in self.records(s)) for s in self.splits}
        train = np.array([v for _, v in parts["train"]])
        self.mean, self.std = float(train.mean()), float(train.std() or 1.0)
        allv = sorted(p for s in self.splits for p in parts[s])
        self.series = (np.array([v for _, v in allv], np.float32) - self.mean) / self.std
        self.targets_of = {}  # split -> first target index t of each window (targets t .. t + horizon - 1)
        for s in self.splits:
            ts = {t for t, _ in parts[s]}
            self.targets_of[s] = np.array(
                [t for t, _ in parts[s] if t >= self.window and t + self.horizon - 1 in ts], np.int64
            )

    def _shape(self, t, y):
        """`[N, k]` forecasts of the targets of windows `t` -> the task's target layout (relative; `[N]`
        when k = 1)."""
        if self.relative:
            y = y - self.series[t - 1][:, None]
        return (y[:, 0] if self.horizon == 1 else y).astype(np.float32)

    def windows(self, split):
        t = self.targets_of[split]
        if len(t) == 0:
            raise ValueError(
                f"{self.name} {split}: no window of {self.window} values followed by "
                f"{self.horizon} target(s) in this split"
            )
        x = self.series[t[:, None] + np.arange(-self.window, 0)[None, :]]
        if self.relative:
            x = x - x[:, -1:]
        return ArraySource(
            {
                "inputs": x[..., None],
                "targets": self._shape(t, self.series[t[:, None] + np.arange(self.horizon)[None, :]]),
            }
        )

    def baseline_forecasts(self, split="test", season: int | None = None) -> dict[str, np.ndarray]:
        """Trivial forecasts of `split`'s targets (same shape as them): 'naive' (the last input value) and,
        with a season m (`season` or the task's), 'seasonal_naive' (y[t+j] ~ y[t+j-m*(j//m+1)], the same
        point of the last observed season, which may lie before the window)."""
        t = self.targets_of[split]
        j = np.arange(self.horizon)[None, :]
        out = {"naive": np.repeat(self.series[t - 1][:, None], self.horizon, axis=1)}
        m = season or self.season
        if m:
            idx = t[:, None] + j - m * (j // m + 1)
            out["seasonal_naive"] = np.where(idx >= 0, self.series[np.maximum(idx, 0)], np.nan)
        return {k: self._shape(t, v) for k, v in out.items()}

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True):
        self.check_split(split)
        src = self.windows(split)

        def gather(idx):
            b = src.gather(idx)
            return {**b, "lengths": np.full(len(idx), self.window, np.int32)}

        return Loader(
            src,
            batch_size,
            seed,
            gather_fn=gather,
            num_epochs=num_epochs,
            shuffle=shuffle,
            drop_remainder=split == "train",
        )

    def _info(self):
        targets = self.windows("test").arrays["targets"]
        preds = self.baseline_forecasts("test")
        pred = preds["seasonal_naive"] if self.season and self.season <= self.window else preds["naive"]
        return TaskInfo(
            self.name, self.kind, 1, None, self.horizon, float(np.mean((pred - targets) ** 2)), "mse"
        )
