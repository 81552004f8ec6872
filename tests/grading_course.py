"""A tiny real nbgrader course for grading tests: one assignment, "adv", one notebook.

Autograded points: test_square 2, test_mean 1, test_partial 2 (partial credit) = 5; the markdown
answer "explain" is 1 manually graded point. Hidden tests sit in test_square and test_mean.
``make_course(..., code_answer=True)`` adds "describe", a manually graded code answer (1 point)
released as ``raise NotImplementedError()``.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
from builders import AIFKIT_KERNEL, code
from traitlets.config import Config

from aifkit.grading import workflow
from aifkit.grading.course import Course

ASSIGNMENT = "adv"
AUTOGRADED_POINTS = 5.0
AUTOGRADED_TESTS = ("test_square", "test_mean", "test_partial")
HIDDEN_LINE = "assert square(-2) == 4, 'negative numbers'"

SQUARE = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
MEAN = "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION"
TEST_SQUARE = (
    "assert square(3) == 9, 'square(3) should be 9'\n"
    f"### BEGIN HIDDEN TESTS\n{HIDDEN_LINE}\nassert square(0.5) == 0.25\n### END HIDDEN TESTS"
)
TEST_MEAN = (
    "import math\nassert math.isclose(mean([1, 2, 3]), 2.0)\n"
    "### BEGIN HIDDEN TESTS\nimport numpy as np\n"
    "np.testing.assert_allclose(mean([1.0, 4.0]), 2.5)\n### END HIDDEN TESTS"
)
TEST_PARTIAL = (
    "points = 0\n"
    "points += 1 if square(2) == 4 else 0\n"
    "points += 1 if mean([2, 4]) == 3 else 0\n"
    "points"
)


def markdown_answer() -> nbformat.NotebookNode:
    """The manually graded written answer (1 point)."""
    cell = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE\n")
    cell.metadata["nbgrader"] = {
        "schema_version": 3,
        "grade": True,
        "solution": True,
        "locked": False,
        "task": False,
        "grade_id": "explain",
        "points": 1,
    }
    return cell


DESCRIBE = "### BEGIN SOLUTION\nprint('squares grow fast')\n### END SOLUTION"


def source_notebook(*, code_answer: bool = False) -> nbformat.NotebookNode:
    """The instructor's notebook: solutions in place, hidden tests in the test cells."""
    intro = nbformat.v4.new_markdown_cell("# Squares and means\nRead `data.txt` if you like.")
    intro.metadata["nbgrader"] = {
        "schema_version": 3,
        "grade": False,
        "solution": False,
        "locked": True,
        "task": False,
        "grade_id": "intro",
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(AIFKIT_KERNEL)}
    nb.cells = [
        intro,
        code(SQUARE, solution=True, grade=False, grade_id="square"),
        code(
            TEST_SQUARE, solution=False, grade=True, grade_id="test_square", points=2, locked=True
        ),
        code(MEAN, solution=True, grade=False, grade_id="mean"),
        code(TEST_MEAN, solution=False, grade=True, grade_id="test_mean", points=1, locked=True),
        code(
            TEST_PARTIAL, solution=False, grade=True, grade_id="test_partial", points=2, locked=True
        ),
        markdown_answer(),
    ]
    if code_answer:
        nb.cells.append(code(DESCRIBE, solution=True, grade=True, grade_id="describe", points=1))
    return nb


def make_course(root: Path, db_url: str | None = None, *, code_answer: bool = False) -> Course:
    """Write the source, generate the release and the gradebook entries, return the course."""
    folder = root / "source" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(source_notebook(code_answer=code_answer), str(folder / f"{ASSIGNMENT}.ipynb"))
    (folder / "data.txt").write_text("1 2 3\n", encoding="utf-8")
    config = Config()
    config.CourseDirectory.course_id = "advcourse"
    config.CourseDirectory.db_url = db_url or f"sqlite:///{root / 'gradebook.db'}"
    config.Exchange.root = str(root / "exchange")
    course = Course.load(root, config)
    workflow.generate(course, ASSIGNMENT)
    return course


def release_notebook(course: Course) -> nbformat.NotebookNode:
    path = course.folder("release", ".", ASSIGNMENT) / f"{ASSIGNMENT}.ipynb"
    return nbformat.read(str(path), as_version=4)


def with_answers(nb: nbformat.NotebookNode, **answers: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose answer cells (by grade_id) hold the given code."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def honest(course: Course) -> nbformat.NotebookNode:
    return with_answers(
        release_notebook(course),
        square="def square(x):\n    return x * x",
        mean="def mean(xs):\n    return sum(xs) / len(xs)",
    )


def submit(
    course: Course,
    student: str,
    nb: nbformat.NotebookNode | None = None,
    *,
    raw: bytes | None = None,
    name: str = f"{ASSIGNMENT}.ipynb",
) -> Path:
    """Place a submission in ``submitted/<student>/adv/`` as nbgrader's collect would."""
    folder = course.folder("submitted", student, ASSIGNMENT)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text("2026-11-27 10:00:00.000000 UTC", encoding="utf-8")
    path = folder / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        assert nb is not None
        nbformat.write(nb, str(path))
    return folder


def gradebook_scores(course: Course) -> dict[str, float]:
    """Autograded score per student as the gradebook has it."""
    with course.gradebook() as gb:
        return {
            s.student.id: float(sum(g.auto_score or 0 for n in s.notebooks for g in n.grades))
            for s in gb.find_assignment(ASSIGNMENT).submissions
        }


def gradebook_view(course: Course) -> dict[str, tuple[float, bool]]:
    """Per student, as the gradebook has it: autograded score, and whether a test awaits review.

    Both grading paths write the gradebook, so this is how their verdicts are compared.
    """
    view: dict[str, tuple[float, bool]] = {}
    with course.gradebook() as gb:
        for submission in gb.find_assignment(ASSIGNMENT).submissions:
            tests = [
                g for n in submission.notebooks for g in n.grades if g.name in AUTOGRADED_TESTS
            ]
            score = float(sum(g.auto_score or 0 for g in tests))
            view[submission.student.id] = (score, any(g.needs_manual_grade for g in tests))
    return view


def answer_grade(course: Course, student: str, grade_id: str) -> tuple[float | None, bool]:
    """A manually graded answer's (auto_score, needs_manual_grade) in the gradebook."""
    with course.gradebook() as gb:
        grade = gb.find_grade(grade_id, ASSIGNMENT, ASSIGNMENT, student)
        return grade.auto_score, bool(grade.needs_manual_grade)
