"""Tracks C, D and E scale by their TIER parameter alone: their sizes and backend choices are checked
here for every tier, without a GPU (CI has none).

Each notebook's `tier-config` cell only computes configuration from TIER; it is executed alone
for cpu-tiny, gpu and multi-gpu, and the values are compared across tiers.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import pytest
from builders import COURSES

from aifkit import catalog
from aifkit.notebooks import reading

CATALOG = catalog.load(COURSES)
SCALING = [CATALOG.notebook_path(a) for a in CATALOG.assignments() if a.track in {"C", "D", "E"}]
EXPECTED = {
    "cpu-tiny": {"BACKEND": "gloo", "DEVICE_KIND": "cpu", "DTYPE": "float32", "COMPILE": False},
    "gpu": {"BACKEND": "nccl", "DEVICE_KIND": "cuda", "DTYPE": "bfloat16"},
    "multi-gpu": {"BACKEND": "nccl", "DEVICE_KIND": "cuda", "DTYPE": "bfloat16"},
}


def config_at(notebook: Path, tier: str) -> dict[str, Any]:
    """Run the notebook's tier-config cell with TIER set, as papermill would inject it."""
    cells = [c for c in reading.read(notebook).cells if reading.has_tag(c, "tier-config")]
    assert len(cells) == 1, f"{notebook.name}: exactly one cell must be tagged 'tier-config'"
    namespace: dict[str, Any] = {"TIER": tier}
    exec(compile(reading.source_of(cells[0]), f"{notebook.name}:tier-config", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("notebook", SCALING, ids=lambda p: p.parent.name)
def test_sizes_grow_with_the_tier_and_backends_fit(notebook: Path) -> None:
    """Do sizes never shrink from cpu-tiny to gpu to multi-gpu, and do GPU tiers pick NCCL/bf16/cuda?"""
    configs = {tier: config_at(notebook, tier) for tier in EXPECTED}
    for tier, expected in EXPECTED.items():
        assert configs[tier]["TIER"] == tier
        for name, value in expected.items():
            assert configs[tier][name] == value, f"{name} at {tier}"
    sizes = {tier: config["SIZES"] for tier, config in configs.items()}
    assert sizes["cpu-tiny"].keys() == sizes["gpu"].keys() == sizes["multi-gpu"].keys()
    grew = False
    for key, small in sizes["cpu-tiny"].items():
        assert isinstance(small, numbers.Real), f"SIZES[{key!r}] must be a number"
        assert small <= sizes["gpu"][key] <= sizes["multi-gpu"][key], (
            f"SIZES[{key!r}] shrinks with the tier"
        )
        grew |= sizes["gpu"][key] > small
    assert grew, "at least one size must grow at the gpu tier"


def test_c03_allows_tf32_on_gpus_only() -> None:
    """Does c03 let fp32 matmuls use TF32 at the GPU tiers and keep true fp32 at cpu-tiny?"""
    notebook = next(path for path in SCALING if path.parent.name == "c03-gpu")
    precision = {tier: config_at(notebook, tier).get("MATMUL_PRECISION") for tier in EXPECTED}
    assert precision == {"cpu-tiny": "highest", "gpu": "high", "multi-gpu": "high"}, precision
    source = "".join(reading.source_of(c) for c in reading.read(notebook).cells)
    assert "torch.set_float32_matmul_precision(MATMUL_PRECISION)" in source
