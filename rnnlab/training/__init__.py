"""Training: configs, the train state, pure steps, one loop with adapters (truncated BPTT, seq2seq),
evaluation, checkpoints, metrics and data parallelism.

    from rnnlab.training import train_and_evaluate
    from rnnlab.training.config import default_config
    config = default_config(); config.task.params.length = 50
    train_and_evaluate(config, "runs/adding")
"""

from rnnlab.training.loop import NonFiniteError, train_and_evaluate
from rnnlab.training.state import TrainState

__all__ = ["NonFiniteError", "TrainState", "train_and_evaluate"]
