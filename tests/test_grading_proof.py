"""Every catalog assignment's graded exercises are proven with aifkit's own autograder, sandboxed.

For each assignment a throw-away nbgrader course is made in ``tmp_path`` from the real
assignment folder and nbgrader generates the release. Then one ``autograde`` batch (two worker
processes, the default bubblewrap sandbox) grades the submissions:

- ``solution``: the instructor's source notebook, which must earn every autograded point;
- ``blank``: the untouched release learners receive, which must earn nothing;
- ``wrong`` (the first assignment of each track, ``WITH_WRONG``): the solution with one exercise
  left undone, which must earn some points but not all. A third kernel per assignment would
  make this the suite's longest test on CI's 2 cores; partial marks come from the same scoring
  code for every assignment, so one assignment per track proves them;
- ``baseline`` (every capstone: notebook metadata ``aifkit.capstone``): the solution with the
  model's answer cells replaced by the given baseline, which must fail every held-out test
  (the capstone's target is above what the baseline reaches on data it never saw) while the
  solution passes them. It gives partial marks too, so capstones need no ``wrong``.

No record may be an error or flagged: a flag would mean the static inspection rejects honest
instructor code. The gradebook must agree with the records.

The test skips where bubblewrap is missing, but CI installs bubblewrap (``apt-get install
bubblewrap``), so there it always runs, sandbox on.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import nbformat
import pytest
from builders import COURSES
from traitlets.config import Config

from aifkit import catalog
from aifkit.grading import workflow
from aifkit.grading.autograde import AutogradeOptions, autograde
from aifkit.grading.course import Course
from aifkit.grading.records import SubmissionResult

CATALOG = catalog.load(COURSES)
ASSIGNMENTS = [a.id for a in CATALOG.assignments()]


def _capstone(path: Path) -> dict | None:
    """The notebook's ``aifkit.capstone`` metadata (baseline code, held-out tests), if any."""
    found: dict | None = (
        nbformat.read(str(path), as_version=4).metadata.get("aifkit", {}).get("capstone")
    )
    return found


CAPSTONES = {
    a.id: meta
    for a in CATALOG.assignments()
    if (meta := _capstone(CATALOG.notebook_path(a))) is not None
}
WITH_WRONG = {
    track.assignments[0].id
    for track in CATALOG.tracks
    if track.assignments and track.assignments[0].id not in CAPSTONES
}

# Answer cell (grade_id) the "wrong" submission leaves undone, where the default (the last
# autograded exercise, see _undone_exercise) would not give partial marks. Empty: the default
# gives partial marks for every assignment.
UNDONE: dict[str, str] = {}

pytestmark = [
    pytest.mark.notebook,
    pytest.mark.sandbox,
    pytest.mark.skipif(
        shutil.which("bwrap") is None,
        reason="bubblewrap (bwrap) is not installed: the proof grades in the sandbox only "
        "(CI installs bubblewrap, so it never skips there)",
    ),
]


