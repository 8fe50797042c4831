r"""Gradient flow: ||dL/dh_t|| against the distance T - t (T = 1000) at initialisation and after training.

    rnnlab experiment experiments/gradient_flow.py --workdir results/gradient_flow
    rnnlab experiment experiments/gradient_flow.py:quick --workdir /tmp/gf   # T = 200, 20 steps

Task: the adding problem (regression on the last state, so the probes give exactly dL/dh_t). Every variant is
recorded at step 0 (initialisation) and after ``train.steps`` steps of Adam. Runtime on 2 CPU cores: 6.5
minutes measured (T = 1000, 9 variants, 60 steps each; machine shared with other jobs). Expected (Pascanu et
al. 2013; Hochreiter & Schmidhuber 1997): the tanh RNN's gradient shrinks geometrically with distance; gating
with a forget bias and chrono initialisation (Tallec & Ollivier 2018) keeps it alive over hundreds of steps;
the IRNN (Le et al. 2015) and the LRU with |lambda| near 1 decay slowly at initialisation. Measured results
are in README.md.
"""

from rnnlab.training.config import default_config

ARGS = ("quick", "<int>")  # FILE.py:ARG (rnnlab.experiment): T = 200 and 20 steps, or length T

REPORT = "gradient_flow"

VARIANTS = {
    "rnn_tanh_gaussian": {"model.cell": "rnn", "model.cell_options": {"recurrent_init": "gaussian"}},
    "rnn_tanh_orthogonal": {"model.cell": "rnn", "model.cell_options": {"recurrent_init": "orthogonal"}},
    "irnn": {"model.cell": "irnn", "optim.learning_rate": 1e-5},  # Le et al. (2015) needed tiny rates
    "lstm_forget_bias_0": {"model.cell": "lstm", "model.cell_options": {"forget_bias": 0.0}},
    "lstm_forget_bias_1": {"model.cell": "lstm", "model.cell_options": {"forget_bias": 1.0}},
    "lstm_chrono": {"model.cell": "lstm"},  # chrono T_max = T, the sequence length (get_sweep)
    "gru": {"model.cell": "gru"},
    "lru": {"model.cell": "lru", "model.cell_options": {"r_min": 0.9, "r_max": 0.999}},
    "mingru": {"model.cell": "mingru"},
}


def _length(arg):
    return 200 if arg == "quick" else int(arg) if arg else 1000


def get_config(arg: str | None = None):
    """``arg``: 'quick' (T = 200, 20 steps) or the sequence length T (default 1000)."""
    c = default_config()
    c.task.name = "adding"
    c.task.params.length = _length(arg)
    c.task.params.num_eval = 256
    c.model.hidden_size = 64
    c.optim.name = "adam"
    c.optim.learning_rate = 1e-3
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.steps = 20 if arg == "quick" else 60
    c.train.batch_size = 16
    c.train.log_every = 10
    c.train.eval_batches = 2
    c.train.eval_batch_size = 128
    c.train.progress = False
    c.train.nonfinite = "skip"  # an exploding variant keeps its diagnostics; skipped updates are counted
    c.diagnostics.every = c.train.steps  # records at step 0 and at the end
    c.diagnostics.jacobian = True
    return c


def get_sweep(arg: str | None = None):
    chrono = {"model.cell_options": {"chrono_tmax": _length(arg)}}
    return [
        {"name": name, **overrides, **(chrono if name == "lstm_chrono" else {})}
        for name, overrides in VARIANTS.items()
    ]
