"""Intake that trusts nothing: lstat before any read, only declared files, limits in a child.

The fast tests check the pieces on real files (a link to a FIFO would hang anything that read
its target); the slower ones prepare real submissions of the tiny nbgrader course, and grade one
batch with stock ``nbgrader autograde`` and the course configuration.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from grading_course import (
    ASSIGNMENT,
    AUTOGRADED_POINTS,
    gradebook_scores,
    honest,
    make_course,
    release_notebook,
    stock_autograde,
    submit,
)

from aifkit.grading.confined import ConfinedError, run_confined
from aifkit.grading.intake import INTAKE_SECONDS, MAX_CELLS, read_submission
from aifkit.grading.prepare import assignment_specs, prepare
from aifkit.grading.submission_files import copy_declared, declared_files, unsafe_entries


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_links_special_files_and_hard_links_are_named_and_never_read(tmp_path: Path) -> None:
    """Is every unsafe entry named, and is no link target opened (a FIFO would hang)?"""
    outside = tmp_path / "outside"
    outside.mkdir()
    pipe = _fifo(outside / "pipe")
    (outside / "shadow").write_text("secret")
    folder = tmp_path / "sub"
    (folder / "pkg").mkdir(parents=True)
    (folder / "adv.ipynb").symlink_to(pipe)
    (folder / "pkg" / "data.txt").symlink_to(outside / "shadow")
    (folder / "linked_dir").symlink_to(outside, target_is_directory=True)
    _fifo(folder / "fifo")
    os.link(outside / "shadow", folder / "hard.txt")
    (folder / "fine.txt").write_text("ok")
    problems = unsafe_entries(folder)
    assert problems == [
        "adv.ipynb is a symbolic link: refused, nothing of it was read",
        "fifo is a special file (a FIFO): refused, nothing of it was read",
        "hard.txt is a hard link (2 names for one file, some outside the submission): refused, "
        "nothing of it was read",
        "linked_dir is a symbolic link: refused, nothing of it was read",
        "pkg/data.txt is a symbolic link: refused, nothing of it was read",
    ]
    intake = read_submission(folder, ["adv"])
    assert intake.refused == problems and not intake.notebooks
    assert intake.problems["adv"].startswith("submission refused: adv.ipynb is a symbolic link")


def test_only_declared_regular_files_reach_the_kernel_folder(tmp_path: Path) -> None:
    """Does a learner's numpy.py, sitecustomize.py, .pth, .so or package stay out?"""
    release = tmp_path / "release"
    (release / "data").mkdir(parents=True)
    (release / "data.txt").write_text("1 2 3")
    (release / "data" / "table.csv").write_text("a,b")
    (release / "helpers.py").write_text("X = 1")
    (release / "adv.ipynb").write_text("{}")
    assert declared_files(release) == {"data.txt", "data/table.csv", "helpers.py"}
    folder = tmp_path / "sub"
    (folder / "torch").mkdir(parents=True)
    (folder / "data").mkdir()
    for name in ("numpy.py", "sitecustomize.py", "evil.pth", "fast.so", "torch/__init__.py"):
        (folder / name).write_text("raise SystemExit")
    (folder / "data.txt").write_text("4 5 6")
    (folder / "data" / "table.csv").symlink_to(tmp_path / "release" / "data.txt")
    (folder / "helpers.py").write_text("X = 2")
    (folder / "timestamp.txt").write_text("2026")
    target = tmp_path / "scratch"
    left_out = copy_declared(folder, declared_files(release), target)
    copied = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert copied == ["data.txt", "helpers.py"]
    assert (target / "data.txt").read_text() == "4 5 6"
    assert left_out == [
        "data/table.csv",  # declared, but a link: never followed
        "evil.pth",
        "fast.so",
        "numpy.py",
        "sitecustomize.py",
        "torch/__init__.py",
    ]


def _grow(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)
    return len(block)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_the_confined_child_stops_at_its_memory_and_time_limits() -> None:
    """Does a child past its memory or time limit become a sentence, the parent unharmed?"""
    assert run_confined(_grow, 10, seconds=20, memory_mb=200, what="small") == 10 * 2**20
    with pytest.raises(ConfinedError, match="memory limit"):
        run_confined(_grow, 400, seconds=20, memory_mb=200, what="big")
    started = time.monotonic()
    with pytest.raises(ConfinedError, match="slow ran past its 1 s limit"):
        run_confined(_sleep, 30, seconds=1, memory_mb=200, what="slow")
    assert time.monotonic() - started < 10


