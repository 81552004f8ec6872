"""Record a graded submission: the gradebook, the autograded folder and the JSON record.

Only the grader process calls this, one submission at a time, so the gradebook has one writer.
Manual scores are never touched; a submission the grader itself failed on (status ``error``)
changes nothing in the gradebook, so an earlier grade survives until a retry succeeds.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat

from aifkit.grading import records
from aifkit.grading.course import Course
from aifkit.grading.prepare import GradingJob
from aifkit.grading.worker import GradingOutcome


def commit(course: Course, job: GradingJob, outcome: GradingOutcome) -> None:
    """Write one outcome; the record is saved last, so it only exists once all is written."""
    result = outcome.result
    if result.status != "error":
        _write_gradebook(course, job, outcome)
        _write_autograded(course, job, outcome)
    records.save(course.root, result)


def _write_gradebook(course: Course, job: GradingJob, outcome: GradingOutcome) -> None:
    from nbgrader.utils import compute_checksum

    result = outcome.result
    scores = {(t.notebook, t.grade_id): t for t in result.tests}
    answers = {(a.notebook, a.grade_id): a for a in result.answers}
    with course.gradebook() as gb:
        record_submission(course, gb, job.assignment, job.student)
        for name, spec in job.specs.items():
            for grade_id in spec.tests:
                grade = gb.find_grade(grade_id, name, job.assignment, job.student)
                test = scores.get((name, grade_id))
                grade.auto_score = test.score if test else 0.0
                flagged = test is not None and test.status == "flagged"
                grade.needs_manual_grade = flagged or grade.manual_score is not None
            for grade_id in spec.manual:  # None: a human grades it (see core.py)
                grade = gb.find_grade(grade_id, name, job.assignment, job.student)
                answer = answers.get((name, grade_id))
                grade.auto_score = answer.auto_score if answer else 0.0
                grade.needs_manual_grade = (
                    grade.auto_score is None or grade.manual_score is not None
                )
            nb = outcome.notebooks.get(name)
            if nb is not None:
                _comments(gb, nbformat.from_dict(nb), name, job, compute_checksum)
        gb.db.commit()
    _late_penalties(course, job, outcome)


def record_submission(course: Course, gb: Any, assignment: str, student: str) -> None:
    """The learner and their submission in the gradebook, with ``timestamp.txt``'s time."""
    timestamp = course.coursedir.get_existing_timestamp(
        str(course.folder("submitted", student, assignment))
    )
    gb.update_or_create_student(student)
    extra = {"timestamp": timestamp} if timestamp else {}
    gb.update_or_create_submission(assignment, student, **extra)


def _comments(
    gb: Any, nb: nbformat.NotebookNode, name: str, job: GradingJob, checksum: Any
) -> None:
    """nbgrader's "No response." for answers left as released."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution") or "grade_id" not in meta:
            continue
        comment = gb.find_comment(meta["grade_id"], name, job.assignment, job.student)
        unchanged = meta.get("checksum") == checksum(cell)
        comment.auto_comment = "No response." if unchanged else None


def _late_penalties(course: Course, job: GradingJob, outcome: GradingOutcome) -> None:
    from nbgrader.preprocessors import AssignLatePenalties

    for name, nb in outcome.notebooks.items():
        resources = {
            "nbgrader": {
                "notebook": name,
                "assignment": job.assignment,
                "student": job.student,
                "db_url": course.db_url,
            }
        }
        AssignLatePenalties(config=course.config).preprocess(nbformat.from_dict(nb), resources)


def _write_autograded(course: Course, job: GradingJob, outcome: GradingOutcome) -> None:
    """Replace ``autograded/<student>/<assignment>`` in one rename, files and notebooks."""
    target = course.folder("autograded", job.student, job.assignment)
    staging = target.parent / f".{target.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(job.files, staging)
    for name, nb in outcome.notebooks.items():
        nbformat.write(nbformat.from_dict(nb), str(staging / f"{name}.ipynb"))
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def autograded_notebook(course: Course, student: str, assignment: str, name: str) -> Path:
    return course.folder("autograded", student, assignment) / f"{name}.ipynb"
