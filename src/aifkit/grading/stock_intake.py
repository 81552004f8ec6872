"""Intake that trusts nothing for stock ``nbgrader autograde``: refuse before nbgrader copies.

nbgrader's converter copies a submission's files (``shutil.copy``, which follows symbolic
links) in ``init_assignment`` and reads its notebooks right after. The only hook that runs
earlier, ``BaseConverter.pre_convert_hook``, has its exceptions swallowed and cannot stop the
copy, and no hook receives the converter. What nbgrader does check before copying is
``CourseDirectory.student_id_exclude`` (``init_destination``), so the course configuration
checks every submission when it is loaded, with ``lstat`` and bounded reads only, and excludes
the students whose submission is unsafe (links, special files, hard links) or past the intake
limits, naming each file on stderr. Each notebook is then parsed as nbgrader will parse it, but
in a confined child (``confined.run_confined``, the intake's seconds and memory): nbgrader only
ever reads notebooks that were shown to parse within those limits. The rest of the batch is
graded as usual.

Loaded once per process: a long-lived process (formgrader) sees submissions as they were when
it started, and an explicit ``--CourseDirectory.student_id_exclude`` on the command line
replaces the list built here.
"""

from __future__ import annotations

import contextlib
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aifkit.grading.confined import ConfinedError, run_confined
from aifkit.grading.intake import INTAKE_MEMORY_MB, INTAKE_SECONDS, notebook_problems
from aifkit.grading.submission_files import unsafe_entries


def unsafe_submissions(submitted: Path) -> dict[str, list[str]]:
    """Student -> sentences, for every ``submitted/<student>/<assignment>/`` not to be read."""
    refused: dict[str, list[str]] = {}
    if not submitted.is_dir():
        return refused
    for student in sorted(submitted.iterdir()):
        if stat.S_ISLNK(student.lstat().st_mode):
            refused[student.name] = [f"{student.name}/ is a symbolic link"]
            continue
        if not student.is_dir():
            continue
        for assignment in sorted(student.iterdir()):
            problems = unsafe_entries(assignment)
            if not problems and assignment.is_dir():
                problems = notebook_problems(assignment) or _parse_confined(assignment)
            if problems:
                refused.setdefault(student.name, []).extend(
                    f"{assignment.name}: {problem}" for problem in problems
                )
    return refused


def _parse_all(folder: Path) -> None:
    """Parse and validate every notebook in ``folder`` as nbgrader will (in the confined child)."""
    import nbformat

    for path in sorted(folder.glob("*.ipynb")):
        try:
            nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
        except Exception:
            continue


def _parse_confined(folder: Path) -> list[str]:
    """[] when every notebook parses within the intake limits, else the sentence why not."""
    try:
        run_confined(
            _parse_all,
            folder,
            seconds=INTAKE_SECONDS,
            memory_mb=INTAKE_MEMORY_MB,
            what=f"reading {folder.name}'s notebooks",
            preload=("nbformat",),
        )
    except ConfinedError as error:
        return [str(error)]
    return []


_AIFKIT_LOADING = [False]  # True while aifkit's own course loader reads the configuration


@contextlib.contextmanager
def aifkit_loading() -> Iterator[None]:
    """While aifkit loads a course's configuration: its own intake reads every submission
    (``prepare.py``), so the stock path's check is not run again on each command."""
    _AIFKIT_LOADING[0] = True
    try:
        yield
    finally:
        _AIFKIT_LOADING[0] = False


def exclude_unsafe_submissions(c: Any) -> dict[str, list[str]]:
    """Add every student with an unsafe submission to ``c``'s ``student_id_exclude``.

    Returns what was refused (student -> sentences) and writes one line per file to stderr.
    Does nothing while aifkit loads the configuration (``aifkit_loading``).
    """
    from nbgrader.coursedir import CourseDirectory

    if _AIFKIT_LOADING[0]:
        return {}

    coursedir = CourseDirectory(config=c)
    submitted = Path(coursedir.root) / coursedir.submitted_directory
    refused = unsafe_submissions(submitted)
    if not refused:
        return refused
    for student, problems in refused.items():
        for problem in problems:
            print(
                f"[aifkit] submission of {student} refused, not graded: {problem}",
                file=sys.stderr,
            )
    excluded = {s for s in str(coursedir.student_id_exclude).split(",") if s}
    c.CourseDirectory.student_id_exclude = ",".join(sorted(excluded | set(refused)))
    return refused
