"""Shards on disk: a round trip, ragged last shard included, and a changed file refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aifkit.course.datasets import DatasetError
from aifkit.course.synthetic import shards


def test_round_trip_with_a_ragged_last_shard(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fields = {"x": rng.normal(size=(10, 3)).astype(np.float32), "y": np.arange(10, dtype=np.int8)}
    manifest = shards.write(fields, tmp_path / "set", rows_per_shard=4)
    assert sorted(p.name for p in manifest.parent.glob("x-*.npy")) == [
        "x-00000.npy",
        "x-00001.npy",
        "x-00002.npy",
    ]
    back = shards.read(tmp_path / "set")
    assert np.array_equal(back["x"], fields["x"]) and back["y"].dtype == np.int8


def test_a_changed_shard_is_refused_by_name(tmp_path: Path) -> None:
    shards.write({"y": np.arange(8)}, tmp_path, rows_per_shard=4)
    np.save(tmp_path / "y-00001.npy", np.zeros(4, dtype=np.int64))
    with pytest.raises(DatasetError, match=r"y-00001\.npy"):
        shards.read(tmp_path)


def test_fields_of_different_lengths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same number of rows"):
        shards.write({"a": np.zeros(3), "b": np.zeros(4)}, tmp_path, rows_per_shard=2)
