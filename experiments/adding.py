r"""The adding problem (Hochreiter & Schmidhuber 1997, the variant of Arjovsky et al. 2016): sum the two
marked values of a length-T sequence. Predicting 1 always gives MSE 1/6 (``mse_over_baseline`` = 1).

    rnnlab train --config experiments/adding.py:200 --workdir runs/adding_T200        # one run, LSTM (chrono)
    rnnlab experiment experiments/adding.py:cpu --workdir results/adding              # make experiment's part
    rnnlab experiment experiments/adding.py --workdir results/adding_full             # T in 50..400

``arg``: an integer T (one config, the default cell), ``cpu`` (T in {100, 200}: rnn, lstm with forget bias 1
and chrono, gru; T = 100: the minGRU and LRU blocks; 3 seeds trained together) or nothing (the full grid,
T in {50, 100, 200, 400}, every cell, 3 seeds; 56.8 min on 2 CPU cores with ``--jobs 2``, measured).
Expected: the tanh RNN stays at the baseline (ratio ~1) for T >= 100 while GRU and chrono-initialised LSTM go
well below it (ratio < 0.1) at T = 200 within 600 steps. Measured results are in README.md and
docs/results/adding/.

Linear recurrences in residual blocks (``BLOCKS``; rnnlab/blocks.py; 2 blocks, H = 64, 600 steps, in the
full grid only): test ``mse_over_baseline``, mean +- sample std over seeds 11, 12, 13
(``rnnlab train --config experiments/adding.py:T --config.seed=11 --config.num_seeds=3`` + the row's
overrides; the record with every command is /work/plan/science2-results.md)::

    model          T=100            T=200            T=400            per seed 11/12/13 at T=400
    minGRU block   0.002 +- 0.001   0.008 +- 0.005   0.022 +- 0.014   0.008 / 0.035 / 0.022
    LRU block      0.037 +- 0.019   0.024 +- 0.006   0.088 +- 0.021   0.107 / 0.065 / 0.091
    (GRU, same runner, T=100: 0.015 +- 0.006)

Both recipes reach a mean < 0.1 at T = 400 on the first try (one LRU seed at 0.107); no other LRU settings
were run. The blocks are the longest points of the full grid (a T = 400 block run took 12-22 minutes on the
shared machine). In the ``cpu``
grid the blocks run at T = 100 only and without diagnostics (one 3-seed block run at T = 100 took 268 s
(minGRU) and 169 s (LRU) of wall time on the 2 shared cores, diagnostics on, against 36 s for the GRU row;
with 200 steps they do not learn T = 100 yet: 0.47, 0.13), and the IRNN (which diverges, shown by
gradient_flow.py and exploding.py) is left out, so that ``make experiment`` stays within 15 minutes.
"""

from rnnlab.training.config import default_config

ARGS = ("cpu", "<int>")  # FILE.py:ARG (rnnlab.experiment): the CPU grid, or one run at length T

CPU_CELLS = {
    "rnn": {"model.cell": "rnn", "model.cell_options": {}},
    "irnn": {"model.cell": "irnn", "model.cell_options": {}, "optim.learning_rate": 1e-4},
    "lstm_fb1": {"model.cell": "lstm", "model.cell_options": {"forget_bias": 1.0}},
    "lstm_chrono": {"model.cell": "lstm"},  # get_config's cell options: chrono T_max tied to the length
    "gru": {"model.cell": "gru", "model.cell_options": {}},
}
# Linear recurrences inside the residual blocks of their papers (rnnlab/blocks.py): 2 blocks of H = 64.
BLOCKS = {
    "mingru_block": {  # Feng et al. 2024: LayerNorm -> minGRU -> residual, LayerNorm -> MLP -> residual
        "model.cell": "mingru",
        "model.block": "mingru",
        "model.num_layers": 2,
        "model.cell_options": {},
    },
    "lru_block": {  # Orvieto et al. 2023: BatchNorm -> LRU -> GELU -> GLU -> residual, near-real lambda
        "model.cell": "lru",
        "model.block": "lru",
        "model.norm": "batch",
        "model.num_layers": 2,
        "model.cell_options": {"r_min": 0.9, "r_max": 0.999, "max_phase": 0.01},
    },
}
ALL_CELLS = {
    **CPU_CELLS,
    "lru": {"model.cell": "lru", "model.cell_options": {"r_min": 0.9, "r_max": 0.999}},
    "mingru": {"model.cell": "mingru", "model.cell_options": {}},
    **BLOCKS,
}


def get_config(arg: str | None = None):
    c = default_config()
    c.task.name = "adding"
    c.task.params.length = int(arg) if arg and arg.isdigit() else 200
    c.task.params.num_eval = 512
    c.num_seeds = 1 if arg and arg.isdigit() else 3
    c.model.cell = "lstm"
    # chrono T_max (Tallec & Ollivier 2018) follows the sequence length, also under overrides and sweeps
    c.model.cell_options = {"chrono_tmax": c.task.params.get_ref("length").identity()}
    c.model.hidden_size = 64
    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.steps = 600
    c.train.batch_size = 32
    c.train.log_every = 50
    c.train.eval_every = 200
    c.train.eval_batch_size = 256
    c.train.checkpoint_every = 200
    c.train.progress = False
    c.train.nonfinite = "skip"  # an exploding run (IRNN) goes on; skipped updates are counted in metrics
    c.diagnostics.every = 300
    c.diagnostics.jacobian = False
    return c


def _points(cells, lengths):
    return [
        {"name": f"{name}_T{t}", "task.params.length": t, **overrides}
        for t in lengths
        for name, overrides in cells.items()
    ]


def get_sweep(arg: str | None = None):
    if arg and arg.isdigit():
        return [{}]
    if arg == "cpu":  # the blocks at T = 100 only, without diagnostics: make experiment stays <= 15 minutes
        cells = {k: v for k, v in CPU_CELLS.items() if k != "irnn"}  # diverges: see gradient_flow, exploding
        blocks = {k: {**v, "diagnostics.every": 0} for k, v in BLOCKS.items()}
        return _points(cells, (100, 200)) + _points(blocks, (100,))
    return _points(ALL_CELLS, (50, 100, 200, 400))
