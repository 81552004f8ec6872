"""The factory facts file: every number has a unit, a source and a kind, and lookups fail clearly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from aifkit.course import facts
from aifkit.errors import AifkitError, FactsError

ALL = facts.all_facts()


def test_packaged_file_is_found_and_not_empty() -> None:
    assert facts.data_path().is_file()
    assert len(ALL) >= 10


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_fact_has_source_unit_and_valid_kind(name: str) -> None:
    fact = ALL[name]
    assert fact.name == name
    assert fact.source.strip(), f"{name} has no source"
    assert fact.unit.strip(), f"{name} has no unit"
    assert fact.kind in facts.KINDS
    if fact.is_assumption:
        assert fact.note.strip(), f"assumption {name} must say what it assumes"


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_value_is_positive_and_finite(name: str) -> None:
    number = facts.value(name)
    assert isinstance(number, float)
    assert math.isfinite(number) and number > 0


def test_get_and_value_agree() -> None:
    fact = facts.get("h100_bf16_dense")
    assert fact.value == facts.value("h100_bf16_dense") == 989e12
    assert fact.unit == "FLOP/s"
    assert fact.kind == "fact"


def test_datasheet_and_factory_numbers() -> None:
    assert facts.value("exaflop") == 1e18
    assert facts.value("factory_accelerators") == 2100
    assert facts.value("h100_bf16_dense") == facts.value("h100_fp16_dense") == 989e12
    assert facts.value("h100_fp8_dense") == 1979e12  # the datasheet rounds, not 2 x 989
    assert facts.value("h100_tf32_dense") == 494e12
    assert facts.value("h100_fp64_tensor") == facts.value("h100_fp32") == 67e12
    assert facts.value("h100_memory") == 80e9
    assert facts.value("h100_memory_bandwidth") == 3.35e12
    assert facts.value("h100_nvlink_bandwidth") == 900e9
    assert facts.value("h100_tdp") == 700
    assert facts.get("gpus_per_node").is_assumption
    assert facts.get("infiniband_per_gpu").is_assumption


def test_factory_is_multi_exaflop() -> None:
    """2,100 H100-class GPUs at dense BF16 must reach the 'multi-exaflop' floor we assume."""
    aggregate = facts.value("factory_accelerators") * facts.value("factory_accelerator_bf16_dense")
    assert aggregate >= facts.value("factory_ai_performance_floor")
    assert aggregate / facts.value("exaflop") > 2


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(FactsError, match="h100_bf16_dense") as info:
        facts.get("h100_bf16")
    assert isinstance(info.value, AifkitError)
    with pytest.raises(FactsError, match="unknown fact"):
        facts.value("no_such_thing_at_all")


def test_all_facts_is_cached_and_read_only() -> None:
    assert facts.all_facts() is facts.all_facts()
    with pytest.raises(TypeError):
        facts.all_facts()["exaflop"] = facts.get("exaflop")  # type: ignore[index]


def test_describe_labels_assumptions() -> None:
    text = facts.describe("h100_bf16_dense", "gpus_per_node")
    lines = text.splitlines()
    assert len(lines) == 2
    assert "[fact;" in lines[0] and "nvidia.com" in lines[0]
    assert "[ASSUMPTION;" in lines[1]


GOOD = """\
facts:
  x:
    value: 989e12
    unit: FLOP/s
    source: somewhere
    kind: fact
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "facts.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_reads_string_exponents_as_numbers(tmp_path: Path) -> None:
    loaded = facts.load(_write(tmp_path, GOOD))
    assert loaded["x"].value == 989e12


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("kind: fact", "kind: rumour"), "use 'fact' or 'assumption'"),
        (GOOD.replace("kind: fact", "kind: assumption"), "needs a note"),
        (GOOD.replace("source: somewhere", "source: ''"), "needs a source"),
        (GOOD.replace("    source: somewhere\n", ""), "lacks source"),
        (GOOD.replace("989e12", "-1"), "positive finite"),
        (GOOD.replace("989e12", "lots"), "write a number"),
        (GOOD + "    colour: blue\n", "facts.x: unknown key .colour."),
        (GOOD + GOOD.removeprefix("facts:\n"), "duplicate key 'x'"),
        ("facts: []\n", "top-level 'facts:'"),
        ("facts: {\n", "not valid YAML"),
    ],
)
def test_load_rejects_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(FactsError, match=message):
        facts.load(_write(tmp_path, text))


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FactsError, match="cannot read"):
        facts.load(tmp_path / "absent.yml")


def test_type_error_and_unknown_key_name_file_and_key(tmp_path: Path) -> None:
    """Is a number where text belongs, or an unknown field, reported with the file and key?"""
    path = _write(tmp_path, GOOD.replace("unit: FLOP/s", "unit: 5") + "    sorce: typo\n")
    with pytest.raises(FactsError) as info:
        facts.load(path)
    assert str(info.value).splitlines() == [
        f"{path}: facts.x.unit: needs a unit, got 5",
        f"{path}: facts.x: unknown key 'sorce' (did you mean 'source'? "
        "allowed: kind, note, source, unit, value)",
    ]
