"""The instructor's steps around autograde, on nbgrader's own API: release, collect, feedback.

Each returns what nbgrader logged; a step nbgrader reports as failed raises ``GradingError`` with
that log, which is an instructor-level error (the CLI exits non-zero).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aifkit.grading.course import Course, GradingError


def _checked(step: str, outcome: dict[str, Any]) -> str:
    log = str(outcome.get("log", "")).strip()
    if not outcome.get("success"):
        raise GradingError(f"{step} failed: {outcome.get('error') or ''}\n{log}".strip())
    return log


def generate(course: Course, assignment: str) -> str:
    """nbgrader generate_assignment: the learners' version and the gradebook entries."""
    if not course.folder("source", ".", assignment).is_dir():
        raise GradingError(
            f"no assignment {assignment!r} in {course.root / course.coursedir.source_directory}"
        )
    return _checked("generate_assignment", course.api().generate_assignment(assignment, force=True))


def release(course: Course, assignment: str, *, exchange: bool = True) -> str:
    """Generate, then release to the exchange (learners fetch it from there)."""
    log = generate(course, assignment)
    if exchange:
        log += "\n" + _checked("release_assignment", course.api().release_assignment(assignment))
    return log


def collect(course: Course, assignment: str) -> str:
    """Copy learners' submissions from the exchange into ``submitted/``."""
    return _checked("collect", course.api().collect(assignment, update=True))


def feedback(
    course: Course, assignment: str, *, student: str | None = None, exchange: bool = True
) -> list[Path]:
    """Feedback HTML per student (hidden tests removed, sanitized), released when asked."""
    api = course.api()
    _checked("generate_feedback", api.generate_feedback(assignment, student_id=student))
    if exchange:
        _checked("release_feedback", api.release_feedback(assignment, student_id=student))
    root = course.root / course.coursedir.feedback_directory
    pattern = f"{student or '*'}/{assignment}/*.html"
    return sorted(root.glob(pattern))
