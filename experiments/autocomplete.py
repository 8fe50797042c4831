r"""Autocomplete: a character- (Shakespeare) or word-level (PTB) language model trained with truncated BPTT:
each seed's train text is cut into B contiguous streams read chunk after chunk, the RNN state carried across
chunks (gradients stop at chunk boundaries); the test text is read the same way.

    rnnlab data prepare shakespeare
    rnnlab train --config experiments/autocomplete.py --workdir runs/autocomplete         # Shakespeare, chars
    rnnlab complete --workdir runs/autocomplete "To be, or" --length 200 --temperature 0.8 --top-k 20
    rnnlab data prepare ptb
    rnnlab train --config experiments/autocomplete.py:ptb --workdir runs/autocomplete_ptb    # PTB, words
    rnnlab complete --workdir runs/autocomplete_ptb "the company said" --length 20

``arg``: ``shakespeare`` (default), ``ptb``, or ``tiny_shakespeare`` (the TFDS catalog corpus, needs TFDS to
prepare it). Metrics: bits_per_char (chars), perplexity and bits_per_word (words), as eval/ (validation) and
test/ (once, at the end), next to the unigram baseline
(``TaskInfo.baseline``: Shakespeare 3.25 nats = 4.69 bits/char; PTB 6.46 nats = perplexity ~640). Measured on
2 shared CPU cores (load ~9, other runs alongside): Shakespeare, 1,200 steps, 257 s wall: eval 2.40 bits/char
(1.66 nats) vs the unigram 4.69 bits/char. PTB (800 steps of 32 x 35 words, 534 s wall while the test suite
ran alongside): test perplexity 171 (5.14 nats) vs the unigram ~640 (6.46 nats).
"""

from rnnlab.training.config import default_config

ARGS = ("shakespeare", "ptb", "tiny_shakespeare")  # FILE.py:ARG (rnnlab.experiment): the corpus


def get_config(arg: str | None = None):
    corpus = arg or "shakespeare"
    c = default_config()
    c.task.name = corpus
    c.parallel = "none"
    c.model.cell = "gru"
    c.optim.name = "adam"
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 50
    c.optim.min_lr_ratio = 0.1
    c.optim.clip = "global_norm"
    c.optim.clip_value = 1.0
    c.train.tbptt = True
    c.train.batch_size = 32
    c.train.eval_batch_size = 64
    c.train.eval_batches = 0  # the whole test stream
    c.train.log_every = 100
    c.train.checkpoint_every = 400
    c.train.progress = False
    if corpus == "ptb":
        c.task.params = {"length": 35}
        c.model.hidden_size = 256
        c.model.embed_dim = 128
        c.train.steps = 800
    elif corpus in ("shakespeare", "tiny_shakespeare"):
        c.task.params = {"length": 64}
        c.model.hidden_size = 256
        c.model.embed_dim = 32
        c.train.steps = 1200
    else:
        raise ValueError(f"unknown corpus {corpus!r}; valid: shakespeare, ptb, tiny_shakespeare")
    return c
