"""English -> Spanish Bible verse pairs: the World English Bible (WEB) and the Reina-Valera 1909, both public
domain, from Debian's ``sword-text-web`` and ``sword-text-sparv`` packages (CrossWire SWORD zText modules),
read with ``pysword`` (pure Python).

Pipeline (:func:`load_pairs`): fetch the two pinned ``.deb`` files (:mod:`rnnlab.tasks.debian`), extract
their ``usr/share/sword/`` tree into a cache directory once, read every verse of both modules, strip the
OSIS markup (:func:`clean_osis`), pair verses by (book, chapter, verse) and drop the chapters whose numbering
differs between the two texts (:func:`misaligned_chapters`). :func:`split_pairs` then cuts a book-stratified
train / validation / test split.

Why the chapter check: the modules declare different versifications (WEB: NRSVA, RV1909: KJV), and in a
few chapters the RV1909 module keeps the Hebrew verse numbers (Num 13, Jonah 2, Job 39-40...), so verse v of
one text is verse v +- k of the other and same-number pairs would be wrong translations. The module leaves a
footprint: the KJV slots at the end of the chapter before are empty (Num 12:16, Jonah 1:17, Job 38:39-41).
So a chapter whose last verse slots are empty in one text and filled in the other is dropped, with the next
chapter of the same book. A pair whose word counts differ more than ``MAX_LENGTH_RATIO``-fold is dropped too
(e.g. Rom 14:23, where the WEB adds the doxology that the RV1909 has at Rom 16:25-27).

Measured (WEB 426.0-1, RV1909 2.60-1): 31,077 verses are non-empty in both texts; the 24 dropped chapters
hold 592 of them and 4 more differ too much in length, leaving 30,481 pairs (train 24,383 / validation
3,045 / test 3,053), 24.1 English and 22.6 Spanish words per verse on average, 5,996 pairs with at most 15
words on both sides. Fetching (6.7 MB) and preparing take 10-20 s on the shared 2-core machine. Kept as in
the source: archaic Spanish spelling ("á", "fué") and the capitals of chapter openings ("EN el principio").
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from pysword.bible import ZTextModule
from pysword.modules import SwordModules

from rnnlab.tasks.base import default_data_dir
from rnnlab.tasks.debian import DEB_SETS, deb_files, fetch_deb

#: language -> pinned package (the pins live with the other Debian pins, which `rnnlab data list` reads
#: without importing pysword)
PACKAGES = DEB_SETS["bible_en_es"]
#: language -> SWORD module name inside the package
MODULES = {"en": "engWEB2015eb", "es": "spaRV1909eb"}
SWORD_PREFIX = "usr/share/sword/"
SPLIT_SEED = 20240101
TRAIN_VAL_TEST = {"train": 0.8, "validation": 0.1, "test": 0.1}

Ref = tuple[str, int, int]  # (OSIS book name, chapter, verse), e.g. ('John', 11, 35)


@dataclasses.dataclass(frozen=True)
class VersePair:
    """One verse in both languages: ``VersePair('John', 11, 35, 'Jesus wept.', 'Y lloró Jesús.')``."""

    book: str
    chapter: int
    verse: int
    en: str
    es: str


# ------------------------------------------------------------------------------------------------ markup
# Elements dropped with their content: notes (footnotes, cross references), speaker labels (Song of Songs)
# and headings that are not part of the text; canonical titles (psalm superscriptions) are verse text.
_DROPPED = re.compile(
    r"<(note|speaker)\b[^>]*?(?:/>|>.*?</\1>)"
    r'|<title\b(?![^>]*canonical="true")[^>]*?(?:/>|>.*?</title>)',
    re.S,
)
# The WEB module appends its glossary to the last verse of the Bible, after the end of the book.
_BOOK_END = re.compile(r'<div\b(?=[^>]*\beID=)(?=[^>]*\btype="book")[^>]*>.*', re.S)
# Inline elements wrap words; every other element (line, paragraph, list item, chapter, milestone) is a
# boundary between words.
_INLINE = re.compile(
    r"</?(?:w|q|seg|transChange|hi|name|divineName|foreign|title|inscription|mentioned|abbr)\b[^>]*>"
)
_TAG = re.compile(r"<[^>]*>")
_SPACE_BEFORE_CLOSING = re.compile(r"\s+([,.;:!?”’)\]])")
# The RV1909 module often has no space where an added word (<transChange>) meets the next or previous word
# (``enviada</transChange><w>por``); the exception is an enclitic pronoun (``viéndo</w><transChange>le``).
_TAGS_BETWEEN_LETTERS = re.compile(r"(?<=\w)(<[^>]*>(?:<[^>]*>)*)(?=(\w+))")
_ENCLITIC = re.compile(r"(?:me|te|se|nos|os|le|les|lo|los|la|las){1,2}")
# The RV1909 appends the traditional subscriptions to the last verse of the epistles ("Amén. Fué escrita de
# Corinto á los Romanos..."): not verse text, and not in the WEB.
_SUBSCRIPTION = re.compile(r"(Amén\.)\s+[^.]*\b(?:escrita|enviada)\b.*", re.S | re.I)


def _added_word_edge(m: re.Match) -> str:
    tags, next_word = m.groups()
    added = "transChange" in tags
    return " " + tags if added and not _ENCLITIC.fullmatch(next_word) else tags


def clean_osis(text: str) -> str:
    """The plain text of one verse of OSIS markup: notes, speaker labels, non-canonical titles and epistle
    subscriptions removed, words kept, whitespace normalised.

    A removed note becomes a space (the WEB module often has none between a note and the next word:
    ``God</w><note>...</note><w>created``), and so does the edge of an added word that touches another word,
    unless it is an enclitic pronoun; a space left before closing punctuation is removed.
    """
    text = _BOOK_END.sub("", text)
    text = _DROPPED.sub(" ", text)
    if "transChange" in text:  # the regex tries every letter: skip the verses that have no added words
        text = _TAGS_BETWEEN_LETTERS.sub(_added_word_edge, text)
    text = _INLINE.sub("", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _SUBSCRIPTION.sub(r"\1", " ".join(text.split()))
    return _SPACE_BEFORE_CLOSING.sub(r"\1", text)


# ------------------------------------------------------------------------------------------------ reading
class _BlockCachedZText(ZTextModule):
    """pysword's zText reader, keeping every decompressed block: pysword inflates a verse's whole block (a
    book, for these modules) again for every verse it reads (the Psalms of the RV1909: 11.2 s, 0.04 s with
    the cache). The cache lives and dies with the reader."""

    def __init__(self, *args, **kwargs):
        self._blocks: dict[tuple[str, int], bytes] = {}
        super().__init__(*args, **kwargs)

    def _decompressed_text(self, testament, buf_num):
        key = (testament, buf_num)
        if key not in self._blocks:
            self._blocks[key] = super()._decompressed_text(testament, buf_num)
        return self._blocks[key]


def extract_modules(cache_dir: str | Path) -> Path:
    """Fetch both packages (into ``cache_dir/debs``) and extract their SWORD trees into ``cache_dir/sword``
    (once: a stamp per package records it). Returns the SWORD root (holding ``mods.d/`` and ``modules/``)."""
    cache_dir = Path(cache_dir)
    root = cache_dir / "sword"
    for package in PACKAGES.values():
        stamp = root / f".{package.filename}.extracted"
        if stamp.exists():
            continue
        deb = fetch_deb(package, cache_dir / "debs")
        for name, data in deb_files(deb, SWORD_PREFIX).items():
            path = root / name.removeprefix(SWORD_PREFIX)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        stamp.write_text(package.sha256)
    return root


def open_module(root: str | Path, module: str) -> ZTextModule:
    """A block-caching reader of SWORD zText ``module`` under ``root``, configured by its ``mods.d`` conf."""
    conf = SwordModules(str(root)).parse_modules().get(module)
    if conf is None:
        raise ValueError(f"no SWORD module {module!r} under {root}")
    if conf.get("moddrv", "").lower() != "ztext":
        raise ValueError(f"{module} is a {conf.get('moddrv')!r} module; only zText is supported")
    return _BlockCachedZText(
        str(Path(root) / conf["datapath"]),
        versification=conf.get("versification", "kjv").lower(),
        encoding=conf.get("encoding", "utf-8").lower(),
        source_type=conf.get("sourcetype", "OSIS"),
        block_type=conf.get("blocktype", "BOOK"),
        compress_type=conf.get("compresstype", "ZIP"),
    )


def read_verses(bible: ZTextModule) -> dict[Ref, str]:
    """``{(book, chapter, verse): raw OSIS text}`` for every verse slot of the module's versification, in
    canonical order (empty strings for slots the module leaves empty)."""
    verses = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            texts = list(bible.get_iter(books=book.osis_name, clean=False))
            refs = [
                (book.osis_name, c, v) for c, n in enumerate(book.chapter_lengths, 1) for v in range(1, n + 1)
            ]
            if len(texts) != len(refs):
                raise RuntimeError(
                    f"{book.name}: read {len(texts)} verses, the versification has {len(refs)}"
                )
            verses.update(zip(refs, texts, strict=True))
    return verses


# ------------------------------------------------------------------------------------------------ alignment
MAX_LENGTH_RATIO = 3.0  # (words + 1) of one translation over the other's, at most


def misaligned_chapters(en: Mapping[Ref, str], es: Mapping[Ref, str]) -> set[tuple[str, int]]:
    """The ``(book, chapter)`` pairs whose verse numbering differs between the texts (module docstring): a
    chapter whose last verse slots are empty in one text and not in the other, and the chapter after it.

    Args:
      en, es: ``{ref: plain text}`` (cleaned), for the same versification slots in canonical order.
    """
    last: dict[tuple[str, int], list[Ref]] = defaultdict(list)
    for ref in en:
        if ref in es:
            last[ref[:2]].append(ref)
    bad = set()
    for (book, chapter), refs in last.items():
        filled = [bool(en[r]) == bool(es[r]) for r in refs]
        if filled and not filled[-1]:
            bad |= {(book, chapter), (book, chapter + 1)}
    return bad & set(last)


def _similar_length(a: str, b: str) -> bool:
    ratio = (len(a.split()) + 1) / (len(b.split()) + 1)
    return 1 / MAX_LENGTH_RATIO <= ratio <= MAX_LENGTH_RATIO


def align(en: Mapping[Ref, str], es: Mapping[Ref, str]) -> tuple[list[VersePair], set[tuple[str, int]]]:
    """Pairs of non-empty verses with the same reference and similar lengths, in the English order, without
    the :func:`misaligned_chapters`; returns ``(pairs, dropped chapters)``."""
    dropped = misaligned_chapters(en, es)
    pairs = [
        VersePair(*ref, en[ref], es[ref])
        for ref in en
        if ref in es and en[ref] and es[ref] and ref[:2] not in dropped and _similar_length(en[ref], es[ref])
    ]
    return pairs, dropped


def split_pairs(
    pairs: list[VersePair], fractions: Mapping[str, float] = TRAIN_VAL_TEST, seed: int = SPLIT_SEED
) -> dict[str, list[VersePair]]:
    """A book-stratified split: each book's verses are ordered by a hash of (seed, reference) and cut into
    consecutive parts of the given fractions (the last part takes the rest), so every split has every book
    in proportion. Hash-ordered, the split is identical on every machine and a verse keeps its split when
    other verses are added or dropped (up to the cut points)."""
    by_book: dict[str, list[VersePair]] = defaultdict(list)
    for p in pairs:
        by_book[p.book].append(p)
    names = list(fractions)
    out: dict[str, list[VersePair]] = {name: [] for name in names}

    def key(p: VersePair) -> bytes:
        return hashlib.sha256(f"{seed}:{p.book}.{p.chapter}.{p.verse}".encode()).digest()

    for verses in by_book.values():
        verses = sorted(verses, key=key)
        start = 0
        for i, name in enumerate(names):
            stop = len(verses) if i == len(names) - 1 else start + round(fractions[name] * len(verses))
            out[name].extend(verses[start:stop])
            start = stop
    order = {(p.book, p.chapter, p.verse): i for i, p in enumerate(pairs)}
    return {name: sorted(part, key=lambda p: order[p.book, p.chapter, p.verse]) for name, part in out.items()}


def load_pairs(cache_dir: str | Path | None = None) -> tuple[list[VersePair], set[tuple[str, int]]]:
    """All aligned English -> Spanish verse pairs (and the dropped chapters), fetching and extracting the
    packages into ``cache_dir`` (default ``<data dir>/sword``) the first time."""
    root = extract_modules(Path(cache_dir) if cache_dir else default_data_dir() / "sword")
    texts = {}
    for lang, module in MODULES.items():
        texts[lang] = {ref: clean_osis(t) for ref, t in read_verses(open_module(root, module)).items()}
    return align(texts["en"], texts["es"])


__all__ = [
    "MODULES",
    "PACKAGES",
    "VersePair",
    "align",
    "clean_osis",
    "extract_modules",
    "load_pairs",
    "misaligned_chapters",
    "open_module",
    "read_verses",
    "split_pairs",
]
