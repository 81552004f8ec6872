"""Site profiles: the shipped ones load, typos and bad limits are errors, time limits parse."""

from __future__ import annotations

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
