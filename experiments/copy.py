r"""Copy memory (Arjovsky et al. 2016): read 10 symbols from 8, wait T blanks, then write them back. The
memoryless baseline (predict blanks, then uniform symbols) has cross-entropy 10 ln 8 / (T + 20) per step.

    rnnlab experiment experiments/copy.py --workdir results/copy            # T in {100, 200, 500}
    rnnlab experiment experiments/copy.py:quick --workdir /tmp/copy        # T = 100, lstm/gru, 1 seed

Runtime on 2 CPU cores with ``--jobs 2`` (measured, shared machine): 5-21 min per point at T = 200 (LSTM the
slowest); at T = 500 12 min (tanh RNN), 61-82 min (LRU, GRU, LSTM); the full grid (3 lengths x 4 cells x 2000
steps x 3 seeds) takes several hours. Quick ~3 min. Expected (Arjovsky et al. 2016): the LSTM and GRU sit at
the baseline for a long time on T >= 100 and need many thousands of steps to break it; the tanh RNN stays at
it. ``eval/loss`` below the baseline means memory. Measured: README.md and docs/results/copy/ (the LRU
copies).
"""

from rnnlab.training.config import default_config

ARGS = ("quick",)  # FILE.py:ARG (rnnlab.experiment)

CELLS = {
    "rnn": {"model.cell": "rnn"},
    "lstm_chrono": {"model.cell": "lstm"},  # chrono T_max = T + 20, the sequence length (below)
    "gru": {"model.cell": "gru"},
    "lru": {"model.cell": "lru", "model.cell_options": {"r_min": 0.9, "r_max": 0.999}},
}


def get_config(arg: str | None = None):
    c = default_config()
    c.task.name = "copy"
    c.task.params.length = 100
    c.task.params.num_eval = 256
    c.num_seeds = 1 if arg == "quick" else 3
    c.model.cell = "lstm"
    c.model.hidden_size = 128
    c.optim.name = "rmsprop"  # as in Arjovsky et al. (2016)
    c.optim.learning_rate = 1e-3
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.steps = 300 if arg == "quick" else 2000
    c.train.batch_size = 32
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.eval_batch_size = 256
    c.train.progress = False
    c.train.nonfinite = "skip"
    return c


def get_sweep(arg: str | None = None):
    lengths, cells = ((100,), ("lstm_chrono", "gru")) if arg == "quick" else ((100, 200, 500), tuple(CELLS))
    points = []
    for t in lengths:
        for name in cells:
            point = {"name": f"{name}_T{t}", "task.params.length": t, **CELLS[name]}
            if name == "lstm_chrono":
                point["model.cell_options"] = {"chrono_tmax": t + 20}
            points.append(point)
    return points
