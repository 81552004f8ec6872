"""The late policy: rules checked with their key, penalties at the edges, and the same penalty in
both grading paths (``aifkit grade autograde`` and stock ``nbgrader autograde``), in the
gradebook, the export and the feedback."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grading_course import (
    ASSIGNMENT,
    AUTOGRADED_POINTS,
    honest,
    make_course,
    stock_autograde,
    submit,
)

from aifkit.grading import late
from aifkit.grading.course import Course, GradingError

BIN = Path(sys.executable).parent
DAY = 86_400
TEN_PER_DAY = late.LateRule("percent-per-day", percent=10, cap=50, grace_minutes=15)


@pytest.mark.parametrize(
    ("seconds_late", "points"),
    [
        (-60, 0.0),  # early
        (0, 0.0),  # exactly on time
        (900, 0.0),  # the last second of the grace
        (901, 1.0),  # one second past the grace: late from the due date, one (part of a) day
        (DAY, 1.0),  # exactly one day
        (DAY + 1, 2.0),  # one second into the second day
        (30 * DAY, 5.0),  # capped at 50 %
    ],
)
def test_percent_per_day_at_the_edges(seconds_late: float, points: float) -> None:
    assert TEN_PER_DAY.penalty_points(10.0, seconds_late) == pytest.approx(points)


def test_zero_and_none() -> None:
    assert late.LateRule("zero").penalty_points(7.0, 1) == 7.0
    assert late.LateRule("zero").penalty_points(7.0, 0) == 0.0
    assert late.LateRule("none").penalty_points(7.0, 10 * DAY) == 0.0
    assert late.LateRule("zero").penalty_points(0.0, DAY) == 0.0, "nothing to take"


def test_rules_fall_back_to_the_star_rule() -> None:
    rules = late.parse_rules({"*": {"penalty": "zero"}, "a01": {"penalty": "none"}})
    assert late.rule_for(rules, "a01").penalty == "none"
    assert late.rule_for(rules, "b01").penalty == "zero"
    assert late.rule_for({}, "b01").penalty == "none"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"penalty": "half"}, "['penalty'] is 'half'"),
        ({"penalty": "percent-per-day"}, "no 'percent' above 0"),
        ({"penalty": "percent-per-day", "percent": 150}, "['percent'] is 150"),
        ({"penalty": "zero", "grace_minutes": -5}, "['grace_minutes'] is -5"),
        ({"penalty": "zero", "grace": 5}, "unknown keys: grace"),
        ("zero", "must be a dict"),
    ],
)
def test_a_bad_rule_is_named(rule: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(late.LatePolicyError, match=r"c\.LatePolicy\.rules\['a01'\]") as error:
        late.parse_rules({"a01": rule})
    assert message in str(error.value)
    (tmp_path / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.LatePolicy.rules = {{'a01': {rule!r}}}\n", encoding="utf-8"
    )
    with pytest.raises(GradingError, match=r"nbgrader_config\.py"):
        Course.load(tmp_path)


def test_a_due_date_needs_its_timezone(tmp_path: Path) -> None:
    course = make_course(tmp_path)
    with pytest.raises(late.LatePolicyError, match="no timezone"):
        late.set_due(course, ASSIGNMENT, "2026-11-27 10:00")
    with pytest.raises(late.LatePolicyError, match="no timezone"):
        late.set_due(course, ASSIGNMENT, "2026-11-27 10:00 Mars/Olympus")
    assert late.set_due(course, ASSIGNMENT, "2026-11-27 11:00 CET").hour == 10


CONFIG = """\
from aifkit.grading.config import configure
c = get_config()
c.CourseDirectory.course_id = "advcourse"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.Exchange.root = "{root}/exchange"
configure(c)
c.LatePolicy.rules = {{"*": {{"penalty": "percent-per-day", "percent": 10, "cap": 50}}}}
"""
TIMESTAMPS = {  # the due date is 2026-11-27 10:00:00 UTC
    "ontime": "2026-11-27 10:00:00.000000 UTC",
    "onesec": "2026-11-27 10:00:01.000000 UTC",
    "extended": "2026-11-29 10:00:00.000000 UTC",  # two days late, with a 48 h extension
}
EXPECTED = {"ontime": 0.0, "onesec": AUTOGRADED_POINTS / 10, "extended": 0.0}


def _aifkit(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIFKIT_COURSE_ROOT": str(root)}
    return subprocess.run(
        [str(BIN / "aifkit"), "grade", *args], capture_output=True, text=True, env=env, timeout=600
    )


def _penalties(root: Path) -> dict[str, float]:
    with Course.load(root).gradebook() as gb:
        return {
            s.student.id: s.late_submission_penalty
            for s in gb.find_assignment(ASSIGNMENT).submissions
        }


def test_both_paths_give_the_same_penalty_shown_in_export_and_feedback(tmp_path: Path) -> None:
    course = make_course(tmp_path)
    (tmp_path / "nbgrader_config.py").write_text(CONFIG.format(root=tmp_path), encoding="utf-8")
    for student, stamp in TIMESTAMPS.items():
        folder = submit(course, student, honest(course))
        (folder / "timestamp.txt").write_text(stamp, encoding="utf-8")
    due = _aifkit("due", ASSIGNMENT, "2026-11-27 10:00:00 UTC", root=tmp_path)
    assert due.returncode == 0 and "10% per day late, at most 50%" in due.stdout, due
    extend = _aifkit("extend", ASSIGNMENT, "extended", "--hours", "48", root=tmp_path)
    assert extend.returncode == 0, extend.stderr
    refused = _aifkit("extend", ASSIGNMENT, "nobody", "--hours", "1", root=tmp_path)
    assert refused.returncode == 2 and "no collected submission" in refused.stderr

    ours = _aifkit("autograde", ASSIGNMENT, "--jobs", "2", root=tmp_path)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert _penalties(tmp_path) == pytest.approx(EXPECTED)

    exported = _aifkit("export", "-o", str(tmp_path / "grades.csv"), root=tmp_path)
    assert exported.returncode == 0, exported.stderr
    with open(tmp_path / "grades.csv", encoding="utf-8") as rows:
        by_student = {row["student_id"]: row for row in csv.DictReader(rows)}
    assert float(by_student["onesec"][f"{ASSIGNMENT}/late_penalty"]) == EXPECTED["onesec"]

    feedback = _aifkit("feedback", ASSIGNMENT, "--no-exchange", root=tmp_path)
    assert feedback.returncode == 0, feedback.stderr
    html = next(course.folder("feedback", "onesec", ASSIGNMENT).glob("*.html"))
    assert "Late submission penalty" in html.read_text(encoding="utf-8")

    with course.gradebook() as gb:  # forget the penalties: the stock path must set them again
        for submission in gb.find_assignment(ASSIGNMENT).submissions:
            for notebook in submission.notebooks:
                notebook.late_submission_penalty = None
        gb.db.commit()
    stock = stock_autograde(tmp_path)
    assert stock.returncode == 0, stock.stderr[-3000:]
    assert _penalties(tmp_path) == pytest.approx(EXPECTED)