def _many_cells(count: int) -> bytes:
    nb = nbformat.v4.new_notebook()
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i:07d}", "metadata": {}}
        | {"outputs": [], "source": []}
        for i in range(count)
    ]
    return json.dumps({**nb, "cells": cells}).encode()


@pytest.fixture
def course(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_course(tmp_path)


def test_prepare_refuses_links_and_floods_and_keeps_the_batch_going(course, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Is a linked notebook refused without reading the source, 300,000 cells refused fast?"""
    specs = assignment_specs(course, ASSIGNMENT)
    source = course.folder("source", ".", ASSIGNMENT) / f"{ASSIGNMENT}.ipynb"
    folder = submit(course, "lnk", honest(course))
    (folder / f"{ASSIGNMENT}.ipynb").unlink()
    (folder / f"{ASSIGNMENT}.ipynb").symlink_to(source)
    extra = submit(course, "ada", honest(course))
    (extra / "numpy.py").write_text("raise SystemExit('shadowed')")
    flood = _many_cells(300_000)
    assert len(flood) > 30 * 2**20
    submit(course, "big", raw=flood)
    workroot = tmp_path / "work"

    linked = prepare(course, ASSIGNMENT, "lnk", specs, workroot)
    assert not linked.notebooks
    assert f"{ASSIGNMENT}.ipynb is a symbolic link" in linked.problems[ASSIGNMENT]
    assert "BEGIN HIDDEN" not in (workroot / "lnk" / "job.json").read_text()

    fine = prepare(course, ASSIGNMENT, "ada", specs, workroot)
    assert list(fine.notebooks) == [ASSIGNMENT] and not fine.problems
    assert sorted(p.name for p in fine.files.iterdir()) == ["data.txt"], "numpy.py stayed out"
    assert "numpy.py" in " ".join(fine.repairs)

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.monotonic()
    big = prepare(course, ASSIGNMENT, "big", specs, workroot)
    seconds = time.monotonic() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert f"300,000 cells, over the limit of {MAX_CELLS:,}" in big.problems[ASSIGNMENT]
    assert seconds < INTAKE_SECONDS, seconds  # about a second unloaded; the limit under load
    assert grown_mib < 64, f"the grader's peak memory grew {grown_mib:.0f} MiB"


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (CI installs it)")
def test_stock_nbgrader_refuses_a_linked_submission_before_copying_it(course, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Does stock `nbgrader autograde` skip the linked submission, copying nothing of it?"""
    source = course.folder("source", ".", ASSIGNMENT)
    submit(course, "ada", honest(course))
    folder = submit(course, "lnk", release_notebook(course))
    (folder / "data.txt").symlink_to(source / f"{ASSIGNMENT}.ipynb")
    (folder / "gradebook.db").symlink_to(tmp_path / "gradebook.db")
    shadow = submit(course, "shd", honest(course))
    (shadow / "numpy.py").write_text("raise SystemExit('shadowed')")
    (tmp_path / "nbgrader_config.py").write_text(
        "from aifkit.grading.config import configure\n"
        "from aifkit.grading.stock_intake import exclude_unsafe_submissions\n"
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'advcourse'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{tmp_path / 'gradebook.db'}'\n"
        "configure(c)\n"
        "exclude_unsafe_submissions(c)\n",
        encoding="utf-8",
    )
    done = stock_autograde(tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "[aifkit] submission of lnk refused, not graded: adv: data.txt is a symbolic link"
        in done.stderr
    )
    assert not course.folder("autograded", "lnk", ASSIGNMENT).exists(), "nothing was copied"
    assert gradebook_scores(course) == {"ada": AUTOGRADED_POINTS, "shd": AUTOGRADED_POINTS}


def test_the_stock_path_parses_each_notebook_in_the_confined_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nbgrader only reads notebooks shown to parse within the limits, in a child."""
    from aifkit.grading import stock_intake

    folder = tmp_path / "submitted" / "ann" / "adv"
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 'a'\n" * 2000) for _ in range(50)]  # ~0.8 MB
    nbformat.write(nb, str(folder / "adv.ipynb"))
    assert stock_intake.unsafe_submissions(tmp_path / "submitted") == {}
    monkeypatch.setattr(stock_intake, "INTAKE_SECONDS", 0.001)  # a parse that cannot finish
    refused = stock_intake.unsafe_submissions(tmp_path / "submitted")
    assert list(refused) == ["ann"]
    assert "reading adv's notebooks ran past its 0.001 s limit" in refused["ann"][0]