def _meta(cell: nbformat.NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_answer(cell: nbformat.NotebookNode) -> bool:
    meta = _meta(cell)
    return cell.cell_type == "code" and bool(meta.get("solution")) and not meta.get("grade")


def _is_test(cell: nbformat.NotebookNode) -> bool:
    meta = _meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _undone_exercise(assignment: str, nb: nbformat.NotebookNode) -> str:
    """The answer cell the "wrong" learner leaves as released.

    By default the last autograded exercise: the last answer cell whose next nbgrader cell is a
    test cell. Nothing after it depends on it except its own tests, so those fail while every
    earlier exercise still passes: partial marks, chosen the same way on every run. Where that
    would not give partial marks, ``UNDONE`` names another answer cell.
    """
    if assignment in UNDONE:
        return UNDONE[assignment]
    graded = [c for c in nb.cells if _meta(c).get("grade_id")]
    answers = [
        _meta(cell)["grade_id"]
        for cell, after in itertools.pairwise(graded)
        if _is_answer(cell) and _is_test(after)
    ]
    assert answers, f"{assignment}: no answer cell followed by a test cell"
    return answers[-1]


def _wrong(
    assignment: str, source: nbformat.NotebookNode, release: nbformat.NotebookNode
) -> tuple[nbformat.NotebookNode, str]:
    """The source notebook with one exercise's answer cell put back as the release has it."""
    undone = _undone_exercise(assignment, source)
    stub = next(c.source for c in release.cells if _meta(c).get("grade_id") == undone)
    cells = [c for c in source.cells if _meta(c).get("grade_id") == undone]
    assert len(cells) == 1, f"{assignment}: answer cell {undone!r} appears {len(cells)} times"
    assert cells[0].source != stub, f"{assignment}: {undone!r} has no solution to remove"
    cells[0].source = stub
    return source, undone


def _baseline(source: nbformat.NotebookNode, baseline: dict[str, str]) -> nbformat.NotebookNode:
    """The source notebook with the model's answer cells replaced by the given baseline."""
    for grade_id, code in baseline.items():
        cells = [c for c in source.cells if _meta(c).get("grade_id") == grade_id]
        assert len(cells) == 1, f"answer cell {grade_id!r} appears {len(cells)} times"
        cells[0].source = code
    return source


def _submit(course: Course, assignment: str, student: str, origin: Path) -> Path:
    """Copy a whole assignment folder (data files too) to ``submitted/<student>/<assignment>``."""
    folder = course.folder("submitted", student, assignment)
    shutil.copytree(origin, folder)
    return folder / f"{assignment}.ipynb"


def _explain(result: SubmissionResult) -> str:
    """The record's status, score, message, every test that lost points, and any findings."""
    lines = [f"{result.student}: {result.status} {result.score:g}/{result.max_score:g}"]
    if result.message:
        lines.append(f"  message: {result.message}")
    lines += [
        f"  {t.notebook} {t.grade_id}: {t.status} {t.score:g}/{t.max_score:g} {t.detail}".rstrip()
        for t in result.tests
        if t.score != t.max_score or t.status != "passed"
    ]
    lines += [
        f"  finding {f.notebook} {f.cell} line {f.line}: {f.pattern}: {f.reason}"
        for f in result.findings
    ]
    return "\n".join(lines)


def _gradebook_scores(course: Course, assignment: str, students: list[str]) -> dict[str, float]:
    """Autograded score per student as the gradebook has it.

    nbgrader's ``submission.score`` also counts manual scores; the records hold autograded
    tests only, so compare with the sum of the grades' auto scores.
    """
    with course.gradebook() as gb:
        return {
            student: float(
                sum(
                    g.auto_score or 0
                    for n in gb.find_submission(assignment, student).notebooks
                    for g in n.grades
                )
            )
            for student in students
        }


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_blank_zero_wrong_partial(assignment: str, tmp_path: Path) -> None:
    """Does the solution earn every point, the blank release none and one undone exercise some?"""
    students = ["blank", "solution"] + (["wrong"] if assignment in WITH_WRONG else [])
    students += ["baseline"] if assignment in CAPSTONES else []
    source_folder = tmp_path / "source" / assignment
    shutil.copytree(COURSES / assignment, source_folder)
    config = Config()
    config.CourseDirectory.course_id = "proof"
    config.CourseDirectory.db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    config.Exchange.root = str(tmp_path / "exchange")
    (tmp_path / "exchange").mkdir()
    course = Course.load(tmp_path, config)
    workflow.generate(course, assignment)

    release_folder = course.folder("release", ".", assignment)
    released = (release_folder / f"{assignment}.ipynb").read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in released and "BEGIN HIDDEN TESTS" not in released

    _submit(course, assignment, "solution", source_folder)
    _submit(course, assignment, "blank", release_folder)
    undone = ""
    if "wrong" in students:
        wrong_path = _submit(course, assignment, "wrong", source_folder)
        wrong, undone = _wrong(
            assignment,
            nbformat.read(str(wrong_path), as_version=4),
            nbformat.read(str(release_folder / f"{assignment}.ipynb"), as_version=4),
        )
        nbformat.write(wrong, str(wrong_path))
    if "baseline" in students:
        baseline_path = _submit(course, assignment, "baseline", source_folder)
        nb = nbformat.read(str(baseline_path), as_version=4)
        nbformat.write(_baseline(nb, CAPSTONES[assignment]["baseline"]), str(baseline_path))

    results = {r.student: r for r in autograde(course, assignment, AutogradeOptions(jobs=2))}
    assert sorted(results) == sorted(students)
    report = "\n".join(_explain(results[s]) for s in students)

    bad = [r for r in results.values() if r.status in ("error", "flagged")]
    assert not bad, (
        "a record is an error or flagged (a flag on the solution means the static inspection "
        f"rejects honest instructor code):\n{report}"
    )
    solution, blank = results["solution"], results["blank"]
    assert solution.status == "graded", report
    assert solution.max_score > 0, report
    assert solution.score == solution.max_score, f"the solution lost points:\n{report}"
    assert blank.max_score == solution.max_score, report
    assert blank.score == 0, f"the blank release earned points:\n{report}"
    if "wrong" in students:
        partial = results["wrong"]
        assert 0 < partial.score < partial.max_score, (
            f"leaving {undone!r} undone should give partial marks (else name another answer "
            f"cell in UNDONE):\n{report}"
        )
    if "baseline" in students:
        held_out = set(CAPSTONES[assignment]["held_out"])
        for student, passes in (("solution", True), ("baseline", False)):
            outcome = {t.grade_id: t.score == t.max_score for t in results[student].tests}
            wrong = sorted(g for g in held_out if outcome.get(g) is not passes)
            assert not wrong, (
                f"the {student} should {'pass' if passes else 'fail'} held-out test(s) "
                f"{wrong}:\n{report}"
            )
    assert _gradebook_scores(course, assignment, students) == {
        s: results[s].score for s in students
    }
