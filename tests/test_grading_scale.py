"""Grading at scale: parallel equals sequential, stock nbgrader, PostgreSQL, SLURM job arrays."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from grading_course import (
    ASSIGNMENT,
    AUTOGRADED_POINTS,
    gradebook_scores,
    honest,
    make_course,
    release_notebook,
    submit,
    with_answers,
)

from aifkit.grading import array, prepare
from aifkit.grading.autograde import AutogradeOptions, autograde
from aifkit.grading.course import Course
from aifkit.grading.limits import Limits

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (CI installs it)"),
]
LIMITS = Limits(cell_timeout_s=30, notebook_timeout_s=120)

# student -> expected autograded score
EXPECTED = {
    "ada": AUTOGRADED_POINTS,
    "bob": 0.0,
    "cy": 2.0 + 1.0,  # square right, mean wrong: test_square 2 + one partial point
    "dee": 1.0 + 1.0,  # mean right, square wrong: test_mean 1 + one partial point
    "eve": 0.0,  # flagged: patches math.isclose
    "fay": AUTOGRADED_POINTS,
}


def _submit_all(course: Course) -> None:
    release = release_notebook(course)
    square = "def square(x):\n    return x * x"
    mean = "def mean(xs):\n    return sum(xs) / len(xs)"
    submit(course, "ada", honest(course))
    submit(course, "bob", release)
    submit(course, "cy", with_answers(release, square=square, mean="def mean(xs):\n    return 0"))
    submit(course, "dee", with_answers(release, square="def square(x):\n    return 0", mean=mean))
    patched = "import math\nmath.isclose = lambda *a, **k: True\ndef mean(xs):\n    return 0"
    submit(course, "eve", with_answers(release, square=square, mean=patched))
    submit(course, "fay", honest(course))


def _scores(results: list) -> dict[str, float]:
    return {r.student: r.score for r in results}


def test_parallel_equals_sequential_and_loses_no_row(tmp_path: Path) -> None:
    course = make_course(tmp_path)
    _submit_all(course)
    sequential = autograde(course, ASSIGNMENT, AutogradeOptions(jobs=1, limits=LIMITS))
    first = gradebook_scores(course)
    parallel = autograde(course, ASSIGNMENT, AutogradeOptions(jobs=2, limits=LIMITS))
    assert _scores(sequential) == EXPECTED, sequential
    assert _scores(parallel) == EXPECTED, parallel
    assert gradebook_scores(course) == first == EXPECTED, "one gradebook row per student"
    assert [r.status for r in parallel if r.student == "eve"] == ["flagged"]
    with course.gradebook() as gb:
        assert len(gb.find_assignment(ASSIGNMENT).submissions) == len(EXPECTED)
        flagged = gb.find_grade("test_mean", ASSIGNMENT, ASSIGNMENT, "eve")
        assert flagged.needs_manual_grade, "a flagged test waits for a human"


def test_stock_nbgrader_autograde_is_sandboxed_and_fails_closed(tmp_path: Path) -> None:
    """Plain `nbgrader autograde` with the course's nbgrader_config.py gets the same guarantees."""
    course = make_course(tmp_path)
    release = release_notebook(course)
    submit(course, "ada", honest(course))
    trick = "get_ipython().showtraceback = lambda *a, **k: None\ndef square(x):\n    return 0"
    submit(course, "mal", with_answers(release, square=trick))
    (tmp_path / "nbgrader_config.py").write_text(
        "from aifkit.grading.config import configure\n"
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'advcourse'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{tmp_path / 'gradebook.db'}'\n"
        "configure(c)\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "autograde", ASSIGNMENT, "--force"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "flagged" in done.stderr, "the static inspection reports the trick in nbgrader's log"
    assert gradebook_scores(course) == {"ada": AUTOGRADED_POINTS, "mal": 0.0}


def test_postgresql_gradebook(tmp_path: Path, postgres_gradebook_url: str) -> None:
    course = make_course(tmp_path, db_url=postgres_gradebook_url)
    _submit_all(course)
    results = autograde(course, ASSIGNMENT, AutogradeOptions(jobs=2, limits=LIMITS))
    assert _scores(results) == EXPECTED
    assert gradebook_scores(course) == EXPECTED
    assert not (tmp_path / "gradebook.db").exists(), "SQLite stayed unused"


@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_array_matches_local_grading_and_retries_a_failed_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = make_course(tmp_path)
    _submit_all(course)
    real_prepare = prepare.prepare

    def prepare_breaking_fay(*args: object, **kwargs: object) -> prepare.GradingJob:
        job = real_prepare(*args, **kwargs)  # type: ignore[arg-type]
        if job.student == "fay":  # its task will crash on a corrupt job file
            (Path(job.folder) / "job.json").write_text("{", encoding="utf-8")
        return job

    monkeypatch.setattr(array, "prepare", prepare_breaking_fay)
    options = AutogradeOptions(limits=LIMITS)
    results = array.autograde_array(course, ASSIGNMENT, options, chunk=1, timeout_s=600)
    by_student = {r.student: r for r in results}
    assert by_student["fay"].status == "error"
    assert "array task" in by_student["fay"].message and "log ends" in by_student["fay"].message
    assert {s: r.score for s, r in by_student.items() if s != "fay"} == {
        s: v for s, v in EXPECTED.items() if s != "fay"
    }
    assert "fay" not in gradebook_scores(course), "a failed task records nothing in the gradebook"
    monkeypatch.setattr(array, "prepare", real_prepare)
    retried = array.autograde_array(
        course,
        ASSIGNMENT,
        AutogradeOptions(limits=LIMITS, retry_failed=True),
        chunk=2,
        timeout_s=600,
    )
    assert [(r.student, r.score) for r in retried] == [("fay", AUTOGRADED_POINTS)]
    assert gradebook_scores(course) == EXPECTED
