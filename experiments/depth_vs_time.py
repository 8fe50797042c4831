r"""100 steps ~ 100 layers: the gradient ||dL/dh|| through a 100-layer feed-forward tanh net next to a tanh
RNN unrolled 100 steps (same width, the same initialiser for the shared matrix), and the gated counterparts (a
highway net next to an LSTM and a GRU), at initialisation (``rnnlab.analysis.depth``).

    rnnlab experiment experiments/depth_vs_time.py --workdir results/depth_vs_time        # L = T = 100
    rnnlab experiment experiments/depth_vs_time.py:quick --workdir /tmp/depth_quick       # L = T = 20, H = 16
    rnnlab experiment experiments/depth_vs_time.py:300 --workdir /tmp/depth_300           # L = T = 300

No training: every net is initialised ``seeds`` times and differentiated once; the report has one figure (log
||dL/dh|| against the distance from the loss, 6 curves, geometric mean over seeds) and two tables (decay rate
per layer / step, mean ± std over seeds, at ``radius`` and at each of ``radii``). Expected: at radius 1 the
untied and tied deep tanh nets decay at nearly the same rate per layer; the tanh RNN driven by inputs decays
faster per step (inputs push units towards saturation); gating (highway, LSTM with forget bias 2) keeps the
gradient far larger over 100 units; every tanh rate is <= the radius (tanh' <= 1, ||W|| = radius).
"""

from rnnlab.analysis import depth

ARGS = ("quick", "<int>")  # FILE.py:ARG (rnnlab.experiment): a small version, or the depth L = T

REPORT = "depth_vs_time"


def get_config(arg: str | None = None):
    c = depth.default_config()  # width 64, depth 100, 3 seeds, orthogonal init, radius 1, gate bias 2
    if arg == "quick":
        c.width, c.depth, c.seeds = 16, 20, 3
    elif arg:
        c.depth = int(arg)
    return c


def get_sweep(arg: str | None = None):
    return []  # not a grid of training runs: run_study measures every net itself
