"""The instructor report (from grader records) and the LMS grade export (from a real gradebook).

Records are written with :mod:`aifkit.grading.records`; gradebooks are built in tmp_path with
nbgrader's own ``Gradebook``, so the export reads exactly what nbgrader would store.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import nbformat
import numpy
import pytest
from nbgrader.api import Gradebook

from aifkit.grading import records
from aifkit.grading.analytics import (
    FailureRate,
    per_test_failure_rates,
    render_report,
    score_distribution_plot,
    status_counts,
    time_stats,
    write_report,
)
from aifkit.grading.export import export_csv, number
from aifkit.grading.records import SubmissionResult, Suspicion
from aifkit.grading.records import TestResult as Outcome  # not a pytest class


@pytest.fixture(scope="module", autouse=True)
def _venv_on_path() -> Iterator[None]:
    """nbgrader runs `alembic` by subprocess when it creates a gradebook."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        yield


def _test(grade_id: str, score: float, status: records.TestStatus = "passed") -> Outcome:
    return Outcome(notebook="p1", grade_id=grade_id, max_score=2.0, score=score, status=status)


def _results() -> list[SubmissionResult]:
    def result(student: str, status: records.SubmissionStatus, seconds: float, *tests: Outcome):
        return SubmissionResult(
            assignment="ps1", student=student, status=status, seconds=seconds, tests=list(tests)
        )

    flagged = result("dan", "flagged", 4.0, _test("t1", 0, "flagged"), _test("t2", 2))
    flagged.findings = [
        Suspicion(
            notebook="p1", cell="answer", line=3, pattern="sys.modules", reason="patches the grader"
        )
    ]
    return [
        result("ann", "graded", 1.0, _test("t1", 2), _test("t2", 2)),
        result("bob", "graded", 2.0, _test("t1", 1, "partial"), _test("t2", 2)),
        result("cat", "timeout", 10.0, _test("t1", 0, "not-run"), _test("t2", 0, "not-run")),
        flagged,
        SubmissionResult(
            assignment="ps1",
            student="eve",
            status="kernel-died",
            message="Kernel died: out of memory",
            seconds=3.0,
        ),
    ]


def test_failure_rates_count_anything_below_the_maximum() -> None:
    rates = per_test_failure_rates(_results())
    assert rates == [
        FailureRate("p1", "t1", 3, 4, 0.75),
        FailureRate("p1", "t2", 1, 4, 0.25),
    ]


def test_status_counts_list_every_status() -> None:
    counts = status_counts(_results())
    assert counts == {"graded": 2, "flagged": 1, "timeout": 1, "kernel-died": 1, "error": 0}
    assert status_counts([])["error"] == 0


def test_time_stats_match_numpy() -> None:
    seconds = [r.seconds for r in _results()]
    stats = time_stats(_results())
    assert stats.submissions == 5 and stats.max == 10.0
    assert stats.mean == pytest.approx(numpy.mean(seconds))
    assert stats.p50 == pytest.approx(numpy.percentile(seconds, 50))
    assert stats.p95 == pytest.approx(numpy.percentile(seconds, 95))
    assert time_stats([]).submissions == 0


