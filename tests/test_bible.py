"""Bible verse pairs: OSIS markup stripping, verse alignment and the book-stratified split on hand-made
inputs; the whole pipeline on hand-made SWORD modules packed in hand-made .deb files; the real packages in a
`network` test."""

import hashlib
import io
import struct
import tarfile
import zlib

import pytest
from pysword.books import BibleStructure

from rnnlab.tasks import bible, debian

GEN_1_1 = (
    '<w lemma="strong:H0430">In</w> <w lemma="strong:H7225">beginning</w>, <w lemma="strong:H0430">God</w>'
    '<note placement="foot"><reference type="annotateRef">1:1 </reference>The Hebrew “Elohim”.</note>'
    '<w lemma="strong:H1254">created</w> the earth<note n="a">x</note>. '
)


@pytest.mark.parametrize(
    "osis, text",
    [
        (GEN_1_1, "In beginning, God created the earth."),
        (
            '<title canonical="true" type="psalm">A Psalm by David.</title> <lg sID="g1"/><l sID="g2"/>'
            'Yahweh, help!<l eID="g2"/><l sID="g3"/>Hear<l eID="g3"/> <l type="selah"/>Selah.',
            "A Psalm by David. Yahweh, help! Hear Selah.",
        ),
        (
            '<title type="x-section">A heading</title><speaker>Beloved</speaker> Let him &amp; me',
            "Let him & me",
        ),
        (
            '<w>Y</w> <w>enviada</w><transChange type="added">por medio</transChange><w>de</w> '
            '<w>viéndo</w><transChange type="added">le</transChange> <transChange>están</transChange>.',
            "Y enviada por medio de viéndole están.",
        ),
        (
            "<w>siempre</w>. <w>Amén</w>. <w>Fué escrita</w> de Corinto, <w>enviada</w> por Febe. "
            '<chapter eID="Rom.16"/>',
            "siempre. Amén.",
        ),
        (
            'Amen. <chapter eID="Rev.22"/> <div canonical="true" eID="g9" osisID="Rev" type="book"/> '
            '<div sID="g10" type="glossary"/> Glossary text.',
            "Amen.",
        ),
    ],
    ids=[
        "note-between-words",
        "psalm-title-and-lines",
        "heading-speaker-entity",
        "added-words",
        "subscription",
        "glossary",
    ],
)
def test_clean_osis(osis, text):
    assert bible.clean_osis(osis) == text


def refs(chapter_lengths, book="Gen"):
    return [(book, c, v) for c, n in enumerate(chapter_lengths, 1) for v in range(1, n + 1)]


def test_align_drops_renumbered_chapters_omitted_verses_and_length_outliers():
    text = "one two three four"
    en = {r: text for r in refs([3, 3, 3])}
    es = dict(en)
    es[("Gen", 1, 3)] = ""  # the footprint of a renumbered chapter 2: chapters 1 and 2 go
    en[("Gen", 3, 2)] = ""  # a verse one translation omits: only that verse goes
    es[("Gen", 3, 3)] = "one " * 20  # a 4-fold longer "translation"
    en[("Tob", 1, 1)] = "a book only the English has"
    pairs, dropped = bible.align(en, es)
    assert dropped == {("Gen", 1), ("Gen", 2)}
    assert [(p.book, p.chapter, p.verse) for p in pairs] == [("Gen", 3, 1)]
    # An empty last slot in the English drops the chapter too (the WEB moves Rom 16:25-27 elsewhere).
    en2, es2 = {r: text for r in refs([2, 2])}, {r: text for r in refs([2, 2])}
    en2[("Gen", 2, 2)] = ""
    assert bible.misaligned_chapters(en2, es2) == {("Gen", 2)}


def test_split_is_a_seeded_book_stratified_partition():
    pairs = [
        bible.VersePair(b, c, v, "x", "y") for b in ("Gen", "Exod", "Rev") for (_, c, v) in refs([40, 30])
    ]
    parts = bible.split_pairs(pairs)
    assert {k: len(v) for k, v in parts.items()} == {"train": 168, "validation": 21, "test": 21}
    assert set().union(*parts.values()) == set(pairs)  # with the sizes above: a partition
    for part in parts.values():
        assert {p.book for p in part} == {"Gen", "Exod", "Rev"}
        assert part == sorted(part, key=pairs.index)  # canonical order inside a split
    assert parts == bible.split_pairs(pairs)
    assert parts["test"] != bible.split_pairs(pairs, seed=1)["test"]


# --- hand-made SWORD modules in hand-made .deb files ------------------------------------------------------


