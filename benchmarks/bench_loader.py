"""Input-pipeline throughput, printed beside the LSTM train step's steps/s at the same shape by `make bench`.

python benchmarks/bench_loader.py            # adding stream and a prepared (array_record) loader
"""

from __future__ import annotations

import tempfile
import time

from rnnlab.tasks import get_task
from rnnlab.tasks.batching import Loader, collate
from rnnlab.tasks.builders.synthetic import RnnlabAdding, SyntheticConfig
from rnnlab.tasks.datasets import DATASETS
from rnnlab.tasks.store import open_split


def _rate(iterator, min_seconds: float, warmup: int = 2) -> float:
    for _ in range(warmup):
        next(iterator)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or n < 3:
        next(iterator)
        n += 1
    return n / elapsed


def loader_batches_per_second(batch_size: int = 64, length: int = 1000, min_seconds: float = 1.0) -> float:
    """Batches/s of the adding-task training stream (inputs float32 `[batch_size, length, 2]`), generated
    on the fly with vectorised NumPy."""
    task = get_task("adding", length=length)
    return _rate(task.iterator("train", batch_size, seed=0), min_seconds)


def prepared_loader_batches_per_second(
    batch_size: int = 64, length: int = 1000, min_seconds: float = 1.0, num_train: int = 2000
) -> float:
    """Batches/s reading a prepared adding dataset (array_record, via tfds data source + grain MapDataset,
    per-example decode and padding collate) in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SyntheticConfig(
            name=f"bench_{length}_{num_train}",
            length=length,
            num_train=num_train,
            num_validation=10,
            num_test=10,
        )
        builder = RnnlabAdding(config=cfg, data_dir=tmp, file_format="array_record")
        builder.download_and_prepare(file_format="array_record")
        src = open_split(DATASETS["adding"], builder, "train")
        it = Loader(src, batch_size, seed=0, collate_fn=lambda ex: collate(ex, "regression"))
        return _rate(it, min_seconds)


def main():
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    for bs, T in ((64, 1000), (64, 100)):
        s = loader_batches_per_second(bs, T)
        p = prepared_loader_batches_per_second(bs, T)
        print(f"adding B={bs} T={T}: stream {s:8.1f} batches/s   prepared array_record {p:8.1f} batches/s")


if __name__ == "__main__":
    main()