def test_score_plot_is_a_png_and_leaves_pyplot_alone(tmp_path: Path) -> None:
    backend = matplotlib.get_backend()
    path = score_distribution_plot(_results(), tmp_path / "out" / "scores.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend
    empty = score_distribution_plot([], tmp_path / "empty.png")
    assert empty.stat().st_size > 0


def _save_all(root: Path) -> None:
    for result in _results():
        records.save(root, result)


def test_report_names_statuses_failures_and_messages(tmp_path: Path) -> None:
    _save_all(tmp_path)
    text = render_report(tmp_path, "ps1")
    assert "Assignment ps1: 5 submissions" in text
    assert "graded 2, flagged 1, timeout 1, kernel-died 1, error 0" in text
    assert "p95 8.8, max 10.0" in text
    assert "p1        t1    3/4     75%" in text
    assert text.index("cat  10.0 s  timeout") < text.index("dan  4.0 s")
    assert "eve  kernel-died  Kernel died: out of memory" in text
    assert "dan  sys.modules" in text


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two assignments, four students; a manual override, a late penalty, gaps."""
    url = f"sqlite:///{tmp_path_factory.mktemp('export') / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("a1", duedate=datetime.datetime(2026, 1, 10))
        gb.add_assignment("a2", duedate=datetime.datetime(2026, 2, 10))
        gb.add_notebook("p1", "a1")
        gb.add_grade_cell("t1", "p1", "a1", max_score=2, cell_type="code")
        gb.add_grade_cell("essay", "p1", "a1", max_score=1, cell_type="markdown")
        gb.add_grade_cell("t2", "p1", "a1", max_score=1.5, cell_type="code")
        gb.add_notebook("p2", "a1")
        gb.add_task_cell("task", "p2", "a1", max_score=1, cell_type="markdown")
        gb.add_notebook("q1", "a2")
        gb.add_grade_cell("u1", "q1", "a2", max_score=3, cell_type="code")
        gb.add_student("alice", last_name="Smith", first_name="Alice", email="a@example.org")
        gb.add_student("bob", last_name="Jones", first_name="Bob")
        gb.add_student("carol", last_name="Zed", first_name="Carol")
        gb.add_student("dave", last_name="Young", first_name="Dave")

        def grade(assignment: str, student: str, scores: dict[tuple[str, str], tuple]) -> None:
            gb.add_submission(assignment, student)
            for (notebook, cell), (auto, manual) in scores.items():
                found = gb.find_grade(cell, notebook, assignment, student)
                found.auto_score, found.manual_score = auto, manual
                found.needs_manual_grade = auto is None and manual is None  # as nbgrader sets it

        grade(
            "a1",
            "alice",
            {
                ("p1", "t1"): (2.0, None),
                ("p1", "t2"): (0.1 + 0.2, None),
                ("p1", "essay"): (None, 1.0),
                ("p2", "task"): (None, 0.5),
            },
        )
        gb.find_submission_notebook("p1", "a1", "alice").late_submission_penalty = 0.5
        grade("a2", "alice", {("q1", "u1"): (1.0, 2.5)})  # a grader raised the autograde
        grade("a1", "bob", {("p1", "t1"): (0.0, None), ("p1", "t2"): (0.0, None)})
        gb.find_grade("t2", "p1", "a1", "bob").needs_manual_grade = True  # flagged for review
        grade("a2", "carol", {("q1", "u1"): (3.0, None)})
        gb.db.commit()
    return url


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_export_has_one_row_per_student_and_empty_means_not_scored(
    gradebook: str, tmp_path: Path
) -> None:
    path, sidecar = export_csv(gradebook, tmp_path / "out" / "grades.csv")
    with path.open(encoding="utf-8") as stream:
        header = next(csv.reader(stream))
    assert header == [
        *["student_id", "last_name", "first_name", "email"],
        *["a1/p1/t1", "a1/p1/essay", "a1/p1/t2", "a1/p2/task", "a1/late_penalty", "a1/total"],
        *["a2/q1/u1", "a2/late_penalty", "a2/total"],
    ]
    rows = {row["student_id"]: row for row in _read(path)}
    assert [row["student_id"] for row in _read(path)] == ["bob", "alice", "dave", "carol"]
    alice = rows["alice"]
    assert (alice["a1/p1/t1"], alice["a1/p1/t2"], alice["a1/p1/essay"]) == ("2", "0.3", "1")
    assert (alice["a1/p2/task"], alice["a1/late_penalty"]) == ("0.5", "0.5")
    assert alice["a1/total"] == "3.3"  # 2 + 0.3 + 1 + 0.5 less the 0.5 penalty
    assert (alice["a2/q1/u1"], alice["a2/total"]) == ("2.5", "2.5")  # manual beats auto
    assert alice["email"] == "a@example.org"
    bob = rows["bob"]
    assert (bob["a1/p1/t1"], bob["a1/p1/t2"], bob["a1/p1/essay"]) == ("0", "", "")
    assert bob["a1/total"] == ""  # parts still wait for a human
    assert bob["a2/q1/u1"] == bob["a2/total"] == ""  # never submitted a2
    assert all(value == "" for key, value in rows["dave"].items() if key.startswith("a"))
    assert rows["carol"]["a1/total"] == "" and rows["carol"]["a2/total"] == "3"
    (maxima,) = _read(sidecar)
    assert maxima["student_id"] == "max"
    assert (maxima["a1/p1/t2"], maxima["a1/total"], maxima["a2/total"]) == ("1.5", "5.5", "3")


def test_export_follows_source_cell_order_and_chosen_assignments(
    gradebook: str, tmp_path: Path
) -> None:
    source = tmp_path / "courses" / "a1" / "p1.ipynb"
    source.parent.mkdir(parents=True)
    cells = [nbformat.v4.new_code_cell() for _ in range(3)]
    for cell, grade_id in zip(cells, ["t2", "essay", "t1"], strict=True):
        cell.metadata["nbgrader"] = {"grade_id": grade_id}
    nbformat.write(nbformat.v4.new_notebook(cells=cells), source)
    path, _ = export_csv(gradebook, tmp_path / "g.csv", ["a1"], source_dir=tmp_path / "courses")
    with path.open(encoding="utf-8") as stream:
        header = next(csv.reader(stream))
    assert header[4:8] == ["a1/p1/t2", "a1/p1/essay", "a1/p1/t1", "a1/p2/task"]
    assert not any(h.startswith("a2/") for h in header)
    with pytest.raises(KeyError, match="nope"):
        export_csv(gradebook, tmp_path / "x.csv", ["nope"])


def test_export_never_creates_a_gradebook(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        export_csv(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "g.csv")
    assert not (tmp_path / "missing.db").exists()


def test_numbers_have_no_float_noise() -> None:
    assert [number(x) for x in (2.0, 1.5, 0.1 + 0.2, -0.0, None)] == ["2", "1.5", "0.3", "0", ""]


def test_write_report_with_gradebook_lists_missing_and_mismatched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("ps1")
        gb.add_notebook("p1", "ps1")
        for name in ("t1", "t2"):
            gb.add_grade_cell(name, "p1", "ps1", max_score=2, cell_type="code")
        for student in ("ann", "bob", "zoe"):
            gb.add_student(student)
        for student, t1 in (("ann", 2.0), ("bob", 2.0)):  # bob's record says 1: tampered
            gb.add_submission("ps1", student)
            gb.find_grade("t1", "p1", "ps1", student).auto_score = t1
            gb.find_grade("t2", "p1", "ps1", student).auto_score = 2.0
        gb.db.commit()
    _save_all(tmp_path)
    paths = write_report(tmp_path, "ps1", tmp_path / "report", db_url=url)
    assert [p.name for p in paths] == ["report.txt", "report.json", "scores.png"]
    data = json.loads(paths[1].read_text(encoding="utf-8"))
    assert data["status"]["timeout"] == 1
    assert data["gradebook"]["no_record"] == ["zoe"]
    assert data["gradebook"]["score_mismatch"] == [
        {"student": "bob", "notebook": "p1", "grade_id": "t1", "record": 1, "gradebook": 2.0}
    ]
    text = paths[0].read_text(encoding="utf-8")
    assert "In the gradebook without a record: zoe" in text
    assert "bob  p1/t1  record 1  gradebook 2" in text
