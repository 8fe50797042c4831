"""Training: configs, the train state, pure steps, one loop, evaluation, checkpoints and metrics."""
