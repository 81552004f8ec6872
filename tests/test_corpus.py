"""The bundled English corpus of track E: checksum-verified, and the bytes a model trains on."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifkit.course import corpus, datasets


def test_corpus_is_bundled_listed_and_verified() -> None:
    """Is the corpus in the manifest, about 260 KB of mostly ASCII English prose?"""
    assert corpus.NAME in datasets.manifest()
    text = corpus.text()
    assert 200_000 < len(text.encode("utf-8")) < 400_000
    assert sum(c.isascii() for c in text) / len(text) > 0.99
    assert "argument" in text and text.count("\n\n") > 1_000  # paragraphs of documentation


def test_a_changed_byte_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Would a corrupted copy of the corpus be refused instead of silently trained on?"""
    copy = tmp_path / corpus.NAME
    copy.write_bytes(datasets.sample_path(corpus.NAME).read_bytes().replace(b"The", b"Teh", 1))
    monkeypatch.setattr(datasets, "SAMPLES_DIR", tmp_path)
    with pytest.raises(datasets.DatasetError, match="checksum mismatch"):
        datasets.sample_path(corpus.NAME)
