"""Image captioning training: teacher forcing of an ``rnnlab.captioning.ImageCaptioner`` on the generic loop
(Vinyals et al. 2015, "Show and tell"), and at the end of a run the test images captioned greedily and by
beam search, scored by exact match and corpus BLEU-4 (Papineni et al. 2002) against the references.

Shape legend: B batch, h x W an image, L generated length, K beams.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab import captioning, decoding, textmetrics
from rnnlab.training.adapters import Adapter

BOS, EOS = "<bos>", "<eos>"  # the caption vocabulary's start and end words (rnnlab.tasks' captioning tasks)

# One compiled encoder per (hashable) captioner: the test set is captioned in equal batches.
_init_carry = jax.jit(captioning.caption_init_carry, static_argnums=0)


@dataclasses.dataclass(frozen=True)
class Captioner(Adapter):
    """An ``ImageCaptioner`` on batches of images with ``decoder_inputs`` (teacher forcing,
    ``decoder_lengths`` = ``target_lengths``).

    Attributes:
      beam_size: the end-of-run decoding's beam (``train.beam_size``); 0 = greedy only.
    """

    beam_size: int = 4

    def forward(self, params, batch, *, train: bool, rngs=None, carry=None) -> tuple[Any, Any]:
        outputs = self.model.apply(
            {"params": params},
            batch["inputs"],
            batch["decoder_inputs"],
            batch["target_lengths"],
            train=train,
            rngs=rngs,
        )
        return outputs, carry

    def final_metrics(self, task, params, batch_size: int) -> dict[str, float]:
        """Test-split exact match and BLEU of greedy and beam-search captions (``caption_metrics``)."""
        return caption_metrics(self.model, params, task, batch_size=batch_size, beam_size=self.beam_size)


def caption_ids(model, params, vocab, images, *, max_len: int, beam_size: int = 0) -> np.ndarray:
    """Generated caption ids ``[B, L]`` for ``images [B, h, W]``: greedy (``beam_size`` 0) or the best
    hypothesis of a beam search; ids after <eos> are padding."""
    bos, eos = vocab.id(BOS), vocab.id(EOS)
    carry = _init_carry(model, {"params": params}, jnp.asarray(images))
    step_fn = captioning.caption_step_fn(model, params)
    if beam_size:
        return np.asarray(decoding.beam_search(step_fn, carry, bos, max_len, eos, beam_size)[0][:, 0])
    return np.asarray(decoding.greedy(step_fn, carry, bos, max_len, eos, pad=vocab.pad_id))


def _pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([x, np.repeat(x[:1], size - len(x), 0)]) if len(x) < size else x


def caption_metrics(
    model, params, task, *, batch_size: int = 256, beam_size: int = 4, split: str = "test"
) -> dict[str, float]:
    """Exact match and corpus BLEU-4 (``rnnlab.textmetrics``) of greedy and (``beam_size`` > 0) beam-search
    captions of every image of ``split``, as words (``task.target_text``).

    Returns:
      ``{'exact_match_greedy', 'bleu_greedy'[, 'exact_match_beam', 'bleu_beam']}``, fractions in [0, 1].
    """
    beams = {"greedy": 0, **({"beam": beam_size} if beam_size else {})}
    refs: list[str] = []
    hyps: dict[str, list[str]] = {name: [] for name in beams}
    for batch in task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False):
        n = len(batch["lengths"])
        refs += [task.target_text(t) for t in batch["targets"]]
        images = _pad_rows(batch["inputs"], batch_size)
        for name, k in beams.items():
            ids = caption_ids(
                model, params, task.target_vocab, images, max_len=batch["targets"].shape[1], beam_size=k
            )
            hyps[name] += [task.target_text(t) for t in ids[:n]]
    out = {}
    for name in beams:
        out[f"exact_match_{name}"] = textmetrics.exact_match(refs, hyps[name])
        out[f"bleu_{name}"] = textmetrics.corpus_bleu(hyps[name], refs).bleu
    return out
