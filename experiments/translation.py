r"""Translation: English -> French number words (num2words), or English -> Spanish Bible verses (``:bible``),
with an encoder-decoder GRU and Luong attention (``rnnlab.seq2seq.Seq2Seq``), teacher forcing; at the end the
test split is decoded greedily and with beam search and scored by exact match and corpus BLEU-4
(``test/exact_match_greedy``, ``test/bleu_beam``, ...; words through the vocabularies, '<unk>' on both sides).

    rnnlab data prepare num2words_fr
    rnnlab train --config experiments/translation.py --workdir runs/translation
    rnnlab translate --workdir runs/translation "twenty-one" "four thousand three hundred and five" --beam 4
    rnnlab translate --workdir runs/translation --evaluate         # scores + copy / most-frequent baselines

``arg``: an attention ('general' default, 'dot', 'none'), or ``bible``: real text, English (World English
Bible) -> Spanish (Reina-Valera 1909) verses of at most 15 words, the test split stratified by book (the
Debian SWORD packages, see ``rnnlab data list``)::

    rnnlab train --config experiments/translation.py:bible --workdir runs/bible
    rnnlab translate --workdir runs/bible --best "Jesus wept." --beam 4     # detokenised Spanish
    rnnlab translate --workdir runs/bible --best --evaluate   # sacreBLEU vs copy / nearest-neighbour

Number words: copying the source words or always answering the most frequent train target give exact
match 0 and BLEU ~0 on the test split. Measured on 2 shared CPU cores (load ~9, other runs alongside): 1,500
steps, 372 s wall: test exact match 1.00 and BLEU 1.00 (greedy and beam 4); baselines: copy 0.00 / 0.00,
most-frequent target 0.00 / 0.14.
"""

from rnnlab.seq2seq import ATTENTIONS
from rnnlab.training.config import default_config

ARGS = (*ATTENTIONS, "bible")  # FILE.py:ARG (rnnlab.experiment): the attention, or the Bible corpus


def get_config(arg: str | None = None):
    c = default_config()
    c.task.name = "num2words_fr"
    c.parallel = "none"
    c.model.cell = "gru"
    c.model.hidden_size = 128
    c.model.embed_dim = 64
    c.model.attention = arg if arg in ("general", "dot", "none") else "general"
    if arg not in (None, "general", "dot", "none", "bible"):
        raise ValueError(f"unknown translation config {arg!r}; valid: general, dot, none, bible")
    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 50
    c.optim.min_lr_ratio = 0.05
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.steps = 1500
    c.train.batch_size = 64
    c.train.eval_batch_size = 250
    c.train.log_every = 100
    c.train.checkpoint_every = 500
    c.train.beam_size = 4
    c.train.progress = False
    if arg == "bible":
        c.task.name = "bible_en_es"
        c.task.params = {"max_words": 15, "min_count": 2}
        c.model.hidden_size = 256
        c.model.embed_dim = 128
        c.model.attention = "general"
        c.model.dropout = 0.2
        c.optim.learning_rate = 2e-3
        c.train.steps = 2000
        c.train.eval_every = 500
        c.train.checkpoint_every = 0
        c.train.best_metric = "eval/loss"
        c.train.best_mode = "min"
    return c
