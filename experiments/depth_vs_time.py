r"""100 steps ~ 100 layers: the gradient ||dL/dh|| through a 100-layer feed-forward tanh net next to a tanh
RNN unrolled 100 steps (same width, the same initialiser for the shared matrix), and the gated counterparts (a
highway net next to an LSTM and a GRU), at initialisation (``rnnlab.analysis.depth``).

    rnnlab experiment experiments/depth_vs_time.py --workdir results/depth_vs_time        # L = T = 100
    rnnlab experiment experiments/depth_vs_time.py:quick --workdir /tmp/depth_quick       # L = T = 20, H = 16
    rnnlab experiment experiments/depth_vs_time.py:300 --workdir /tmp/depth_300           # L = T = 300

No training: every net is initialised ``seeds`` times and differentiated once; the report has one figure (log
||dL/dh|| against the distance from the loss, 6 curves, geometric mean over seeds) and two tables (decay rate
per layer / step, mean ± std over seeds, at ``radius`` and at each of ``radii``).

Measured (default config: H = 64, L = T = 100, orthogonal, gate bias 2, 3 seeds, B = 32; 51 s on 2 shared CPU
cores), geometric-mean rate per layer / step:

| radius | deep tanh untied | deep tanh tied | tanh RNN | highway | LSTM | GRU |
|---|---|---|---|---|---|---|
| 0.5 | 0.494 ± 0.001 | 0.495 ± 0.0014 | 0.323 ± 0.007 | 0.883 ± 9e-05 | 0.878 ± 0.0014 | 0.571 ± 0.009 |
| 1.0 | 0.981 ± 0.0003 | 0.981 ± 0.0002 | 0.632 ± 0.008 | 0.889 ± 0.0006 | 0.933 ± 0.003 | 0.665 ± 0.004 |
| 2.0 | 1.16 ± 0.004 | 1.16 ± 0.003 | 1.05 ± 0.007 | 0.911 ± 0.005 | 0.998 ± 0.004 | 0.829 ± 0.004 |

At radius 1, ||dL/dh|| 100 units from the loss: deep tanh 0.156 (untied and tied alike), highway 8.5e-6,
LSTM 1.1e-3, GRU 3e-18, tanh RNN 2e-20 (underflows to 0 for one seed). Reading: tying the weights changes
nothing at initialisation (untied = tied to 3 digits); what makes 100 RNN steps worse than 100 layers is the
input at every step, which drives the tanh units into saturation (0.63 vs 0.98 per unit). Every tanh rate is
<= the radius (tanh' <= 1, ||W|| = radius). Gating makes the rate nearly independent of the radius (highway
0.88-0.91, LSTM 0.88-1.0): far better than tanh when W contracts (radius 0.5) or the inputs saturate (the
RNN), but at radius 1 a deep tanh net without inputs is already near-isometric and beats the highway net,
whose carry gate mixes h with a rotation of it ((1 - t) I + t W shrinks vectors when W is orthogonal).
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
