"""The per-device peak table that MFU is measured against (aifkit.course.devices)."""

from __future__ import annotations

import pytest

from aifkit.course import devices, facts
from aifkit.errors import FactsError


@pytest.mark.parametrize(
    ("reported", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("AMD Instinct MI250X", "mi250x"),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_reported_names_map_to_their_table_entry(reported: str, key: str | None) -> None:
    """Is a GH200 told apart from an H200, and is an unknown device not guessed?"""
    assert devices.identify(reported) == key


def test_every_device_has_bf16_fp32_memory_and_bandwidth_with_a_vendor_source() -> None:
    """Does each device of the table carry the figures MFU and memory planning need, sourced?"""
    table = devices.table()
    assert set(table) == {"h100", "h200", "gh200", "a100", "mi250x"}
    for key, figures in table.items():
        assert {"bf16_dense", "fp32", "memory", "memory_bandwidth"} <= set(figures), key
        for quantity in figures:
            fact = facts.get(f"{key}_{quantity}")
            assert fact.kind == "fact" and "http" in fact.source, fact.name
    # BF16 tensor cores beat FP32 everywhere, and dense H100 BF16 is the datasheet's 989 TFLOP/s.
    assert all(f["bf16_dense"] > 4 * f["fp32"] for f in table.values())
    assert devices.peak("NVIDIA H100 80GB HBM3").value == pytest.approx(989e12)
    assert devices.peak("NVIDIA H200", "memory").value == pytest.approx(141e9)


def test_missing_entries_say_what_to_do() -> None:
    """Does an unknown device, quantity or a missing figure raise FactsError with a way out?"""
    with pytest.raises(FactsError, match="measure a matmul peak"):
        devices.peak("Intel Xeon Platinum")
    with pytest.raises(FactsError, match="unknown quantity"):
        devices.peak("NVIDIA H100", "fp64")
    with pytest.raises(FactsError, match="no tf32_dense"):
        devices.peak("AMD Instinct MI250X", "tf32_dense")
