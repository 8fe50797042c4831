r"""Multi-step forecasting (regression): a window of past values -> LSTM -> the last state -> the next k values
(``task.params.horizon`` = k, ``num_outputs`` = k). MSE / MAE (standardised units) against the naive forecast
(the last value repeated) and the seasonal-naive one (the value one season earlier).

    rnnlab data prepare series/sunspots ; rnnlab data prepare series/co2
    rnnlab train --config experiments/forecast.py --workdir runs/sunspots            # sunspots, k = 4 years
    rnnlab train --config experiments/forecast.py:co2 --workdir runs/co2             # weekly CO2, k = 4 weeks
    rnnlab train --config experiments/forecast.py:co2:8 --workdir runs/co2_h8        # any horizon: NAME:K
    rnnlab predict --workdir runs/sunspots --evaluate       # MSE/MAE of the model, naive and seasonal naive

``arg``: ``NAME[:K]`` with NAME ``sunspots`` (default; 309 yearly values, window 20, season 11 = the solar
cycle) or ``co2`` (2,284 weekly values, window 64, season 52), K the horizon (default 4).
``eval/mse_over_baseline`` divides by ``TaskInfo.baseline``: seasonal naive when the season fits in the window
(both configs here), else naive. Runtime on 2 shared CPU cores: about 1 minute each (sunspots 500 steps, co2
800 steps). Expected: the LSTM beats both trivial forecasts on sunspots (ratio well below 1) and the
seasonal-naive one on co2 (measured: see README.md).
"""

from rnnlab.config import default_config

SERIES = {"sunspots": {"window": 20, "season": 11}, "co2": {"window": 64, "season": 52}}


def get_config(arg: str | None = None):
    name, _, horizon = (arg or "sunspots").partition(":")
    if name not in SERIES:
        raise ValueError(f"unknown series {name!r}; valid: {', '.join(SERIES)}")
    c = default_config()
    c.parallel = "none"
    c.task.name = name
    c.task.params = {**SERIES[name], "horizon": int(horizon or 4), "relative": True}
    c.model.cell = "lstm"
    c.model.hidden_size = 32
    c.model.head = "last"
    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 20
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.optim.weight_decay = 1e-4
    c.train.steps = 200 if name == "sunspots" else 800  # sunspots: ~190 training windows, overfits later
    c.train.batch_size = 16 if name == "sunspots" else 32
    c.train.eval_batch_size = 64
    c.train.eval_every = 100 if name == "sunspots" else 200
    c.train.log_every = 50
    c.train.progress = False
    return c
