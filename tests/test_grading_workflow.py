"""The instructor's whole loop through the real CLI and a real nbgrader exchange.

release -> learners fetch and submit (stock nbgrader student commands) -> collect -> autograde
(sandboxed, 2 workers) -> feedback (no hidden tests, no live HTML) -> CSV export -> report.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import nbformat
import pytest
from grading_course import ASSIGNMENT, HIDDEN_LINE, source_notebook, with_answers

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (CI installs it)"),
]
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "AIFKIT_COURSE_ROOT": ""}
    env.pop("AIFKIT_COURSE_ROOT")
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    if ok:
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture
def course_root(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(source_notebook(), str(root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
    (root / "source" / ASSIGNMENT / "data.txt").write_text("1 2 3\n", encoding="utf-8")
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o777)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'wf'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{root / 'gradebook.db'}'\n"
        f"c.Exchange.root = '{exchange}'\n",
        encoding="utf-8",
    )
    return root


def _learner(tmp_path: Path, name: str, answers: dict[str, str], markdown: str = "") -> None:
    """A learner fetches the release, answers and submits, with nbgrader's own commands."""
    home = tmp_path / name
    home.mkdir()
    exchange = tmp_path / "exchange"
    common = ["--course=wf", f"--Exchange.root={exchange}", f"--CourseDirectory.student_id={name}"]
    _run([str(BIN / "nbgrader"), "fetch_assignment", ASSIGNMENT, *common], cwd=home)
    path = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = with_answers(nbformat.read(str(path), as_version=4), **answers)
    for cell in nb.cells:
        if markdown and cell.metadata.get("nbgrader", {}).get("grade_id") == "explain":
            cell.source = markdown
    nbformat.write(nb, str(path))
    _run([str(BIN / "nbgrader"), "submit", ASSIGNMENT, *common], cwd=home)


def test_release_collect_autograde_feedback_export_report(
    course_root: Path, tmp_path: Path
) -> None:
    aifkit = str(BIN / "aifkit")
    _run([aifkit, "grade", "release", ASSIGNMENT, "--course", str(course_root)], cwd=tmp_path)
    square = "def square(x):\n    return x * x"
    mean = "def mean(xs):\n    return sum(xs) / len(xs)"
    leak = "def square(x):\n    print(open('/proc/self/cmdline').read())\n    return x * x"
    _learner(tmp_path, "alice", {"square": square, "mean": mean})
    _learner(
        tmp_path,
        "bob",
        {"square": leak},
        markdown="**bold**\n\n<script>alert('x')</script><img src=x onerror=alert(1)>",
    )
    collected = _run(
        [aifkit, "grade", "collect", ASSIGNMENT, "--course", str(course_root)], tmp_path
    )
    assert "2 submission(s)" in collected.stdout
    graded = _run(
        [aifkit, "grade", "autograde", ASSIGNMENT, "--course", str(course_root), "--jobs", "2"],
        cwd=tmp_path,
    )
    table = graded.stdout
    assert "alice" in table and "5/5" in table and "bob" in table and "2/5" in table, table
    _run(
        [aifkit, "grade", "feedback", ASSIGNMENT, "--course", str(course_root), "--no-exchange"],
        cwd=tmp_path,
    )
    for student in ("alice", "bob"):
        html = (course_root / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        text = unescape(re.sub(r"<[^>]+>", "", html))  # highlighted code is split into spans
        assert HIDDEN_LINE not in text and "square(-2)" not in text, "hidden tests leaked"
        assert "<script>alert" not in html and "onerror" not in html
        assert "square(3) == 9" in text, "the visible test stays"
    assert (
        "<strong>bold</strong>"
        in (course_root / "feedback" / "bob" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    )
    exported = _run(
        [aifkit, "grade", "export", "--course", str(course_root), "-o", str(tmp_path / "g.csv")],
        cwd=tmp_path,
    )
    assert "g.csv" in exported.stdout
    with open(tmp_path / "g.csv", newline="", encoding="utf-8") as stream:
        rows = {row["student_id"]: row for row in csv.DictReader(stream)}
    assert rows["alice"][f"{ASSIGNMENT}/{ASSIGNMENT}/test_square"] == "2"
    assert rows["bob"][f"{ASSIGNMENT}/{ASSIGNMENT}/test_mean"] == "0"
    report = _run([aifkit, "grade", "report", ASSIGNMENT, "--course", str(course_root)], tmp_path)
    assert "test_mean" in report.stdout
    assert (course_root / "grading-reports" / ASSIGNMENT / "scores.png").stat().st_size > 1000


def test_instructor_errors_exit_2_with_a_message(course_root: Path, tmp_path: Path) -> None:
    aifkit = str(BIN / "aifkit")
    done = _run(
        [aifkit, "grade", "autograde", "nope", "--course", str(course_root)], tmp_path, ok=False
    )
    assert done.returncode == 2
    assert "not in the gradebook" in done.stderr and "aifkit grade release" in done.stderr
