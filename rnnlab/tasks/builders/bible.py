"""The English -> Spanish Bible verse pairs (`rnnlab.tasks.bible`) prepared as a TFDS dataset, so a task reads
array_record instead of parsing two SWORD modules (10-20 s) on every start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from rnnlab.tasks.bible import VersePair, load_pairs, split_pairs


class RnnlabBibleEnEs(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """World English Bible -> Reina-Valera 1909 verse pairs (both public domain) from the pinned Debian
    packages sword-text-web and sword-text-sparv; renumbered chapters and length outliers dropped; a
    book-stratified 80/10/10 split keyed by a hash of each verse's reference."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "book": tfds.features.Text(),
                    "chapter": np.int32,
                    "verse": np.int32,
                    "en": tfds.features.Text(),
                    "es": tfds.features.Text(),
                }
            ),
            homepage="https://www.crosswire.org/sword/modules/",
            description=self.__doc__,
            citation=(
                "@misc{web, title={World English Bible}, howpublished={\\url{https://ebible.org/web/}}} "
                "@misc{rv1909, title={Reina-Valera 1909}, howpublished={\\url{https://www.crosswire.org}}}"
            ),
        )

    def _split_generators(self, dl_manager):
        # TFDS's download dir keeps the checked .deb files and the extracted modules, as for pinned archives
        pairs, _ = load_pairs(Path(dl_manager.download_dir) / "sword")
        return {s: self._generate_examples(part) for s, part in split_pairs(pairs).items()}

    def _generate_examples(self, pairs: list[VersePair]):
        for p in pairs:
            yield (
                f"{p.book}.{p.chapter}.{p.verse}",
                {
                    "book": p.book,
                    "chapter": p.chapter,
                    "verse": p.verse,
                    "en": p.en,
                    "es": p.es,
                },
            )
