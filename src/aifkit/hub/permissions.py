"""Owners and modes of what an isolated local hub keeps: private to the hub and the instructors.

- the state folder: 0711 (learners pass through it to their homes and the exchange, never list
  it); everything else in it (secrets, database, log, proxy) loses every group/other bit;
  ``home/`` is 0711 and each home 0700, its account's own.
- a course: its folder in group ``<prefix><course>-instructors``, mode 2770, when it holds only the
  course; when it also holds the software the servers run (the repository itself, as
  ``make hub`` serves it), its nbgrader and aifkit grading folders, gradebook and ``.git`` instead.
- the exchange: nbgrader's modes, tightened. The root 1777 (nbgrader insists on 0777; the sticky
  bit stops a learner from renaming a course's folder away), ``<course>/`` and ``outbound/`` 0755,
  ``inbound/`` 3733 owned by the course's instructors group (learners create, cannot list, rename
  or delete others' submissions; the group passes to each submission). Each submission is made
  0750/0640 by its own learner's server at submit (``aifkit.hub.submission``).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aifkit

TRAVERSE_ONLY = 0o711
PRIVATE_DIR = 0o2770  # the hub (root) and the course's instructors; new files keep the group
PRIVATE_FILE = 0o660
EXCHANGE_ROOT = 0o1777
INBOUND = 0o3733
SUBMISSION_DIR = 0o750
SUBMISSION_FILE = 0o640
PUBLIC_STATE = ("home", "exchange")  # entries of the state folder servers must reach


def protect_state(state: Path, sqlite_db: Path | None) -> None:
    """State 0711, homes folder 0711, everything else in it private to the hub."""
    state.mkdir(parents=True, exist_ok=True)
    if sqlite_db is not None and not sqlite_db.exists():  # JupyterHub would make it 0644
        sqlite_db.touch(mode=0o600)
    _own(state, 0, 0, TRAVERSE_ONLY)
    for entry in state.iterdir():
        if entry.name in PUBLIC_STATE:
            continue
        mode = entry.lstat().st_mode
        if not stat.S_ISLNK(mode):
            entry.chmod(stat.S_IMODE(mode) & ~0o077)
    home = state / "home"
    home.mkdir(exist_ok=True)
    _own(home, 0, 0, TRAVERSE_ONLY)


def holds_software(root: Path) -> bool:
    """Does ``root`` hold the Python or the aifkit that the servers run (a repository)?"""
    root = root.resolve()
    needed = (Path(sys.prefix), Path(sys.executable), Path(aifkit.__file__).parent)
    return any(path.resolve().is_relative_to(root) for path in needed)


def course_private_paths(coursedir: Any) -> list[Path]:
    """What learners must not reach in a course: the whole folder, else its private parts.

    The private folders nbgrader makes later (``submitted``, ``autograded``...) are made here
    first: the formgrader would make them with its umask, readable by everyone.
    """
    from aifkit.grading.autograde import WORK_DIRECTORY
    from aifkit.grading.records import RESULTS_DIRECTORY

    root = Path(coursedir.root)
    if not holds_software(root):
        return [root]
    folders = (
        coursedir.source_directory,
        coursedir.release_directory,
        coursedir.submitted_directory,
        coursedir.autograded_directory,
        coursedir.feedback_directory,
        RESULTS_DIRECTORY,  # aifkit's grading records and job folders
        WORK_DIRECTORY,
    )
    for name in folders:  # made now: the formgrader would make them readable by everyone
        (root / name).mkdir(exist_ok=True)
    paths = [root / name for name in folders] + [root / ".git"]
    gradebook = gradebook_file(str(coursedir.db_url))
    if gradebook is not None:
        paths.append(gradebook)
    return [path for path in paths if path.exists()]


def gradebook_file(db_url: str) -> Path | None:
    """The file of an SQLite gradebook (``sqlite:///path``), None for a database server."""
    prefix = "sqlite:///"
    return Path(db_url[len(prefix) :]) if db_url.startswith(prefix) else None


def protect_course(paths: Iterable[Path], gid: int) -> None:
    """Each path in the instructors' group: folders 2770, files 0660 (the top of each only).

    The owner stays: a course author's own checkout (its ``.git``) remains theirs.
    """
    for path in paths:
        _own(path, -1, gid, PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)


def protect_exchange(exchange: Path, course_id: str, gid: int) -> None:
    """nbgrader's exchange modes with sticky bits and the instructors' group on inbound."""
    exchange.mkdir(parents=True, exist_ok=True)
    _own(exchange, 0, 0, EXCHANGE_ROOT)
    course = exchange / course_id
    inbound = course / "inbound"
    for folder in (course, course / "outbound", inbound):
        folder.mkdir(exist_ok=True)
    _own(course, 0, 0, 0o755)
    _own(course / "outbound", 0, 0, 0o755)
    _own(inbound, 0, gid, INBOUND)


def make_submission_private(submission: Path) -> None:
    """Run by the submitting learner: their submission 0750/0640 (the group: the instructors').

    Never run with privileges: a learner controls what is inside a submission.
    """
    for folder, _, files in os.walk(submission):
        for name in files:
            _own(Path(folder) / name, -1, -1, SUBMISSION_FILE)
        _own(Path(folder), -1, -1, SUBMISSION_DIR)


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    """chown (-1 keeps) and chmod ``path`` itself; a symbolic link is refused, never followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise PermissionError(f"{path}: cannot set its owner and mode: {error}") from None
    try:
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
