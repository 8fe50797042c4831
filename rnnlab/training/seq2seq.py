"""Sequence-to-sequence training: teacher forcing (Sutskever et al. 2014; Luong et al. 2015) on the generic
loop, and at the end of a run the test split decoded greedily and by beam search, scored by exact match and
corpus BLEU-4 (Papineni et al. 2002) with ``rnnlab.decoding`` and ``rnnlab.textmetrics``.

Shape legend: B batch, S source length, L generated length.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from rnnlab import decoding, textmetrics
from rnnlab.training.adapters import Adapter

BOS, EOS = "<bos>", "<eos>"  # the target vocabulary's start and end words (rnnlab.tasks' seq2seq tasks)


@dataclasses.dataclass(frozen=True)
class EncoderDecoder(Adapter):
    """An encoder-decoder (``rnnlab.seq2seq.Seq2Seq``) on batches with ``decoder_inputs``, teacher-forced
    (``decoder_lengths`` = ``target_lengths``).

    Attributes:
      beam_size: the end-of-run decoding's beam (``train.beam_size``); 0 = greedy only.
    """

    beam_size: int = 4

    def forward(self, params, batch, *, train: bool, rngs=None, carry=None) -> tuple[Any, Any]:
        outputs = self.model.apply(
            {"params": params},
            batch["inputs"],
            batch["lengths"],
            batch["decoder_inputs"],
            decoder_lengths=batch["target_lengths"],
            train=train,
            rngs=rngs,
        )
        return outputs, carry

    def final_metrics(self, task, params, batch_size: int) -> dict[str, float]:
        """Test-split exact match and BLEU of greedy and beam-search decoding (``translation_metrics``)."""
        return translation_metrics(self.model, params, task, batch_size=batch_size, beam_size=self.beam_size)


def _target_vocab(task):
    return task.vocabs[task.target_key]


def text_of(vocab, ids, eos: int) -> str:
    """Ids up to (not including) the first ``eos``, pads dropped, as space-separated words."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == eos:
            break
        out.append(i)
    return vocab.decode(out)


def max_target_length(task) -> int:
    """The longest target (words + eos) of the train split: generation stops there at the latest (+ 5)."""
    return max(len(task.decode(r)["targets"]) for r in task.records("train")) + 5


def decode_ids(
    model,
    params,
    task,
    inputs: np.ndarray,
    lengths: np.ndarray,
    *,
    beam_size: int = 0,
    max_len: int | None = None,
) -> np.ndarray:
    """Target ids ``[B, L]`` of one batch (``inputs [B, S]``, ``lengths [B]``): greedy (``beam_size`` 0) or
    the best hypothesis of a beam search; <eos> ends each row (pads follow)."""
    tv = _target_vocab(task)
    bos, eos = tv.id(BOS), tv.id(EOS)
    max_len = max_len or max_target_length(task)
    carry = decoding.seq2seq_init_carry(model, params, jnp.asarray(inputs), jnp.asarray(lengths))
    step_fn = decoding.seq2seq_step_fn(model, params)
    if beam_size:
        return np.asarray(decoding.beam_search(step_fn, carry, bos, max_len, eos, beam_size)[0][:, 0])
    return np.asarray(decoding.greedy(step_fn, carry, bos, max_len, eos))


def decode_batch(model, params, task, inputs: np.ndarray, lengths: np.ndarray, **kwargs) -> list[str]:
    """Translations of one batch as space-separated vocabulary words (``decode_ids``; what the scores
    compare, '<unk>' included)."""
    eos = _target_vocab(task).id(EOS)
    return [
        text_of(_target_vocab(task), t, eos)
        for t in decode_ids(model, params, task, inputs, lengths, **kwargs)
    ]


def _pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([x, np.repeat(x[:1], size - len(x), 0)]) if len(x) < size else x


def translation_metrics(
    model, params, task, *, batch_size: int = 256, beam_size: int = 4, split: str = "test"
) -> dict[str, float]:
    """Exact match and corpus BLEU-4 (``rnnlab.textmetrics``) of greedy and (``beam_size`` > 0) beam-search
    translations of every example of ``split``, against the target ids decoded back to words (so words
    unknown to the train vocabulary read ``<unk>`` on both sides).

    Returns:
      ``{'exact_match_greedy', 'bleu_greedy'[, 'exact_match_beam', 'bleu_beam']}``, fractions in [0, 1].
    """
    tv = _target_vocab(task)
    eos = tv.id(EOS)
    max_len = max_target_length(task)
    refs, hyps = [], collections.defaultdict(list)
    beams = {"greedy": 0, **({"beam": beam_size} if beam_size else {})}
    for batch in task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False):
        n = len(batch["lengths"])
        refs += [text_of(tv, t, eos) for t in batch["targets"]]
        inputs, lengths = _pad_rows(batch["inputs"], batch_size), _pad_rows(batch["lengths"], batch_size)
        for name, k in beams.items():
            hyps[name] += decode_batch(model, params, task, inputs, lengths, beam_size=k, max_len=max_len)[:n]
    out = {}
    for name in beams:
        out[f"exact_match_{name}"] = textmetrics.exact_match(refs, hyps[name])
        out[f"bleu_{name}"] = textmetrics.corpus_bleu(hyps[name], refs).bleu
    return out
