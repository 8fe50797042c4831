r"""Exploding gradients and clipping (Pascanu, Mikolov & Bengio 2013): a tanh RNN trained with plain SGD on
the adding problem (T = 100), without clipping, with global-norm clipping and with value clipping.

    rnnlab experiment experiments/exploding.py --workdir /tmp/expl        # 7 points x 3 seeds = 21 runs
    rnnlab experiment experiments/exploding.py:quick --workdir /tmp/expl  # lr 0.1, none / global_norm, 1 seed

Each seed is its own run (``num_seeds = 1``, the seed in the sweep point) so the non-finite guard
(``train.nonfinite = 'stop'``) stops only the seed that blew up; the experiment runner lists it under "Runs
stopped by the non-finite guard" and goes on. ``train.log_every = 1``: every step's ``train/grad_norm``
(the global norm before clipping) and ``train/loss`` are in ``metrics.jsonl``, so the spikes are visible.

Settings: ``lr0.1_r1.5``: orthogonal recurrent init with spectral radius 1.5, SGD learning rate 0.1;
``lr0.01_r3``: radius 3, learning rate 0.01; ``lr0.01_r1``: radius 1, learning rate 0.01, no clipping
(the control: a stable unclipped run). Clipping: ``global_norm`` to 1.0, ``value`` to 0.1 per entry.
Expected: without clipping the gradient norm jumps by many orders of magnitude within tens of steps (a
"cliff") and the run goes non-finite; with either clipping the runs finish with a finite loss.

Measured (2 shared CPU cores, 14.7 min for the 21 runs; per seed: first non-finite step, or eval
``mse_over_baseline`` at step 300; max train/grad_norm before clipping; all train losses from metrics.jsonl):

* ``lr0.1_r1.5``, no clipping: non-finite at steps 24, 19, 22 (seeds 0, 1, 2); grad norm 10 / 57 / 9.6 at
  step 1, above 1e6 from step 4 / 7 / 8 (7.6e10 at step 4 for seed 0), then ~x10 per step up to 1.2e19 /
  6.6e15 / 6.6e18 on the last finite step (train loss up to 1e34).
  global_norm: all 3 finish, eval 1.13 / 1.28 / 1.30, max grad norm 10-78, clipping fired on 282-293 of 300
  steps. value: all 3 finish, eval 1.19 / 1.31 / 1.26, max grad norm 17-58. (Stable, but a tanh RNN at
  T = 100 does not learn the task in 300 SGD steps: the ratio stays near the baseline.)
* ``lr0.01_r3``: radius 3 is in the exploding regime from the start: grad norm 1e12 / 3e12 / 5e12 at step 1.
  No clipping: that one step throws the weights into saturation, then median grad norm 1.3-1.4, no NaN, all
  finish, eval 1.13 / 1.11 / 1.09. global_norm: every step is clipped, the grad norm stays at 1e12-1e14
  (median 5e12-9e12) and the loss falls slowly: eval 12.8 / 9.08 / 6.80. value: every step clipped, eval
  1.91 / 2.15 / 1.59. Clipping bounds the step; it does not move an exploding initialisation out of the
  exploding regime, and with a fixed budget it can end worse.
* ``lr0.01_r1`` (control, no clipping): all 3 finish, max grad norm 6-11 (step 1), eval 1.06 / 1.06 / 1.02.

Gradient-norm traces: ``plot_loss_curves(runs, path, key='grad_norm', splits=('train',))`` per setting.
"""

from rnnlab.training.config import default_config

ARGS = ("quick",)  # FILE.py:ARG (rnnlab.experiment): two points, one seed

T = 100
SEEDS = (0, 1, 2)
SETTINGS = {  # name -> (spectral radius of the orthogonal recurrent init, SGD learning rate)
    "lr0.1_r1.5": (1.5, 0.1),
    "lr0.01_r3": (3.0, 0.01),
}
CLIPS = {
    "none": {"optim.clip": "none"},
    "global_norm": {"optim.clip": "global_norm", "optim.clip_value": 1.0},
    "value": {"optim.clip": "value", "optim.clip_value": 0.1},
}


def get_config(arg: str | None = None):
    c = default_config()
    c.task.name = "adding"
    c.task.params.length = T
    c.task.params.num_eval = 256
    c.num_seeds = 1  # one run per seed: the non-finite guard stops only the seed that exploded
    c.model.cell = "rnn"
    c.model.cell_options = {"recurrent_init": "orthogonal", "radius": 1.5}
    c.model.hidden_size = 64
    c.optim.name = "sgd"
    c.optim.learning_rate = 0.1
    c.optim.clip = "none"
    c.train.steps = 300
    c.train.batch_size = 32
    c.train.log_every = 1  # every step's gradient norm: the spikes are single steps
    c.train.eval_batch_size = 256
    c.train.progress = False
    c.train.nonfinite = "stop"
    return c


def _point(setting: str, radius: float, lr: float, clip: str, seed: int) -> dict:
    return {
        "name": f"{setting},clip={clip},seed={seed}",
        "model.cell_options": {"recurrent_init": "orthogonal", "radius": radius},
        "optim.learning_rate": lr,
        "seed": seed,
        **CLIPS[clip],
    }


def get_sweep(arg: str | None = None):
    if arg == "quick":
        return [_point("lr0.1_r1.5", 1.5, 0.1, clip, 0) for clip in ("none", "global_norm")]
    points = [
        _point(name, radius, lr, clip, seed)
        for name, (radius, lr) in SETTINGS.items()
        for clip in CLIPS
        for seed in SEEDS
    ]
    return points + [_point("lr0.01_r1", 1.0, 0.01, "none", seed) for seed in SEEDS]
