r"""The remedies ablation on one hard setting, the adding problem at T = 200: which of clipping, optimizer,
forget-gate initialisation, gate slope and recurrent initialisation make an LSTM learn.

    rnnlab experiment experiments/remedies.py:cpu --workdir results/remedies      # 14 points (below)
    rnnlab experiment experiments/remedies.py --workdir results/remedies_full    # the full factorial grid

Factors (Pascanu et al. 2013 for clipping; Tallec & Ollivier 2018 for chrono; Le et al. 2015 for identity):
clip none / global_norm / value x optimizer sgd / rmsprop / adam x forget bias 0 / 1 / chrono x gate slope
beta in {1, 2, 4} x recurrent init orthogonal / identity: 162 configurations, 3 seeds each (vmapped).
``cpu`` varies one factor at a time around the default (adam, global-norm clipping, chrono, beta = 1,
orthogonal; 10 points) and adds every clipping x optimizer pair (none / global_norm / value x sgd / rmsprop /
adam, the other factors at the default; 4 more): 14 runs, 32.7 min with two at a time on 2 CPU cores beside
other jobs; the full grid (162 runs): about 110 min of unpaused command time, two points at a time on 2 CPU
cores (55 s per point, median; measured across two sittings, README "Experiments").
The report's final-metrics table gives eval ``mse_over_baseline`` mean ± std over seeds (1 = the baseline).
Expected: chrono (and forget bias 1) learn, forget bias 0 learns slowly or not at all; plain SGD is far slower
than adaptive optimizers within the budget; clipping matters mostly for stability of SGD.
"""

import itertools

from rnnlab.training.config import default_config

ARGS = ("cpu",)  # FILE.py:ARG (rnnlab.experiment): one factor at a time

T = 200
CLIPS = {
    "none": {"optim.clip": "none"},
    "global_norm": {"optim.clip": "global_norm", "optim.clip_value": 1.0},
    "value": {"optim.clip": "value", "optim.clip_value": 0.1},
}
OPTIMIZERS = {
    "sgd": {"optim.name": "momentum", "optim.learning_rate": 0.05},
    "rmsprop": {"optim.name": "rmsprop", "optim.learning_rate": 1e-3},
    "adam": {"optim.name": "adam", "optim.learning_rate": 3e-3},
}
FORGET = {"fb0": {"forget_bias": 0.0}, "fb1": {"forget_bias": 1.0}, "chrono": {"chrono_tmax": T}}
SLOPES = (1.0, 2.0, 4.0)
INITS = ("orthogonal", "identity")
DEFAULT = ("global_norm", "adam", "chrono", 1.0, "orthogonal")


def get_config(arg: str | None = None):
    c = default_config()
    c.task.name = "adding"
    c.task.params.length = T
    c.task.params.num_eval = 512
    c.num_seeds = 3
    c.model.cell = "lstm"
    c.model.hidden_size = 64
    c.train.steps = 600
    c.train.batch_size = 32
    c.train.log_every = 50
    c.train.eval_every = 300
    c.train.eval_batch_size = 256
    c.train.progress = False
    c.train.nonfinite = "skip"
    return c


def point(clip, opt, forget, slope, init):
    cell_options = {**FORGET[forget], "gate_slope": slope, "recurrent_init": init}
    return {
        "name": f"clip={clip},opt={opt},forget={forget},slope={slope:g},init={init}",
        **CLIPS[clip],
        **OPTIMIZERS[opt],
        "model.cell_options": cell_options,
    }


def get_sweep(arg: str | None = None):
    if arg == "cpu":
        choices = (tuple(CLIPS), tuple(OPTIMIZERS), tuple(FORGET), SLOPES, INITS)
        combos = {DEFAULT}
        for i, values in enumerate(choices):  # one factor at a time
            for v in values:
                combos.add(DEFAULT[:i] + (v,) + DEFAULT[i + 1 :])
        for clip, opt in itertools.product(CLIPS, OPTIMIZERS):  # clipping matters with which optimizer
            combos.add((clip, opt, *DEFAULT[2:]))
        return [point(*c) for c in sorted(combos, key=str)]
    return [point(*c) for c in itertools.product(CLIPS, OPTIMIZERS, FORGET, SLOPES, INITS)]