def ztext_files(module, verses):
    """{path: bytes} of a zText module (KJV versification, New Testament only) holding ``verses``
    ({(book name, chapter, verse): OSIS text}) in one compressed block, plus its mods.d conf."""
    layout = BibleStructure("kjv", ["nt"])
    block, records = b"", {}
    for (book, chapter, verse), text in verses.items():
        (index,) = layout.ref_to_indicies(books=book, chapters=chapter, verses=verse)["nt"]
        data = text.encode()
        records[index] = (0, len(block), len(data))
        block += data
    bzv = b"".join(struct.pack("<IIH", *records.get(i, (0, 0, 0))) for i in range(max(records) + 1))
    bzz = zlib.compress(block)
    path = f"modules/texts/ztext/{module.lower()}/"
    conf = (
        f"[{module}]\nDataPath=./{path}\nModDrv=zText\nSourceType=OSIS\nEncoding=UTF-8\n"
        "CompressType=ZIP\nBlockType=BOOK\nVersification=KJV\n"
    )
    return {
        f"mods.d/{module.lower()}.conf": conf.encode(),
        path + "nt.bzv": bzv,
        path + "nt.bzs": struct.pack("<III", 0, len(bzz), len(block)),
        path + "nt.bzz": bzz,
    }


def write_deb(path, files):
    """A minimal .deb: an ar archive whose data.tar.xz holds ``files`` under ./usr/share/sword/."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo("./" + bible.SWORD_PREFIX + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = debian.AR_MAGIC
    for name, data in [("debian-binary", b"2.0\n"), ("data.tar.xz", tar_bytes.getvalue())]:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(out)
    return hashlib.sha256(out).hexdigest()


ENGLISH = {
    ("John", 11, 35): "<w>Jesus</w> <w>wept</w>.",
    ("John", 11, 36): "The Jews said, “See how he loved him!”",
}
SPANISH = {
    ("John", 11, 35): "<w>Y lloró</w> <w>Jesús</w>.",
    ("John", 11, 36): "Dijeron entonces los Judíos: Mirad cómo le amaba.",
}


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    archives = tmp_path / "archives"
    archives.mkdir()
    for lang, verses in (("en", ENGLISH), ("es", SPANISH)):
        real = bible.PACKAGES[lang]
        digest = write_deb(archives / real.filename, ztext_files(bible.MODULES[lang], verses))
        monkeypatch.setitem(bible.PACKAGES, lang, debian.DebPackage(real.name, real.version, digest))
    monkeypatch.setenv("RNNLAB_ARCHIVE_DIR", str(archives))
    return archives


def test_pipeline_on_hand_made_packages(fake_packages, tmp_path):
    pairs, dropped = bible.load_pairs(tmp_path / "cache")
    assert dropped == set()
    assert pairs == [
        bible.VersePair("John", 11, 35, "Jesus wept.", "Y lloró Jesús."),
        bible.VersePair("John", 11, 36, "The Jews said, “See how he loved him!”", SPANISH[("John", 11, 36)]),
    ]
    # Extracted once: a second load reads the cache even when the archives are gone.
    for deb in fake_packages.iterdir():
        deb.unlink()
    assert bible.load_pairs(tmp_path / "cache")[0] == pairs


def test_the_reader_inflates_each_block_once(fake_packages, tmp_path, monkeypatch):
    root = bible.extract_modules(tmp_path / "cache")
    reader = bible.open_module(root, bible.MODULES["en"])
    calls = []
    inflate = reader._decompress
    monkeypatch.setattr(reader, "_decompress", lambda data: calls.append(1) or inflate(data))
    verses = bible.read_verses(reader)
    assert len(verses) == 7957  # every New Testament slot of the KJV versification
    assert {r: t for r, t in verses.items() if t} == {
        ("John", 11, 35): ENGLISH[("John", 11, 35)],
        ("John", 11, 36): ENGLISH[("John", 11, 36)],
    }
    assert len(calls) == 1  # two verses (and thousands of empty slots) from one block, inflated once


def test_archive_checks(tmp_path, monkeypatch):
    package = debian.DebPackage("sword-text-none", "1.0-1", "0" * 64)
    monkeypatch.delenv("RNNLAB_ARCHIVE_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get
    with pytest.raises(RuntimeError, match="RNNLAB_ARCHIVE_DIR"):
        debian.fetch_deb(package, tmp_path / "debs")
    write_deb(tmp_path / package.filename, {"x": b"y"})
    with pytest.raises(ValueError, match="sha256 mismatch"):
        debian.fetch_deb(package, tmp_path / "debs", archive_dir=tmp_path)
    with pytest.raises(ValueError, match="not an ar archive"):
        debian.read_ar(b"PK\x03\x04")


@pytest.mark.network
def test_network_real_packages(tmp_path):
    pairs, dropped = bible.load_pairs(tmp_path)
    assert len(pairs) == 30481 and len(dropped) == 24
    assert bible.VersePair("John", 11, 35, "Jesus wept.", "Y lloró Jesús.") in pairs
    sizes = {k: len(v) for k, v in bible.split_pairs(pairs).items()}
    assert sizes == {"train": 24383, "validation": 3045, "test": 3053}
