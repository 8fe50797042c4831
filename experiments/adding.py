r"""The adding problem (Hochreiter & Schmidhuber 1997): an LSTM sums the two marked numbers of a length-T
sequence. A constant predictor reaches MSE 1/6 (``mse_over_baseline`` = 1); solving the task means well below.

    rnnlab train --config experiments/adding.py --workdir results/adding
    rnnlab train --config experiments/adding.py:200 --workdir results/adding_T200   # ARG = T
    rnnlab sweep --config experiments/adding.py --workdir results/adding_sweep --seeds 0,1

Measured (2 shared CPU cores, T=100, defaults below): RUNTIME_PLACEHOLDER
"""

from rnnlab.config import default_config


def get_config(arg: str | None = None):
  """``arg``: the sequence length T (default 100)."""
  config = default_config()
  config.task.name = 'adding'
  config.task.params.length = int(arg) if arg else 100
  config.model.cell = 'lstm'
  config.model.hidden_size = 64
  config.optim.name = 'adam'
  config.optim.learning_rate = 3e-3
  config.optim.clip = 'global_norm'
  config.optim.clip_value = 1.0
  config.train.steps = 2000
  config.train.batch_size = 64
  config.train.log_every = 100
  config.train.eval_every = 500
  config.train.eval_batches = 4
  config.train.checkpoint_every = 500
  config.train.best_metric = 'eval/mse'
  return config


def get_sweep():
  """Cells x learning rates (each point is a dict of dotted overrides)."""
  return [{'model.cell': cell, 'optim.learning_rate': lr} for cell in ('lstm', 'gru') for lr in (1e-3, 3e-3)]
