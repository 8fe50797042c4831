r"""Temporal order (Hochreiter & Schmidhuber 1997, experiment 6a; Pascanu et al. 2013): a sequence of random
distractors holds X or Y at two random places, one in [0.1T, 0.2T) and one in [0.5T, 0.6T); the class is
their order (XX, XY, YX, YY). Chance accuracy 1/4; the relevant symbols are 0.4T-0.9T steps before the end.

    rnnlab experiment experiments/temporal_order.py --workdir results/temporal_order   # T in {50, 100, 200}
    rnnlab experiment experiments/temporal_order.py:quick --workdir /tmp/to       # T = 50, 2 cells, 1 seed

Expected: the tanh RNN stays at chance beyond a few dozen steps (Pascanu et al. 2013 needed their regulariser
for T >= 50); the LSTM with chrono initialisation and the GRU solve it (accuracy -> 1). ``test/accuracy``
against 0.25 is the result; the grid is 3 lengths x 5 cells x 3 seeds (the GRU with and without a chrono
initialisation of its update gate).
"""

from rnnlab.training.config import default_config

ARGS = ("quick",)  # FILE.py:ARG (rnnlab.experiment)

CELLS = {
    "rnn": {"model.cell": "rnn"},
    "lstm_fb1": {"model.cell": "lstm", "model.cell_options": {"forget_bias": 1.0}},
    "lstm_chrono": {"model.cell": "lstm"},  # chrono T_max = T (below)
    "gru": {"model.cell": "gru"},
    "gru_chrono": {"model.cell": "gru"},  # chrono T_max = T on the update gate (below)
}


def get_config(arg: str | None = None):
    c = default_config()
    c.task.name = "temporal_order"
    c.task.params.length = 50
    c.task.params.num_eval = 512
    c.num_seeds = 1 if arg == "quick" else 3
    c.model.cell = "lstm"
    c.model.hidden_size = 64
    c.model.embed_dim = 16
    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.steps = 300 if arg == "quick" else 1500
    c.train.batch_size = 32
    c.train.log_every = 50
    c.train.eval_every = 250
    c.train.eval_batch_size = 256
    c.train.progress = False
    return c


def get_sweep(arg: str | None = None):
    lengths, cells = ((50,), ("rnn", "lstm_chrono")) if arg == "quick" else ((50, 100, 200), tuple(CELLS))
    points = []
    for t in lengths:
        for name in cells:
            point = {"name": f"{name}_T{t}", "task.params.length": t, **CELLS[name]}
            if name in ("lstm_chrono", "gru_chrono"):
                point["model.cell_options"] = {"chrono_tmax": t}
            points.append(point)
    return points
