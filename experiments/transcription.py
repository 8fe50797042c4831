r"""CTC transcription (the speech-recognition shape, Graves et al. 2006): a strip of 1-4 real handwritten
digits read column by column (frames [T <= 112, 28]) by a 2-layer bidirectional LSTM that emits, per frame, a
distribution over the 10 digits and the CTC blank; trained with the CTC loss (no segmentation given), decoded
by best path (greedy) and by prefix beam search (Hannun et al. 2014). Label error rate (edits / reference
digits) against the best constant transcription.

    rnnlab data prepare mnist5k
    rnnlab train --config experiments/transcription.py --workdir runs/ctc
    rnnlab transcribe --workdir runs/ctc frames.npy            # [T, 28] frames (or a PNG strip) -> digits
    rnnlab eval --workdir runs/ctc --best                      # label error rates on the test split

Why digits and not audio: no labelled speech corpus with transcripts can be prepared on this machine. TFDS
``spoken_digit`` decodes its WAV files through TensorFlow (not installed; only the package registries are
reachable), and the offline Japanese Vowels recordings (``japanese_vowels``) carry speaker labels, no
transcripts. A strip read as frames has the same shape as speech recognition: unsegmented frames -> a shorter
label sequence, with blanks between and repeated labels ("3 3") that only a blank can separate.
Baseline (test split): the best constant transcription of the train sample, label error rate ~0.8; emitting
nothing: 1.0.
"""

from rnnlab.training.config import default_config

ARGS = ()  # FILE.py:ARG (rnnlab.experiment): none


def get_config(arg: str | None = None):
    c = default_config()
    c.parallel = "none"
    c.task.name = "digit_ctc"
    c.task.params = {"num_eval": 1000}
    c.model.cell = "lstm"
    c.model.hidden_size = 96
    c.model.num_layers = 2
    c.model.bidirectional = True
    c.model.cell_options = {"forget_bias": 1.0}
    c.optim.learning_rate = 3e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 50
    c.optim.min_lr_ratio = 0.05
    c.optim.clip_value = 5.0
    c.train.steps = 1500
    c.train.batch_size = 32
    c.train.eval_batch_size = 250
    c.train.eval_every = 500
    c.train.log_every = 100
    c.train.best_metric = "eval/label_error_rate"
    c.train.best_mode = "min"
    c.train.beam_size = 8
    c.train.progress = False
    if arg:
        raise ValueError(f"unknown transcription config {arg!r}; valid: (none)")
    return c
