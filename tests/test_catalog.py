"""The course catalog: typed, strict about typos, in step with the folders under courses/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from builders import COURSES

from aifkit import catalog
from aifkit.errors import CatalogError

MINIMAL = {
    "schema_version": 1,
    "course_id": "demo",
    "tracks": [
        {
            "id": "A",
            "title": "Track A",
            "assignments": [
                {"id": "a01-one", "title": "One", "minutes": 20, "objectives": ["learn"]},
                {
                    "id": "a02-two",
                    "title": "Two",
                    "minutes": 30,
                    "objectives": ["more"],
                    "prerequisites": ["a01-one"],
                    "budget_s": {"cpu-tiny": 45},
                },
            ],
        }
    ],
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_course_catalog_loads_and_matches_folders() -> None:
    """Does the shipped catalog load, and does every folder match an entry and vice versa?"""
    loaded = catalog.load(COURSES)
    assert loaded.course_id == "aifkit"
    assert "a01-welcome" in [a.id for a in loaded.assignments()]
    assert catalog.check_folders(loaded) == []


def test_typed_fields(tmp_path: Path) -> None:
    """Are budgets, prerequisites and defaults typed and reachable?"""
    loaded = catalog.load(write(tmp_path, MINIMAL))
    two = loaded.get("a02-two")
    assert two.prerequisites == ("a01-one",) and two.track == "A"
    assert two.budget("cpu-tiny") == 45.0
    assert two.budget("gpu") == catalog.DEFAULT_TIMEOUT_S["gpu"]
    assert loaded.notebook_path(two) == tmp_path / "a02-two" / "a02-two.ipynb"


def test_every_problem_reported_with_location(tmp_path: Path) -> None:
    """Are typos, bad types and bad budgets all reported at once, each with its place?"""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    one = data["tracks"][0]["assignments"][0]
    one["minuts"] = 20
    one["minutes"] = "twenty"
    one["budget_s"] = {"cpu-tiny": -1, "tpu": 5}
    with pytest.raises(CatalogError) as info:
        catalog.load(write(tmp_path, data))
    message = str(info.value)
    assert "tracks[0].assignments[0]: unknown key 'minuts'" in message
    assert "tracks[0].assignments[0].minutes" in message
    assert "budget_s.cpu-tiny" in message and "budget_s.tpu: unknown tier" in message


def test_prerequisite_must_come_first(tmp_path: Path) -> None:
    """Is a prerequisite that is listed later (or not at all) an error?"""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["tracks"][0]["assignments"][0]["prerequisites"] = ["a02-two"]
    with pytest.raises(
        CatalogError, match="prerequisite 'a02-two' must be an assignment listed before"
    ):
        catalog.load(write(tmp_path, data))


def test_duplicate_ids(tmp_path: Path) -> None:
    """Are duplicate assignment ids rejected?"""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["tracks"][0]["assignments"][1]["id"] = "a01-one"
    data["tracks"][0]["assignments"][1]["prerequisites"] = []
    with pytest.raises(CatalogError, match="duplicate assignment id"):
        catalog.load(write(tmp_path, data))


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    """Do bad YAML and a missing catalog give clear errors?"""
    bad = tmp_path / "catalog.yml"
    bad.write_text("tracks: [", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid YAML"):
        catalog.load(bad)
    with pytest.raises(CatalogError, match="catalog not found"):
        catalog.load(tmp_path / "nowhere")


def test_folders_and_entries_must_agree(tmp_path: Path) -> None:
    """Is an unlisted folder and a listed-but-missing notebook each reported?"""
    loaded = catalog.load(write(tmp_path, MINIMAL))
    (tmp_path / "a01-one").mkdir()
    (tmp_path / "a01-one" / "a01-one.ipynb").write_text("{}")
    (tmp_path / "stray").mkdir()
    problems = catalog.check_folders(loaded)
    assert len(problems) == 2
    assert "stray: folder is not in catalog.yml" in problems[0]
    assert "a02-two.ipynb: listed in catalog.yml as 'a02-two' but missing" in problems[1]


def test_unknown_assignment_lists_known(tmp_path: Path) -> None:
    """Does asking for an unknown id list the known ones?"""
    with pytest.raises(CatalogError, match="known: a01-one, a02-two"):
        catalog.load(write(tmp_path, MINIMAL)).get("z99-none")


def test_type_error_and_unknown_key_name_file_and_key(tmp_path: Path) -> None:
    """Is a string for a whole number, or a misspelt key, reported with the file and key path?"""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["tracks"][0]["assignments"][1]["minutes"] = "30"
    data["tracks"][0]["summry"] = "typo"
    path = write(tmp_path, data)
    with pytest.raises(CatalogError) as info:
        catalog.load(path)
    assert str(info.value).splitlines() == [
        f"{path}: tracks[0].assignments[1].minutes: needs a whole number of learner minutes > 0,"
        " got '30'",
        f"{path}: tracks[0]: unknown key 'summry' (did you mean 'summary'? "
        "allowed: assignments, id, summary, title)",
    ]


def test_catalog_is_read_only(tmp_path: Path) -> None:
    """Can code change a loaded catalog by accident? (It must not: others share the object.)"""
    loaded = catalog.load(write(tmp_path, MINIMAL))
    with pytest.raises(ValueError, match="frozen"):
        loaded.get("a01-one").minutes = 5  # type: ignore[misc]
