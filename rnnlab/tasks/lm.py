"""Language modelling: next-token prediction on a split's text, as shuffled windows or as contiguous streams
for truncated BPTT (`StreamChunks`: the only meaning of "stream" in rnnlab.tasks).

Shape legend: B batch, T = `length` steps, V vocabulary.
"""

from __future__ import annotations

import numpy as np

from rnnlab.tasks.base import BatchIterator, TaskInfo, philox
from rnnlab.tasks.batching import ArraySource, Loader
from rnnlab.tasks.dataset_task import DatasetTask, as_str, unigram_loss
from rnnlab.tasks.vocab import load_or_build


class LanguageModelTask(DatasetTask):
    """Next-token prediction on a split's concatenated text, cut into windows of `length` (+1) tokens.

    inputs int32 `[B, length]`, targets = inputs shifted by one. Records are chunks ordered by `index_key`
    (TFDS stores them shuffled) or, without one, in stored order. Baseline: unigram cross-entropy (nats per
    token).
    """

    kind = "lm"

    def __init__(
        self,
        name,
        dataset,
        *,
        length=128,
        level="char",
        text_key="text",
        index_key="index",
        separator="",
        **kwargs,
    ):
        self.length, self.level, self.text_key, self.index_key = int(length), level, text_key, index_key
        self.separator = separator  # appended to every record (e.g. ' <eos> ' between PTB sentences)
        super().__init__(name, dataset, **kwargs)
        self.vocab = load_or_build(
            self.data_path / f"vocab_{level}.json", lambda: [self.text("train")], level
        )
        self._ids = {}

    def text(self, split: str) -> str:
        recs = self.records(split)
        if self.index_key and recs and self.index_key in recs[0]:
            recs = sorted(recs, key=lambda r: int(r[self.index_key]))
        return "".join(as_str(r[self.text_key]) + self.separator for r in recs)

    def ids(self, split: str) -> np.ndarray:
        if split not in self._ids:
            self._ids[split] = self.vocab.encode(self.text(split))
        return self._ids[split]

    def windows(self, split: str) -> ArraySource:
        ids = self.ids(split)
        n = max(0, (len(ids) - 1) // self.length)
        if n == 0:
            raise ValueError(
                f"{self.name} {split}: {len(ids)} tokens is shorter than one window of {self.length}"
            )
        x = ids[: n * self.length].reshape(n, self.length)
        y = ids[1 : n * self.length + 1].reshape(n, self.length)
        return ArraySource({"inputs": x, "targets": y})

    def iterator(self, split, batch_size, seed, *, num_epochs=None, shuffle=True, stream=False):
        """Shuffled windows, or with `stream=True` consecutive chunks of B contiguous streams for truncated
        BPTT (`StreamChunks`)."""
        self.check_split(split)
        if stream:
            return StreamChunks(
                self.ids(split),
                batch_size,
                self.length,
                seed,
                num_epochs=num_epochs,
                shuffle=shuffle,
                drop_remainder=split == "train",
            )
        src = self.windows(split)

        def gather(idx):
            b = src.gather(idx)
            B = len(idx)
            return {
                **b,
                "lengths": np.full(B, self.length, np.int32),
                "target_mask": np.ones((B, self.length), np.float32),
            }

        return Loader(
            src,
            batch_size,
            seed,
            gather_fn=gather,
            num_epochs=num_epochs,
            shuffle=shuffle,
            drop_remainder=split == "train",
        )

    def _info(self):
        V = len(self.vocab)
        return TaskInfo(
            self.name,
            self.kind,
            None,
            V,
            V,
            unigram_loss(self.ids("train"), self.ids("test"), V),
            "loss",
            token_unit="char" if self.level == "char" else "word",
        )


class StreamChunks(BatchIterator):
    """Batches for truncated BPTT: the token stream `ids` is cut into B contiguous rows and batch i holds
    chunk i of every row, so row b of batch i + 1 continues row b of batch i (carry the RNN state across
    batches).

    Each batch: inputs, targets int32 `[B, length]` (targets = the next tokens), lengths int32 `[B]`,
    target_mask float32 `[B, length]`, reset int32 `[B]` (1 on an epoch's first chunk: the carry restarts
    from zero there). With `shuffle`, epoch e starts the stream at a Philox(seed, e) offset in [0, length), so
    chunk boundaries move between epochs. `drop_remainder` (train) drops a last partial chunk; otherwise it
    is padded (lengths and target_mask mark its valid steps). Position = (epoch, chunk): resumes exactly.
    """

    def __init__(
        self,
        ids,
        batch_size: int,
        length: int,
        seed: int,
        *,
        num_epochs=None,
        shuffle=True,
        drop_remainder=True,
    ):
        self.ids, self.batch_size, self.length = np.asarray(ids, np.int32), int(batch_size), int(length)
        self.seed, self.num_epochs, self.shuffle, self.drop_remainder = (
            int(seed),
            num_epochs,
            shuffle,
            drop_remainder,
        )
        self.epoch, self.chunk = 0, 0
        if self._per_row(0) < (self.length if drop_remainder else 1):
            raise ValueError(
                f"{len(self.ids)} tokens cannot fill {self.batch_size} streams of at least "
                f"{self.length if drop_remainder else 1} steps; use a smaller batch or length"
            )

    def _offset(self, epoch: int) -> int:
        return int(philox(self.seed, epoch, 0x57EA).integers(self.length)) if self.shuffle else 0

    def _per_row(self, epoch: int) -> int:
        return (len(self.ids) - self._offset(epoch) - 1) // self.batch_size

    def chunks_per_epoch(self, epoch: int = 0) -> int:
        n = self._per_row(epoch)
        return n // self.length if self.drop_remainder else -(-n // self.length)

    def __next__(self):
        if self.chunk >= self.chunks_per_epoch(self.epoch):
            self.epoch, self.chunk = self.epoch + 1, 0
        if self.num_epochs is not None and self.epoch >= self.num_epochs:
            raise StopIteration
        B, L, off, n = self.batch_size, self.length, self._offset(self.epoch), self._per_row(self.epoch)
        rows = self.ids[off : off + B * n + 1]
        start, stop = self.chunk * L, min((self.chunk + 1) * L, n)
        x = rows[:-1].reshape(B, n)[:, start:stop]
        y = rows[1:].reshape(B, n)[:, start:stop]
        valid = stop - start
        pad = ((0, 0), (0, L - valid))
        batch = {
            "inputs": np.pad(x, pad),
            "targets": np.pad(y, pad),
            "lengths": np.full(B, valid, np.int32),
            "target_mask": np.pad(np.ones((B, valid), np.float32), pad),
            "reset": np.full(B, int(self.chunk == 0), np.int32),
        }
        self.chunk += 1
        return batch

    def _config(self) -> dict:
        return {
            "n": len(self.ids),
            "batch_size": self.batch_size,
            "length": self.length,
            "seed": self.seed,
            "shuffle": bool(self.shuffle),
            "drop_remainder": bool(self.drop_remainder),
        }

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "chunk": self.chunk, "config": self._config()}

    def set_state(self, state: dict) -> None:
        if state.get("config", self._config()) != self._config():
            raise ValueError(
                f"stream state was recorded for a different stream: {state['config']} != {self._config()}"
            )
        self.epoch, self.chunk = int(state["epoch"]), int(state["chunk"])
