"""A data set on disk as shards: one ``.npy`` per field per shard, and a checksummed manifest.

``write`` splits every field (arrays with the same first dimension) into shards of
``rows_per_shard`` rows, ``<field>-<shard:05d>.npy``, and writes ``manifest.json`` (fields,
dtypes, shapes, rows per shard) and ``SHA256SUMS`` (``sha256sum -c`` checks it). ``read`` checks
every checksum before loading, so a truncated copy on scratch fails loudly, naming the file.
A loader that reads one shard at a time opens ``<field>-<shard>.npy`` with ``np.load``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from aifkit.course.datasets import DatasetError, read_sums, sha256, write_sums

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"


def write(fields: Mapping[str, np.ndarray], folder: Path, rows_per_shard: int) -> Path:
    """Write ``fields`` as shards into ``folder`` (created); returns the manifest's path."""
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be at least 1, not {rows_per_shard}")
    rows = {len(array) for array in fields.values()}
    if len(rows) != 1:
        raise ValueError(f"every field needs the same number of rows, not {sorted(rows)}")
    (total,) = rows
    folder.mkdir(parents=True, exist_ok=True)
    sums: dict[str, str] = {}
    shards = max(1, -(-total // rows_per_shard))
    for shard in range(shards):
        part = slice(shard * rows_per_shard, (shard + 1) * rows_per_shard)
        for name, array in fields.items():
            path = folder / f"{name}-{shard:05d}.npy"
            np.save(path, np.ascontiguousarray(array[part]))
            sums[path.name] = sha256(path)
    manifest = {
        "rows": total,
        "rows_per_shard": rows_per_shard,
        "shards": shards,
        "fields": {
            name: {"dtype": str(array.dtype), "shape": list(array.shape[1:])}
            for name, array in fields.items()
        },
    }
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    sums[MANIFEST] = sha256(path)
    write_sums(folder / SUMS, sums)
    return path


def read(folder: Path) -> dict[str, np.ndarray]:
    """Every field of the data set in ``folder``, shards joined, after checking each checksum."""
    sums_path = folder / SUMS
    if not sums_path.is_file():
        raise DatasetError(f"{folder}: no {SUMS}: not a data set written by shards.write")
    for name, expected in read_sums(sums_path).items():
        path = folder / name
        if not path.is_file() or sha256(path) != expected:
            raise DatasetError(f"{path}: missing or changed since it was written (checksum)")
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return {
        name: np.concatenate(
            [np.load(folder / f"{name}-{shard:05d}.npy") for shard in range(manifest["shards"])]
        )
        for name in manifest["fields"]
    }
