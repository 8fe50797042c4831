r"""Named-entity recognition (many-to-many) on WNUT-16 tweets: per token, its lower-cased word embedding, a
character CNN over the original-case token (max-pooled; Chiu & Nichols 2016, Ma & Hovy 2016) and its case /
shape class (Capitalized, ALL-CAPS, @mention, #hashtag, URL, ...) -> a bidirectional LSTM -> tag scores ->
a linear-chain CRF (Lafferty et al. 2001; Lample et al. 2016), decoded by Viterbi. The checkpoint kept is the
one with the best entity F1 on the validation split (early stopping by selection); scored on the test split
with entity-level precision / recall / F1 (CoNLL: type and exact span, ``rnnlab.textmetrics.entity_f1``)
against the trivial tagger (always 'O': entity F1 0, token accuracy ``TaskInfo.baseline``).

    rnnlab data prepare wnut16
    rnnlab train --config experiments/ner.py --workdir runs/ner
    rnnlab predict --workdir runs/ner --best --evaluate             # entity P/R/F1, token accuracy (test)
    rnnlab predict --workdir runs/ner --best "Obama visits New York"  # token/TAG pairs (Viterbi)
    rnnlab experiment experiments/ner.py:ablation --workdir results/ner   # words, +chars, +case, +CRF, all
    rnnlab train --config experiments/ner.py:conll2003 --workdir runs/conll   # TFDS conll2003 (catalog)

``arg``: nothing (WNUT-16, all features), ``words`` (word embeddings only, softmax per token: the previous
tagger), ``ablation`` (the sweep: words; +chars; +case; +CRF; all three) or ``conll2003`` (needs ``rnnlab
data prepare conll2003`` where TFDS and TensorFlow are available). WNUT-16 here: 1,915 training tweets
(the rest of the shared task's train set is validation), 240 test tweets with 118 entities.
"""

from rnnlab.training.config import default_config

FEATURES = {"min_count": 2, "max_length": 40}  # fixed T (one compiled step); the longest tweet has 39
ARGS = ("words", "ablation", "conll2003")  # FILE.py:ARG (rnnlab.experiment)


def get_config(arg: str | None = None):
    c = default_config()
    c.parallel = "none"
    c.task.name = "wnut16"
    c.task.params = {**FEATURES, "chars": True, "case": True}
    c.model.cell = "lstm"
    c.model.bidirectional = True
    c.model.num_layers = 1
    c.model.hidden_size = 100
    c.model.embed_dim = 64
    c.model.head = "all"
    c.model.dropout = 0.5
    c.model.crf = True
    c.model.char_encoder = "cnn"
    c.model.char_dim = 25
    c.model.char_features = 50
    c.model.case_dim = 8
    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 50
    c.optim.clip = "global_norm"
    c.optim.clip_value = 5.0
    c.train.steps = 1500
    c.train.batch_size = 32
    c.train.eval_batch_size = 128
    c.train.eval_every = 100
    c.train.log_every = 50
    c.train.best_metric = "eval/entity_f1"
    c.train.best_mode = "max"
    c.train.progress = False
    if arg == "words":
        c.task.params = dict(FEATURES)
        c.model.crf = False
    elif arg == "conll2003":
        c.task.name = "conll2003"
        c.task.params = {"min_count": 2, "max_length": 80}  # the TFDS catalog task: words only (+ CRF)
        c.model.hidden_size = 128
        c.model.embed_dim = 100
        c.train.steps = 3000
    elif arg not in (None, "ablation"):
        raise ValueError(f"unknown ner config {arg!r}; valid: (none), words, ablation, conll2003")
    return c


def get_sweep(arg: str | None = None):
    if arg != "ablation":
        return [{}]

    def point(name, chars, case, crf):
        return {"name": name, "task.params": {**FEATURES, "chars": chars, "case": case}, "model.crf": crf}

    return [
        point("words", False, False, False),
        point("+chars", True, False, False),
        point("+case", False, True, False),
        point("+crf", False, False, True),
        point("all", True, True, True),
    ]
