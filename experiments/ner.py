r"""Named-entity recognition (many-to-many): word embedding -> 2 stacked bidirectional LSTM layers -> one tag
per token (``model.head='all'``). Scored with entity-level precision / recall / F1 (CoNLL: type and exact
span, ``rnnlab.textmetrics.entity_f1``) on the test split; the trivial tagger (always 'O') has token accuracy
``TaskInfo.baseline`` and entity F1 0.

    rnnlab data prepare wnut16
    rnnlab train --config experiments/ner.py --workdir runs/ner
    rnnlab predict --workdir runs/ner --evaluate          # entity P/R/F1 and token accuracy on the test split
    rnnlab predict --workdir runs/ner "Obama visits New York"   # token/TAG pairs
    rnnlab train --config experiments/ner.py:conll2003 --workdir runs/conll   # TFDS conll2003 (catalog)

``arg``: nothing (WNUT-16 tweets: 1,915 training sentences, 10 entity types) or ``conll2003`` (needs ``rnnlab
data prepare conll2003`` where TFDS and TensorFlow are available). Runtime on 2 CPU cores shared with other
jobs: WNUT-16 257 s wall (1,000 steps of 32 tweets). Measured on WNUT-16 (seed 0, test split: 240 tweets, 118
entities): entity P 0.202 / R 0.161 / F1 0.179 against F1 0 for the always-'O' tagger (person F1 0.41, geo-loc
0.12, other 0.09, rarer types 0). Token accuracy 0.942 is BELOW always-'O' (0.953): the tagger trades 'O'
tokens for entities. Shorter runs (400 steps) keep token accuracy at 0.955 but reach only F1 0.12. Lower-cased
words only (no characters, case or gazetteers, which the WNUT-16 systems used), hence far below the shared
task's best F1 (~0.5).
"""

from rnnlab.training.config import default_config

ARGS = ("conll2003",)  # FILE.py:ARG (rnnlab.experiment)


def get_config(arg: str | None = None):
    c = default_config()
    c.parallel = "none"
    c.task.name = "wnut16"
    c.task.params = {
        "min_count": 1,
        "max_length": 40,
    }  # fixed T (one compiled step); the longest tweet has 39
    c.model.cell = "lstm"
    c.model.bidirectional = True
    c.model.num_layers = 2
    c.model.hidden_size = 64
    c.model.embed_dim = 64
    c.model.head = "all"
    c.model.dropout = 0.25
    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 50
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.steps = 1000
    c.train.batch_size = 32
    c.train.eval_batch_size = 128
    c.train.eval_every = 250
    c.train.log_every = 50
    c.train.progress = False
    if arg == "conll2003":
        c.task.name = "conll2003"
        c.task.params = {
            "min_count": 1,
            "max_length": 80,
        }  # fixed T: one compiled step; few sentences are longer
        c.model.hidden_size = 128
        c.model.embed_dim = 100
        c.train.steps = 3000
    elif arg:
        raise ValueError(f"unknown ner config {arg!r}; valid: (none), conll2003")
    return c
