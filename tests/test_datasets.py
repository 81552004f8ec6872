"""Bundled samples: listed with checksums, verified on read, corruption refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aifkit.course import datasets


def test_every_bundled_file_is_listed_and_intact() -> None:
    """Does SHA256SUMS list exactly the files present, each with the right checksum?"""
    present = {
        p.name for p in datasets.SAMPLES_DIR.iterdir() if p.is_file() and p != datasets.MANIFEST
    }
    assert set(datasets.manifest()) == present
    for name in present:
        assert datasets.sample_path(name).is_file()


def test_corruption_and_unknown_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Is a file whose bytes changed refused, and an unknown name an error listing the known?"""
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "x.txt").write_text("hello\n")
    monkeypatch.setattr(datasets, "SAMPLES_DIR", samples)
    monkeypatch.setattr(datasets, "MANIFEST", samples / "SHA256SUMS")
    datasets.manifest.cache_clear()
    try:
        assert datasets.update_manifest() == ["x.txt"]
        assert datasets.sample_text("x.txt") == "hello\n"
        (samples / "x.txt").write_text("tampered\n")
        with pytest.raises(datasets.DatasetError, match="checksum mismatch"):
            datasets.sample_text("x.txt")
        with pytest.raises(datasets.DatasetError, match=r"known: x.txt"):
            datasets.sample_path("y.txt")
    finally:
        datasets.manifest.cache_clear()
    shutil.rmtree(samples)
