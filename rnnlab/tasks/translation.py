"""Sequence to sequence: source text -> target text (translation), word level, one vocabulary per side.

Shape legend: B batch, T source steps, T' target steps, V vocabulary.
"""

from __future__ import annotations

import numpy as np

from rnnlab.tasks.base import TaskInfo
from rnnlab.tasks.dataset_task import DatasetTask, as_str, unigram_loss
from rnnlab.tasks.vocab import load_or_build

BOS, EOS = "<bos>", "<eos>"


class Seq2SeqTask(DatasetTask):
    """Source text -> target text, word level, one vocabulary per side (built on train).

    inputs int32 `[B, T]` source ids; decoder_inputs `[B, T']` = <bos> + target; targets `[B, T']` = target +
    <eos>; target_lengths `[B]`. Baseline: unigram cross-entropy of the targets (nats per target token).
    """

    kind = "seq2seq"

    def __init__(self, name, dataset, *, source_key, target_key, **kwargs):
        super().__init__(name, dataset, **kwargs)
        self.source_key, self.target_key = source_key, target_key
        self.vocabs = {
            key: load_or_build(
                self.data_path / f"vocab_{key}.json",
                lambda key=key: (as_str(r[key]) for r in self.records("train")),
                "word",
                lowercase=True,
                extra_specials=(BOS, EOS),
            )
            for key in (source_key, target_key)
        }

    @property
    def vocab(self):
        return self.vocabs[self.source_key]

    def decode(self, record):
        tv = self.vocabs[self.target_key]
        tgt = tv.encode(as_str(record[self.target_key]))
        bos, eos = np.int32(tv.id(BOS)), np.int32(tv.id(EOS))
        return {
            "inputs": self.vocabs[self.source_key].encode(as_str(record[self.source_key])),
            "decoder_inputs": np.concatenate([[bos], tgt]).astype(np.int32),
            "targets": np.concatenate([tgt, [eos]]).astype(np.int32),
        }

    def _info(self):
        tv = self.vocabs[self.target_key]
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
