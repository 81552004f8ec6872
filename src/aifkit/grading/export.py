"""Grades as one CSV row per student, for an LMS import.

Columns: ``student_id, last_name, first_name, email``, then for each assignment one column per
graded part, ``<assignment>/<notebook>/<grade_id>``, then ``<assignment>/late_penalty`` and
``<assignment>/total``. A part holds nbgrader's final score (the manual score when a grader set
one, else the autograder's, plus extra credit).

Empty never means zero. A part is empty while it waits for a human: no manual score, and
either no autograde score (a written answer) or nbgrader still marks it as needing a manual
grade (a test aifkit flagged for review keeps a provisional 0 there). The whole assignment is
empty for a student who did not submit it.
``total`` (the parts' sum less the late penalty, at least 0) is empty unless every part is
scored, so an unfinished grade is never imported as final.

Maximum scores go to a sidecar ``<name>.max.csv`` with the same header and one row
(``student_id`` = ``max``): an extra row in the main file would be imported as a student.

Parts follow the source notebook's cell order when ``source_dir`` is given; the gradebook
stores no cell position, so without it they follow the gradebook's row order (insertion
order on SQLite: grade cells in notebook order, then task cells).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, select
from sqlalchemy.orm import Session

IDENTITY = ["student_id", "last_name", "first_name", "email"]


@contextmanager
def read_gradebook(db_url: str) -> Iterator[Session]:
    """A session on an existing gradebook that never creates or migrates anything.

    nbgrader's ``Gradebook`` creates missing tables and adds its course row on open; a report
    or an export must not write to the instructor's gradebook.
    """
    url = make_url(db_url)
    file = url.database or ""
    on_disk = url.get_backend_name() == "sqlite" and file not in ("", ":memory:")
    if on_disk and not Path(file).exists():
        raise FileNotFoundError(f"no gradebook at {file}")
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def number(value: float | None) -> str:
    """A score without float noise: ``2``, ``1.5``, ``0.3``; ``None`` is empty."""
    if value is None:
        return ""
    rounded = round(float(value), 6)
    if rounded == int(rounded):
        return str(int(rounded))
    return repr(rounded)


def _source_order(source_dir: Path | None, assignment: str, notebook: str) -> dict[str, int]:
    if source_dir is None:
        return {}
    path = source_dir / assignment / f"{notebook}.ipynb"
    if not path.exists():
        return {}
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells]
    return {grade_id: i for i, grade_id in enumerate(ids) if grade_id}


def _parts(assignment: Any, source_dir: Path | None) -> list[tuple[str, str, float]]:
    """(notebook, grade_id, max_score) of every graded part, in cell order."""
    parts: list[tuple[str, str, float]] = []
    for notebook in assignment.notebooks:  # ordered by name
        cells = list(notebook.grade_cells) + list(notebook.task_cells)
        order = _source_order(source_dir, assignment.name, notebook.name)
        positions = {c.name: order.get(c.name, len(order) + i) for i, c in enumerate(cells)}
        cells.sort(key=lambda c: positions[c.name])
        parts += [(notebook.name, c.name, float(c.max_score)) for c in cells]
    return parts


def _scores(submission: Any) -> tuple[dict[tuple[str, str], float | None], float]:
    """Final score per (notebook, grade_id) (None while pending) and the late penalty."""
    scores: dict[tuple[str, str], float | None] = {}
    penalty = 0.0
    for notebook in submission.notebooks:
        penalty += notebook.late_submission_penalty or 0.0
        for grade in notebook.grades:
            pending = grade.auto_score is None or grade.needs_manual_grade
            unscored = grade.manual_score is None and pending
            scores[notebook.name, grade.name] = None if unscored else float(grade.score)
    return scores, penalty


def export_csv(
    db_url: str,
    path: Path,
    assignments: Sequence[str] | None = None,
    source_dir: Path | None = None,
) -> list[Path]:
    """Write the grades CSV and its ``.max.csv`` sidecar; return both paths."""
    from nbgrader.api import Assignment, Student

    with read_gradebook(db_url) as db:
        known = {a.name: a for a in db.scalars(select(Assignment))}
        if assignments is None:
            chosen = sorted(known.values(), key=lambda a: (a.duedate is None, a.duedate, a.name))
        else:
            missing = [name for name in assignments if name not in known]
            if missing:
                raise KeyError(f"not in the gradebook: {', '.join(missing)}")
            chosen = [known[name] for name in assignments]
        students = sorted(
            db.scalars(select(Student)),
            key=lambda s: (s.last_name or "", s.first_name or "", s.id),
        )
        header = list(IDENTITY)
        maxima = ["max", "", "", ""]
        rows = [[s.id, s.last_name or "", s.first_name or "", s.email or ""] for s in students]
        for assignment in chosen:
            parts = _parts(assignment, source_dir)
            header += [f"{assignment.name}/{nb}/{cell}" for nb, cell, _ in parts]
            header += [f"{assignment.name}/late_penalty", f"{assignment.name}/total"]
            maxima += [number(m) for _, _, m in parts] + ["", number(sum(m for *_, m in parts))]
            submitted = {s.student_id: s for s in assignment.submissions}
            for student, row in zip(students, rows, strict=True):
                row += _cells(submitted.get(student.id), parts)

    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = path.with_name(f"{path.stem}.max.csv")
    for target, body in ((path, rows), (sidecar, [maxima])):
        with target.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            writer.writerows(body)
    return [path, sidecar]


def _cells(submission: Any, parts: list[tuple[str, str, float]]) -> list[str]:
    if submission is None:
        return [""] * (len(parts) + 2)
    scores, penalty = _scores(submission)
    values = [scores.get((nb, cell)) for nb, cell, _ in parts]
    known = [v for v in values if v is not None]
    total = max(0.0, sum(known) - penalty) if len(known) == len(values) else None
    return [number(v) for v in values] + [number(penalty), number(total)]
