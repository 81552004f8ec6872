"""The course catalog (`courses/catalog.yml`): tracks, ordered assignments and their budgets.

The catalog is the one source of truth for what the curriculum contains. ``load`` parses it
into typed models and reports every problem at once, each with its place in the file; typos
in keys are errors, not silently ignored settings. ``check_folders`` proves that every
assignment folder under ``courses/`` is in the catalog and every entry has its notebook.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from aifkit.course.tiers import TIERS
from aifkit.errors import CatalogError
from aifkit.models import Items, Model, Text, validate

CATALOG_NAME = "catalog.yml"
SCHEMA_VERSION = 1
DEFAULT_TIMEOUT_S = {"cpu-tiny": 120, "gpu": 600, "multi-gpu": 1200}


def _known_tier(name: str) -> str:
    if name not in TIERS:
        raise ValueError(f"unknown tier (use {', '.join(TIERS)})")
    return name


TierName = Annotated[str, AfterValidator(_known_tier)]
Seconds = Annotated[float, Field(gt=0, description="seconds > 0")]


class Assignment(Model):
    """One nbgrader assignment: a folder under ``courses/`` holding one notebook."""

    id: Text
    title: Text
    minutes: int = Field(gt=0, description="a whole number of learner minutes > 0")
    objectives: Items[Text] = Field(min_length=1, description="at least one learning objective")
    prerequisites: Items[Text] = ()
    budget_s: dict[TierName, Seconds] = Field(default_factory=dict)
    notebook: str = Field(
        default="", pattern=r"^([^/]+\.ipynb)?$", description="a file name ending in .ipynb"
    )
    track: str = Field(default="", exclude=True)  # the id of its track, filled in by Track

    @property
    def notebook_name(self) -> str:
        """File name of the notebook inside the assignment folder."""
        return self.notebook or f"{self.id}.ipynb"

    def budget(self, tier: str) -> float:
        """Seconds this assignment may take at ``tier`` (the validation timeout)."""
        return float(self.budget_s.get(tier, DEFAULT_TIMEOUT_S[tier]))


class Track(Model):
    """An ordered group of assignments (e.g. A, onboarding to the factory)."""

    id: Text
    title: Text
    summary: Annotated[str, StringConstraints(strip_whitespace=True)] = ""
    assignments: Items[Assignment] = ()

    @model_validator(mode="before")
    @classmethod
    def _tell_assignments_their_track(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("assignments"), list):
            return data
        track = str(data.get("id", "")).strip()
        assignments = [
            {**a, "track": track} if isinstance(a, dict) else a for a in data["assignments"]
        ]
        return {**data, "assignments": assignments}


class Catalog(Model):
    """The whole curriculum, in teaching order."""

    schema_version: Literal[1]
    course_id: Text
    title: Annotated[str, StringConstraints(strip_whitespace=True)] = ""
    tracks: Items[Track]
    root: Path = Field(exclude=True)  # the courses folder the file sits in

    def assignments(self) -> Iterator[Assignment]:
        """Every assignment, track by track, in order."""
        for track in self.tracks:
            yield from track.assignments

    def get(self, assignment_id: str) -> Assignment:
        """The assignment with this id, or a CatalogError naming the known ids."""
        for assignment in self.assignments():
            if assignment.id == assignment_id:
                return assignment
        known = ", ".join(a.id for a in self.assignments()) or "none"
        raise CatalogError(
            f"{assignment_id!r} is not in {self.root / CATALOG_NAME} (known: {known})"
        )

    def notebook_path(self, assignment: Assignment) -> Path:
        """Where the assignment's source notebook lives."""
        return self.root / assignment.id / assignment.notebook_name

    def for_notebook(self, path: Path) -> Assignment | None:
        """The assignment whose notebook is ``path``, if any."""
        resolved = path.resolve()
        for assignment in self.assignments():
            if self.notebook_path(assignment).resolve() == resolved:
                return assignment
        return None

    @model_validator(mode="after")
    def _check_order(self) -> Catalog:
        """Ids are unique and every prerequisite comes earlier in the teaching order."""
        problems: list[str] = []
        seen: set[str] = set()
        for t, track in enumerate(self.tracks):
            for a, assignment in enumerate(track.assignments):
                where = f"tracks[{t}].assignments[{a}]"
                for prerequisite in assignment.prerequisites:
                    if prerequisite not in seen:
                        problems.append(
                            f"{where}.prerequisites: prerequisite {prerequisite!r} must be an "
                            "assignment listed before it"
                        )
                if assignment.id in seen:
                    problems.append(f"{where}.id: duplicate assignment id {assignment.id!r}")
                seen.add(assignment.id)
        track_ids = [track.id for track in self.tracks]
        for t, track_id in enumerate(track_ids):
            if track_id in track_ids[:t]:
                problems.append(f"tracks[{t}].id: duplicate track id {track_id!r}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def parse(data: Any, *, source: Path) -> Catalog:
    """Build a Catalog from already-loaded YAML data; raise CatalogError listing every problem."""
    if isinstance(data, dict):
        data = {**data, "root": source.parent}
    return validate(Catalog, data, source=source, error=CatalogError)


def load(path: Path | str = Path("courses") / CATALOG_NAME) -> Catalog:
    """Read and validate the catalog file (or the catalog inside a courses directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / CATALOG_NAME
    if not path.is_file():
        raise CatalogError(
            f"{path}: catalog not found; create it from the layout in docs/notebooks.md"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from error
    return parse(data, source=path)


def check_folders(catalog: Catalog) -> list[str]:
    """Problems between the catalog and the folders under its root (empty when they agree)."""
    problems: list[str] = []
    listed = {a.id for a in catalog.assignments()}
    for folder in sorted(p for p in catalog.root.iterdir() if p.is_dir()):
        if folder.name.startswith(".") or folder.name == "__pycache__":
            continue
        if folder.name not in listed:
            problems.append(
                f"{folder}: folder is not in {CATALOG_NAME}; nbgrader treats every folder under "
                "courses/ as an assignment, so add it to the catalog or move it out"
            )
    for assignment in catalog.assignments():
        notebook = catalog.notebook_path(assignment)
        if not notebook.is_file():
            problems.append(
                f"{notebook}: listed in {CATALOG_NAME} as {assignment.id!r} but missing"
            )
    return problems
