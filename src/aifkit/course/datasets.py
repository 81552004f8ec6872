"""Bundled sample files and data sets, verified by checksum: nothing downloads at run time.

Sample outputs of tools (``lscpu``, ``nvidia-smi``, ``squeue``...) and small data files live in
``aifkit/data/samples/``; ``SHA256SUMS`` there lists every file's checksum. ``sample_path``
refuses a file whose bytes no longer match, so a corrupted install fails loudly, not subtly.
Record a new file with ``python -m aifkit.course.datasets --update``.
"""

from __future__ import annotations

import hashlib
import sys
from functools import lru_cache
from pathlib import Path

from aifkit import resources
from aifkit.errors import AifkitError

SAMPLES_DIR = resources.data_path("samples")
MANIFEST = SAMPLES_DIR / "SHA256SUMS"


class DatasetError(AifkitError):
    """A bundled file is missing, unlisted or corrupted."""


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(path: Path) -> dict[str, str]:
    """File name -> SHA-256 from a ``sha256sum``-format file."""
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.lstrip("*")] = digest
    return entries


def write_sums(path: Path, entries: dict[str, str]) -> None:
    """Write ``entries`` (file name -> SHA-256) in ``sha256sum`` format."""
    path.write_text("".join(f"{d}  {n}\n" for n, d in entries.items()), encoding="utf-8")


@lru_cache(maxsize=1)
def manifest() -> dict[str, str]:
    """File name -> expected SHA-256, from SHA256SUMS (``sha256sum`` format)."""
    return read_sums(MANIFEST) if MANIFEST.is_file() else {}


def sample_path(name: str) -> Path:
    """Path of a bundled sample after checking its checksum."""
    path = SAMPLES_DIR / name
    expected = manifest().get(name)
    if expected is None:
        known = ", ".join(sorted(manifest())) or "none"
        raise DatasetError(f"no bundled sample {name!r} (known: {known})")
    if not path.is_file():
        raise DatasetError(f"{path}: listed in SHA256SUMS but missing: reinstall aifkit")
    if sha256(path) != expected:
        raise DatasetError(f"{path}: checksum mismatch, the file is corrupted: reinstall aifkit")
    return path


def sample_text(name: str) -> str:
    """Contents of a bundled text sample, checksum verified."""
    return sample_path(name).read_text(encoding="utf-8")


def update_manifest() -> list[str]:
    """Rewrite SHA256SUMS from the files present; return the names listed."""
    names = sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_file() and p != MANIFEST)
    write_sums(MANIFEST, {n: sha256(SAMPLES_DIR / n) for n in names})
    manifest.cache_clear()
    return names


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        print("\n".join(update_manifest()))
    else:
        print(__doc__)
