"""Sequence to sequence: source text -> target text (translation), word level, one vocabulary per side.

Shape legend: B batch, T source steps, T' target steps, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnlab.tasks.base import TaskInfo
from rnnlab.tasks.baselines import translation_baselines
from rnnlab.tasks.dataset_task import DatasetTask, as_str, unigram_loss
from rnnlab.tasks.vocab import Vocabulary, detokenize, load_or_build

BOS, EOS = "<bos>", "<eos>"


class Seq2SeqTask(DatasetTask):
    """Source text -> target text, word level, lower-cased, one vocabulary per side (built on train).

    inputs int32 `[B, T]` source ids; decoder_inputs `[B, T']` = <bos> + target; targets `[B, T']` = target +
    <eos>; target_lengths `[B]`. Baseline: unigram cross-entropy of the targets (nats per target token);
    `baselines.translation_baselines` scores copy / most-frequent / nearest-neighbour translators.

    Args:
      min_count: a word seen fewer times in train is '<unk>' (id 1).
      max_words: keep only the pairs with at most this many whitespace-separated words on both sides (every
        split; None keeps all).
    """

    kind = "seq2seq"

    def __init__(self, name, dataset, *, source_key, target_key, min_count=1, max_words=None, **kwargs):
        self.source_key, self.target_key = source_key, target_key
        self.max_words = int(max_words) if max_words else None
        super().__init__(name, dataset, keep=self._short if self.max_words else None, **kwargs)
        # vocabularies depend on the train examples kept: one file per (max_words, min_count)
        tag = f"_max{self.max_words or 0}_min{min_count}" if (self.max_words or min_count != 1) else ""
        self.vocabs = {
            key: load_or_build(
                self.data_path / f"vocab_{key}{tag}.json",
                lambda key=key: (as_str(r[key]) for r in self.records("train")),
                "word",
                min_count=min_count,
                lowercase=True,
                extra_specials=(BOS, EOS),
            )
            for key in (source_key, target_key)
        }

    def _short(self, record) -> bool:
        return all(
            len(as_str(record[k]).split()) <= self.max_words for k in (self.source_key, self.target_key)
        )

    @property
    def vocab(self) -> Vocabulary:
        return self.vocabs[self.source_key]

    @property
    def target_vocab(self) -> Vocabulary:
        return self.vocabs[self.target_key]

    def target_text(self, ids: Sequence[int]) -> str:
        """Target ids (generated or reference) -> readable text: ids up to the first <eos>, pads and <bos>
        dropped, punctuation and hyphens rejoined (`vocab.detokenize`)."""
        tv = self.target_vocab
        words = []
        for i in np.asarray(ids).tolist():
            if i == tv.id(EOS):
                break
            if i not in (tv.pad_id, tv.id(BOS)):
                words.append(tv.tokens[i])
        return detokenize(words)

    def baselines(self, split: str = "test") -> dict[str, float]:
        """Exact match and BLEU of the trivial translators on `split` (`baselines.translation_baselines`)."""
        return translation_baselines(self, split)

    def decode(self, record):
        tv = self.target_vocab
        tgt = tv.encode(as_str(record[self.target_key]))
        bos, eos = np.int32(tv.id(BOS)), np.int32(tv.id(EOS))
        return {
            "inputs": self.vocabs[self.source_key].encode(as_str(record[self.source_key])),
            "decoder_inputs": np.concatenate([[bos], tgt]).astype(np.int32),
            "targets": np.concatenate([tgt, [eos]]).astype(np.int32),
        }

    def _info(self):
        tv = self.target_vocab
        ids = {
            s: np.concatenate([self.decode(r)["targets"] for r in self.records(s)]) for s in ("train", "test")
        }
        V = len(self.vocab)
        return TaskInfo(
            self.name,
            self.kind,
            None,
            V,
            len(tv),
            unigram_loss(ids["train"], ids["test"], len(tv)),
            "loss",
            token_unit="word",
        )
