"""Site profiles: the shipped ones load, typos and bad limits are errors, time limits parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from aifkit.course import site


def test_shipped_profiles_load() -> None:
    """Do the local test cluster and the example factory profiles load with their partitions?"""
    assert set(site.available()) >= {"local", "factory-example"}
    local = site.load("local")
    assert local.partition().name == "debug" and local.partition().gpus_per_node == 2
    factory = site.load("factory-example")
    assert factory.partition("gpu").gpus_per_node == 4
    assert factory.partition("gpu-debug").max_minutes == 30


def test_environment_picks_the_site(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does AIFKIT_SITE choose the profile (by name or path)?"""
    monkeypatch.setenv("AIFKIT_SITE", "factory-example")
    assert site.load().name == "factory-example"
    monkeypatch.setenv("AIFKIT_SITE", str(site.SITES_DIR / "local.yml"))
    assert site.load().name == "local"


@pytest.mark.parametrize(
    ("text", "minutes"), [("00:30:00", 30), ("1-00:00:00", 1440), ("2:00:01", 121)]
)
def test_time_to_minutes(text: str, minutes: int) -> None:
    """Are SLURM time limits converted to whole minutes, rounding up?"""
    assert site.time_to_minutes(text) == minutes


def test_bad_profiles_are_errors(tmp_path: Path) -> None:
    """Are unknown keys, bad counts, bad times and a missing default partition all refused?"""
    good = yaml.safe_load((site.SITES_DIR / "local.yml").read_text())
    cases = {
        "typo": {**good, "acount": "x"},
        "count": {
            **good,
            "partitions": {"debug": {**good["partitions"]["debug"], "gpus_per_node": -1}},
        },
        "time": {
            **good,
            "partitions": {"debug": {**good["partitions"]["debug"], "max_time": "1 day"}},
        },
        "default": {**good, "default_partition": "gpu"},
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(site.SiteError):
            site.load(str(path))
    with pytest.raises(site.SiteError, match="no site profile 'nowhere'"):
        site.load("nowhere")


def test_type_error_and_unknown_key_name_file_and_key(tmp_path: Path) -> None:
    """Is a quoted number, or a misspelt partition key, reported with the file and key path?"""
    good = yaml.safe_load((site.SITES_DIR / "local.yml").read_text())
    debug = dict(good["partitions"]["debug"])
    debug["cpus_per_node"] = "2"
    debug["gpu_per_node"] = debug.pop("gpus_per_node")
    path = tmp_path / "typed.yml"
    path.write_text(yaml.safe_dump({**good, "partitions": {"debug": debug}}))
    with pytest.raises(site.SiteError) as info:
        site.load(str(path))
    lines = str(info.value).splitlines()
    assert f"{path}: partitions.debug.cpus_per_node: needs a whole number >= 0, got '2'" in lines
    assert f"{path}: partitions.debug: lacks gpus_per_node (needs " in str(info.value)
    assert (
        f"{path}: partitions.debug: unknown key 'gpu_per_node' (did you mean 'gpus_per_node'?"
        in str(info.value)
    )


def test_unquoted_time_says_to_quote_it(tmp_path: Path) -> None:
    """Does YAML's sexagesimal trap (1:00:00 read as 3600) get a message that says quote it?"""
    text = (site.SITES_DIR / "local.yml").read_text().replace('"1-00:00:00"', "1:00:00")
    path = tmp_path / "unquoted.yml"
    path.write_text(text)
    with pytest.raises(site.SiteError, match=r"max_time: needs a quoted SLURM time .* got 3600"):
        site.load(str(path))


def test_meluxina_profile_keeps_facts_and_assumptions_apart() -> None:
    """Does the MeluXina profile load with its node shapes, QOS and storage, every assumption
    naming a real value, and its documentation as the source of the rest?"""
    meluxina = site.load("meluxina")
    assert set(meluxina.partitions) == {"cpu", "gpu", "fpga", "largemem"}
    gpu = meluxina.partition("gpu")
    assert (gpu.gpus_per_node, gpu.gpu_memory_gb, gpu.cpus_per_node, gpu.memory_per_node_gb) == (
        4,
        40,
        64,
        512,
    )
    assert meluxina.partition("largemem").memory_per_node_gb == 4096
    assert {"default", "short", "urgent"} <= set(meluxina.qos)
    assert {"home", "project", "scratch"} <= set(meluxina.storage)
    assert meluxina.account.startswith("p2") and "docs.lxp.lu" in meluxina.source
    assert meluxina.provenance("partitions.gpu.gpus_per_node") == "fact"
    assert meluxina.provenance("qos.long.max_time") == "assumption"  # under the qos.long entry
    assert meluxina.provenance("account") == "assumption"
    with pytest.raises(site.SiteError, match="no value"):
        meluxina.provenance("partitions.gpu.gpu_count")


def test_assumptions_and_qos_must_name_real_values(tmp_path: Path) -> None:
    """Are an assumption about a key that does not exist, an unknown QOS and assumptions without
    a source refused with the key to fix?"""
    good = yaml.safe_load((site.SITES_DIR / "meluxina.yml").read_text())
    cases = {
        "partitions.gpu.max_nodez": {
            **good,
            "assumptions": {**good["assumptions"], "partitions.gpu.max_nodez": "typo"},
        },
        "'premium' is not under qos": {
            **good,
            "partitions": {
                **good["partitions"],
                "cpu": {**good["partitions"]["cpu"], "qos": ["default", "premium"]},
            },
        },
        "source: name the documentation": {**good, "source": ""},
    }
    for message, data in cases.items():
        path = tmp_path / "bad.yml"
        path.write_text(yaml.safe_dump(data))
        site._load_file.cache_clear()
        with pytest.raises(site.SiteError, match=re.escape(message)):
            site.load(str(path))
