r"""Video classification: a clip of one real handwritten digit (mnist5k; test clips from digit images never
seen in training) moving across a 48 x 48 canvas for 6-10 frames -> its motion class (8 directions x 2 speeds
= 16 classes). A CNN encodes every frame, an LSTM reads the frame features, its last output classifies
(Donahue et al. 2015, "Long-term recurrent convolutional networks"). Accuracy against chance (1/16).

    rnnlab data prepare mnist5k
    rnnlab experiment experiments/video.py --workdir results/video      # the three points below + report
    rnnlab train --config experiments/video.py --workdir runs/video     # the first point only
    rnnlab predict --workdir runs/video --evaluate                      # accuracy vs chance (test split)

The control (``get_sweep``): with only 2 directions (east, west) and one speed, every class differs from the
other only in the sense of the motion, which only the frame order shows. Trained on clips whose frames are
shuffled (``moving_digits`` ``shuffled=True``), the same model must stay at chance (1/2) while the model on
ordered frames learns: what it learns is the order, not a frame's appearance.
"""

from rnnlab.training.config import default_config

ARGS = ()  # FILE.py:ARG (rnnlab.experiment): none

CLIPS = {"num_eval": 1000, "canvas": (48, 48), "num_frames": (6, 10)}


def get_config(arg: str | None = None):
    c = default_config()
    c.parallel = "none"
    c.task.name = "moving_digits"
    c.task.params = dict(CLIPS)
    c.model.cell = "lstm"
    c.model.hidden_size = 64
    c.model.encoder = "conv"
    c.model.encoder_features = (8, 16)
    c.model.frame_features = 64
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 30
    c.optim.min_lr_ratio = 0.05
    c.train.steps = 800
    c.train.batch_size = 32
    c.train.eval_batch_size = 250
    c.train.eval_every = 400
    c.train.log_every = 50
    c.train.progress = False
    if arg:
        raise ValueError(f"unknown video config {arg!r}; valid: (none)")
    return c


def get_sweep(arg: str | None = None):
    two = {**CLIPS, "directions": 2, "speeds": (1,)}
    return [
        {"name": "16_classes"},
        {"name": "2_directions_ordered", "task.params": two, "train.steps": 400},
        {"name": "2_directions_shuffled", "task.params": {**two, "shuffled": True}, "train.steps": 400},
    ]
