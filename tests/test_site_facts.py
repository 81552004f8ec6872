"""A site profile's own facts replace facts.yml's only when the learner selects the site."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aifkit.course import facts, site
from aifkit.errors import FactsError

MELUXINA = site.load("meluxina")


def _profile(folder: Path, overrides: dict[str, object], **extra: object) -> Path:
    """local.yml with ``facts: overrides`` (and ``extra`` keys), written as a profile of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((site.SITES_DIR / "local.yml").read_text(encoding="utf-8"))
    data.update({"name": "mysite", "source": "the site's user guide", "facts": overrides, **extra})
    path = folder / "mysite.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_no_site_selected_keeps_the_reference_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AIFKIT_SITE, or with a site that replaces nothing, are facts.yml's values used?"""
    monkeypatch.delenv(site.ENV_SITE, raising=False)
    assert facts.value("factory_accelerator_memory") == 80e9
    assert facts.get("factory_accelerator_memory").site == ""
    assert "site" not in facts.describe("factory_accelerator_memory")
    for name in ("local", "factory-example"):
        monkeypatch.setenv(site.ENV_SITE, name)
        assert facts.selected_site_facts() == {}
        assert (
            facts.get("factory_accelerator_memory")
            is facts.all_facts()["factory_accelerator_memory"]
        )


def test_selected_site_wins_and_describe_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """With AIFKIT_SITE=meluxina, do get/value/describe give MeluXina's A100 node and say so?"""
    monkeypatch.setenv(site.ENV_SITE, "meluxina")
    memory = facts.get("factory_accelerator_memory")
    assert memory.value == 40e9 and memory.unit == "B" and memory.site == "meluxina"
    assert memory.value == MELUXINA.partition("gpu").gpu_memory_gb * 1e9
    assert facts.value("factory_accelerator_bf16_dense") == facts.value("a100_bf16_dense") == 312e12
    assert facts.value("factory_accelerator_fp32") == facts.value("a100_fp32") == 19.5e12
    assert facts.value("factory_accelerator_memory_bandwidth") == 1.555e12
    assert facts.value("gpus_per_node") == MELUXINA.partition("gpu").gpus_per_node == 4
    line = facts.describe("factory_accelerator_bf16_dense")
    assert "fact of site meluxina" in line and "nvidia.com/en-us/data-center/a100" in line
    everything = facts.describe()
    assert "gpus_per_node = 4 GPUs per node" in everything and "of site meluxina" in everything
    # facts the site does not replace stay facts.yml's, and the reference file is untouched
    assert facts.get("h100_bf16_dense").site == ""
    assert facts.all_facts()["factory_accelerator_memory"].value == 80e9
    monkeypatch.delenv(site.ENV_SITE)
    assert facts.value("factory_accelerator_memory") == 80e9


def test_site_assumptions_stay_assumptions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Is a site value the profile lists under assumptions reported as an assumption, with why?"""
    monkeypatch.setenv(site.ENV_SITE, "meluxina")
    home = facts.get("home_quota")
    assert home.is_assumption and MELUXINA.provenance("facts.home_quota") == "assumption"
    assert home.value == MELUXINA.storage["home"].quota_gb * 1e9
    assert "myquota" in home.note
    assert "ASSUMPTION of site meluxina" in facts.describe("home_quota")
    assert not facts.get("gpus_per_node").is_assumption


def test_meluxina_facts_agree_with_its_partition() -> None:
    """Do MeluXina's facts say what its gpu partition says (one machine, one set of numbers)?"""
    replaced = facts.site_facts(MELUXINA)
    gpu = MELUXINA.partition("gpu")
    assert replaced["gpus_per_node"].value == gpu.gpus_per_node
    assert replaced["factory_accelerator_memory"].value == gpu.gpu_memory_gb * 1e9
    assert "200 GPU nodes" in gpu.description
    assert replaced["factory_accelerators"].value == 200 * gpu.gpus_per_node
    # a01 checks that the factory reaches its AI performance floor: so must the site
    aggregate = (
        replaced["factory_accelerators"].value * replaced["factory_accelerator_bf16_dense"].value
    )
    assert replaced["factory_ai_performance_floor"].value <= aggregate


@pytest.mark.parametrize("name", site.available())
def test_every_site_reaches_its_ai_performance_floor(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a01's hidden test holds on every site: accelerators x peak >= the AI performance floor."""
    monkeypatch.setenv(site.ENV_SITE, name)
    aggregate = facts.value("factory_accelerators") * facts.value("factory_accelerator_bf16_dense")
    assert aggregate >= facts.value("factory_ai_performance_floor")


@pytest.mark.parametrize("name", site.available())
def test_shipped_profiles_replace_only_known_facts(name: str) -> None:
    """Does every shipped profile's facts: section pass the check against facts.yml?"""
    for fact in facts.site_facts(site.load(name)).values():
        assert fact.unit == facts.all_facts()[fact.name].unit
        assert fact.source.strip()


def test_unknown_fact_and_wrong_unit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Are a misspelt fact name and a value in another unit errors naming the profile and key?"""
    typo = _profile(tmp_path, {"gpu_per_node": {"value": 8}})
    monkeypatch.setenv(site.ENV_SITE, str(typo))
    with pytest.raises(FactsError, match=r"'mysite'.*facts\.gpu_per_node.*gpus_per_node"):
        facts.value("gpus_per_node")
    unit = _profile(tmp_path / "unit", {"factory_accelerator_memory": {"value": 40, "unit": "GB"}})
    monkeypatch.setenv(site.ENV_SITE, str(unit))
    with pytest.raises(FactsError, match=r"facts\.factory_accelerator_memory: unit 'GB'.*'B'"):
        facts.get("factory_accelerator_memory")


def test_own_profile_overrides_and_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Does a site's own file replace a fact, and are a non-positive value and a missing source
    refused when the profile loads?"""
    mine = _profile(tmp_path, {"gpus_per_node": {"value": 8, "source": "our node sheet"}})
    monkeypatch.setenv(site.ENV_SITE, str(mine))
    assert facts.value("gpus_per_node") == 8
    assert "fact of site mysite; our node sheet" in facts.describe("gpus_per_node")
    zero = _profile(tmp_path / "zero", {"gpus_per_node": {"value": 0}})
    with pytest.raises(site.SiteError, match="gpus_per_node"):
        site.load(str(zero))
    path = _profile(tmp_path / "sourceless", {"gpus_per_node": {"value": 8}}, source="")
    with pytest.raises(site.SiteError, match=r"facts\.gpus_per_node\.source"):
        site.load(str(path))


def test_a_missing_site_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does a misspelt AIFKIT_SITE fail every fact lookup with the profiles there are?"""
    monkeypatch.setenv(site.ENV_SITE, "meluxena")
    with pytest.raises(FactsError, match=r"AIFKIT_SITE=meluxena: no site profile.*meluxina"):
        facts.value("gpus_per_node")


def test_facts_file_cannot_claim_a_site(tmp_path: Path) -> None:
    """Is a 'site' key in facts.yml refused (site values live in site profiles)?"""
    path = tmp_path / "facts.yml"
    path.write_text(
        "facts:\n  gpus_per_node:\n    value: 4\n    unit: GPUs\n    source: x\n"
        "    kind: fact\n    site: meluxina\n",
        encoding="utf-8",
    )
    with pytest.raises(FactsError, match="site profile"):
        facts.load(path)
