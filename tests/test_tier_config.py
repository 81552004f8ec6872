"""Tracks C and D scale by their TIER parameter alone: their sizes and backend choices are checked
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
SCALING = [CATALOG.notebook_path(a) for a in CATALOG.assignments() if a.track in {"C", "D"}]
SCALING += [CATALOG.notebook_path(a) for a in CATALOG.assignments() if a.id == "e01-tiny-gpt"]
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
