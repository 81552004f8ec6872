"""Every notebook's graded exercises are proven with real nbgrader: the instructor's solution
scores full marks and the blank release learners receive scores zero.

A throw-away course is made in tmp_path from the real assignment folder; nbgrader generates the
release, then autogrades two submissions: the source notebook (solutions in place) and the
untouched release.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from builders import COURSES
from traitlets.config import Config

from aifkit import catalog

ASSIGNMENTS = [a.id for a in catalog.load(COURSES).assignments()]


def _api(root: Path):  # nbgrader is slow to import: only when grading
    from nbgrader.apps import NbGraderAPI

    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.course_id = "proof"
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.Execute.timeout = 120
    return NbGraderAPI(config=config)


@pytest.fixture(autouse=True)
def _venv_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """nbgrader runs `alembic` by subprocess when it creates the gradebook."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.notebook
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_marks_blank_zero(assignment: str, tmp_path: Path) -> None:
    """Does the solution earn every point and the blank release none?"""
    from nbgrader.api import Gradebook

    shutil.copytree(COURSES / assignment, tmp_path / "source" / assignment)
    api = _api(tmp_path)
    generated = api.generate_assignment(assignment)
    assert generated["success"], generated["log"]
    release = tmp_path / "release" / assignment
    for student, origin in (("solution", tmp_path / "source"), ("blank", tmp_path / "release")):
        shutil.copytree(origin / assignment, tmp_path / "submitted" / student / assignment)
        graded = api.autograde(assignment, student)
        assert graded["success"], graded["log"]
    assert list(release.glob("*.ipynb")), "the release holds the learner's notebook"
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        solution = gradebook.find_submission(assignment, "solution")
        blank = gradebook.find_submission(assignment, "blank")
        assert solution.max_score > 0
        assert solution.score == solution.max_score, (
            f"solution scored {solution.score}/{solution.max_score}"
        )
        assert blank.score == 0, f"blank release scored {blank.score}/{blank.max_score}"
    released = (release / f"{assignment}.ipynb").read_text(encoding="utf-8")
    assert "BEGIN HIDDEN TESTS" not in released and "BEGIN SOLUTION" not in released
