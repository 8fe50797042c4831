r"""Image captioning (one-to-many): a strip of 1-4 real handwritten digits (mnist5k, test strips from digit
images never seen in training) -> its digits in words ("seven two nine"). A small CNN encodes the strip into
7 x 28 feature positions; their projection initialises an LSTM decoder that attends to them (Luong 'general'
attention; Vinyals et al. 2015, Xu et al. 2015). At the end the test strips are captioned greedily and with
beam search: exact match and corpus BLEU-4 against the most frequent train caption.

    rnnlab data prepare mnist5k
    rnnlab train --config experiments/captioning.py --workdir runs/captions
    rnnlab caption --workdir runs/captions strip.png              # a PNG (or .npy) strip -> its caption
    rnnlab caption --workdir runs/captions --grid captions.png    # test strips with their captions
    rnnlab eval --workdir runs/captions --best                    # the selected checkpoint's test scores

``arg``: an attention ('general' default, 'dot', 'none': the decoder sees the image only through its
initial state). Baseline (test split): always the most frequent train caption, exact match ~0.03, BLEU 0.
Expected: exact match well above 0.9 (each digit read right, in order).
"""

from rnnlab.seq2seq import ATTENTIONS
from rnnlab.training.config import default_config

ARGS = ATTENTIONS  # FILE.py:ARG (rnnlab.experiment): the attention


def get_config(arg: str | None = None):
    c = default_config()
    c.parallel = "none"
    c.task.name = "digit_captions"
    c.task.params = {"num_eval": 1000}
    c.model.cell = "lstm"
    c.model.hidden_size = 128
    c.model.embed_dim = 32
    c.model.attention = arg or "general"
    c.model.encoder = "conv"
    c.model.encoder_features = (16, 32)
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 50
    c.optim.min_lr_ratio = 0.05
    c.train.steps = 1500
    c.train.batch_size = 32
    c.train.eval_batch_size = 250
    c.train.eval_every = 500
    c.train.log_every = 100
    c.train.best_metric = "eval/accuracy"
    c.train.best_mode = "max"
    c.train.beam_size = 4
    c.train.progress = False
    return c
