"""The course catalog (`courses/catalog.yml`): tracks, ordered assignments and their budgets.

The catalog is the one source of truth for what the curriculum contains. ``load`` parses it
into typed objects and reports every problem at once, each with its place in the file; typos
in keys are errors, not silently ignored settings. ``check_folders`` proves that every
assignment folder under ``courses/`` is in the catalog and every entry has its notebook.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aifkit.course.tiers import TIERS
from aifkit.errors import CatalogError

CATALOG_NAME = "catalog.yml"
SCHEMA_VERSION = 1
DEFAULT_TIMEOUT_S = {"cpu-tiny": 120, "gpu": 600, "multi-gpu": 1200}

_TOP_KEYS = {"schema_version", "course_id", "title", "tracks"}
_TRACK_KEYS = {"id", "title", "summary", "assignments"}
_ASSIGNMENT_KEYS = {
    "id",
    "title",
    "notebook",
    "minutes",
    "objectives",
    "prerequisites",
    "budget_s",
}


@dataclass(frozen=True)
class Assignment:
    """One nbgrader assignment: a folder under ``courses/`` holding one notebook."""

    id: str
    title: str
    track: str
    minutes: int
    objectives: tuple[str, ...]
    prerequisites: tuple[str, ...] = ()
    budget_s: Mapping[str, float] = field(default_factory=dict)
    notebook: str = ""

    @property
    def notebook_name(self) -> str:
        """File name of the notebook inside the assignment folder."""
        return self.notebook or f"{self.id}.ipynb"

    def budget(self, tier: str) -> float:
        """Seconds this assignment may take at ``tier`` (the validation timeout)."""
        return float(self.budget_s.get(tier, DEFAULT_TIMEOUT_S[tier]))


@dataclass(frozen=True)
class Track:
    """An ordered group of assignments (e.g. A, onboarding to the factory)."""

    id: str
    title: str
    summary: str
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class Catalog:
    """The whole curriculum, in teaching order."""

    course_id: str
    title: str
    tracks: tuple[Track, ...]
    root: Path

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


class _Problems:
    """Collects every problem found while reading the catalog, each with its location."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{self.source}: {where}: {message}")

    def keys(
        self, where: str, data: Mapping[str, Any], allowed: set[str], required: set[str]
    ) -> None:
        for key in sorted(set(data) - allowed):
            self.add(where, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(data)):
            self.add(where, f"missing required key {key!r}")

    def raise_if_any(self) -> None:
        if self.items:
            raise CatalogError("invalid catalog:\n  " + "\n  ".join(self.items))


def _text(problems: _Problems, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.add(where, f"expected a non-empty string, got {value!r}")
        return ""
    return value.strip()


def _texts(problems: _Problems, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(where, f"expected a list of strings, got {value!r}")
        return ()
    return tuple(_text(problems, f"{where}[{i}]", item) for i, item in enumerate(value))


def _budget(problems: _Problems, where: str, value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where, f"expected a mapping tier -> seconds, got {value!r}")
        return {}
    budget: dict[str, float] = {}
    for tier, seconds in value.items():
        if tier not in TIERS:
            problems.add(f"{where}.{tier}", f"unknown tier (use {', '.join(TIERS)})")
        elif isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            problems.add(f"{where}.{tier}", f"expected seconds > 0, got {seconds!r}")
        else:
            budget[tier] = float(seconds)
    return budget


def _assignment(problems: _Problems, where: str, data: Any, track: str) -> Assignment | None:
    if not isinstance(data, dict):
        problems.add(where, f"expected a mapping, got {data!r}")
        return None
    problems.keys(where, data, _ASSIGNMENT_KEYS, {"id", "title", "minutes", "objectives"})
    minutes = data.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
        problems.add(f"{where}.minutes", f"expected whole learner minutes > 0, got {minutes!r}")
        minutes = 0
    objectives = _texts(problems, f"{where}.objectives", data.get("objectives"))
    if "objectives" in data and not objectives:
        problems.add(f"{where}.objectives", "list at least one learning objective")
    notebook = data.get("notebook", "")
    if notebook and (
        not isinstance(notebook, str) or not notebook.endswith(".ipynb") or "/" in notebook
    ):
        problems.add(
            f"{where}.notebook", f"expected a file name ending in .ipynb, got {notebook!r}"
        )
        notebook = ""
    return Assignment(
        id=_text(problems, f"{where}.id", data.get("id")),
        title=_text(problems, f"{where}.title", data.get("title")),
        track=track,
        minutes=minutes,
        objectives=objectives,
        prerequisites=_texts(problems, f"{where}.prerequisites", data.get("prerequisites")),
        budget_s=_budget(problems, f"{where}.budget_s", data.get("budget_s")),
        notebook=notebook,
    )


def _track(problems: _Problems, where: str, data: Any) -> Track | None:
    if not isinstance(data, dict):
        problems.add(where, f"expected a mapping, got {data!r}")
        return None
    problems.keys(where, data, _TRACK_KEYS, {"id", "title"})
    track_id = _text(problems, f"{where}.id", data.get("id"))
    raw = data.get("assignments") or []
    if not isinstance(raw, list):
        problems.add(f"{where}.assignments", f"expected a list, got {raw!r}")
        raw = []
    assignments = [
        _assignment(problems, f"{where}.assignments[{i}]", item, track_id)
        for i, item in enumerate(raw)
    ]
    return Track(
        id=track_id,
        title=_text(problems, f"{where}.title", data.get("title")),
        summary=str(data.get("summary", "")).strip(),
        assignments=tuple(a for a in assignments if a is not None),
    )


def _check_order(problems: _Problems, catalog: Catalog) -> None:
    """Ids are unique and every prerequisite comes earlier in the teaching order."""
    seen: set[str] = set()
    for assignment in catalog.assignments():
        for prerequisite in assignment.prerequisites:
            if prerequisite not in seen:
                problems.add(
                    assignment.id,
                    f"prerequisite {prerequisite!r} must be an assignment listed before it",
                )
        if assignment.id in seen:
            problems.add(assignment.id, "duplicate assignment id")
        seen.add(assignment.id)
    track_ids = [track.id for track in catalog.tracks]
    for track_id in {t for t in track_ids if track_ids.count(t) > 1}:
        problems.add(f"track {track_id}", "duplicate track id")


def parse(data: Any, *, source: Path) -> Catalog:
    """Build a Catalog from already-loaded YAML data; raise CatalogError listing every problem."""
    problems = _Problems(source)
    if not isinstance(data, dict):
        problems.add("top level", f"expected a mapping, got {type(data).__name__}")
        problems.raise_if_any()
    problems.keys("top level", data, _TOP_KEYS, {"schema_version", "course_id", "tracks"})
    if data.get("schema_version") != SCHEMA_VERSION:
        problems.add(
            "schema_version", f"expected {SCHEMA_VERSION}, got {data.get('schema_version')!r}"
        )
    raw_tracks = data.get("tracks") or []
    if not isinstance(raw_tracks, list):
        problems.add("tracks", f"expected a list, got {raw_tracks!r}")
        raw_tracks = []
    tracks = [_track(problems, f"tracks[{i}]", item) for i, item in enumerate(raw_tracks)]
    catalog = Catalog(
        course_id=_text(problems, "course_id", data.get("course_id")),
        title=str(data.get("title", "")).strip(),
        tracks=tuple(t for t in tracks if t is not None),
        root=source.parent,
    )
    _check_order(problems, catalog)
    problems.raise_if_any()
    return catalog


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
