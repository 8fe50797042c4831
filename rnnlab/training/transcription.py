"""CTC transcription training (Graves et al. 2006): per-frame logits from a ``SequenceModel`` trained with
``rnnlab.ctc.ctc_loss`` on the generic loop (``rnnlab.training.losses`` kind 'ctc', which also sums the
greedy label error rate), and at the end of a run the test split transcribed by best-path (greedy) and
prefix beam search decoding (Hannun et al. 2014), scored by label error rate.

Shape legend: B batch, T frames, D features, C classes (labels + the blank 0), N labels.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from rnnlab import ctc, textmetrics
from rnnlab.training.adapters import Adapter


def _log_probs_fn(adapter, params, batch):
    return jax.nn.log_softmax(adapter.forward(params, batch, train=False)[0].astype(np.float32), axis=-1)


# One compiled forward pass per (hashable) adapter: the test set is transcribed in equal batches.
_log_probs = jax.jit(_log_probs_fn, static_argnums=0)


@dataclasses.dataclass(frozen=True)
class Transcriber(Adapter):
    """A per-frame classifier trained with CTC (batches with ``targets`` and ``target_lengths``).

    Attributes:
      beam_size: the end-of-run prefix beam search's beam (``train.beam_size``); 0 = greedy only.
    """

    beam_size: int = 4

    def final_metrics(self, task, params, batch_size: int) -> dict[str, float]:
        """Test-split label error rates of greedy and prefix beam search (``transcription_metrics``)."""
        return transcription_metrics(self, params, task, batch_size=batch_size, beam_size=self.beam_size)


def log_probs(adapter: Adapter, params, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-frame log-probabilities ``[B, T, C]`` of frames ``inputs [B, T, D]`` (``lengths [B]``)."""
    return np.asarray(_log_probs(adapter, params, {"inputs": inputs, "lengths": np.asarray(lengths)}))


def decode(log_probs: np.ndarray, lengths: np.ndarray, beam_size: int = 0) -> list[list[int]]:
    """Label sequences (labels 1..C-1) from ``log_probs [B, T, C]``: the best path (``beam_size`` 0) or the
    most probable labelling of a prefix beam search."""
    if not beam_size:
        return ctc.to_lists(*ctc.greedy_decode(log_probs, lengths))
    return [
        list(ctc.prefix_beam_search(lp[:n], beam_size)[0][0])
        for lp, n in zip(log_probs, lengths, strict=True)
    ]


def transcription_metrics(
    adapter: Adapter, params, task, *, batch_size: int = 256, beam_size: int = 4, split: str = "test"
) -> dict[str, float]:
    """Label error rate (``rnnlab.textmetrics.label_error_rate``: edits / reference labels) of greedy and
    (``beam_size`` > 0) prefix-beam-search transcriptions of every example of ``split``.

    Returns:
      ``{'label_error_rate_greedy'[, 'label_error_rate_beam']}``.
    """
    beams = {"greedy": 0, **({"beam": beam_size} if beam_size else {})}
    refs: list[list[int]] = []
    hyps: dict[str, list[list[int]]] = {name: [] for name in beams}
    for batch in task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False):
        n = len(batch["lengths"])
        refs += ctc.to_lists(batch["targets"], batch["target_lengths"])
        fill = batch_size - n  # the last batch is padded: one compiled forward pass
        inputs, lengths = (
            np.concatenate([x, np.repeat(x[:1], fill, 0)]) for x in (batch["inputs"], batch["lengths"])
        )
        lp = log_probs(adapter, params, inputs, lengths)[:n]
        for name, k in beams.items():
            hyps[name] += decode(lp, lengths[:n], k)
    return {f"label_error_rate_{name}": textmetrics.label_error_rate(refs, hyps[name]) for name in beams}
