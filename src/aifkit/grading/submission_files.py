"""Which files of a submission may be read, and which may reach the learner's kernel.

Everything in a submitted folder is looked at with ``lstat`` only, before anything is read or
copied: a symbolic link (to the instructor's source notebook, the gradebook, ``/etc/shadow``),
a special file (FIFO, device, socket) or a regular file with other hard links (one name of a
file that lives elsewhere too) makes the whole submission refused, with a message naming the
file. Nothing a link points to is ever opened.

Only the files the assignment declares reach the kernel: the release's own files besides its
notebooks (nbgrader's "assignment files"). Anything else a learner adds stays out, so a
``numpy.py``, ``sitecustomize.py``, ``torch/`` package, ``.pth`` or ``.so`` file can never sit
first on the kernel's import path.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

HIDDEN = "."  # hidden names (.ipynb_checkpoints, .git) are never declared nor copied
NBGRADER_OWN = frozenset({"timestamp.txt"})  # written by nbgrader submit: not worth a mention


def unsafe_entries(folder: Path) -> list[str]:
    """A sentence for every entry under ``folder`` that must not be read; [] when all is safe.

    Walks with ``lstat`` (``os.scandir`` without following links), so a link's target is never
    opened, listed or stat'ed.
    """
    try:
        top = folder.lstat()
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(top.st_mode):
        return [f"{folder.name}/ is a symbolic link: the submission folder itself is refused"]
    problems: list[str] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        with os.scandir(current) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                relative = Path(entry.path).relative_to(folder).as_posix()
                info = entry.stat(follow_symlinks=False)
                problem = _problem(info)
                if problem is not None:
                    problems.append(f"{relative} is {problem}: refused, nothing of it was read")
                elif stat.S_ISDIR(info.st_mode):
                    pending.append(Path(entry.path))
    return sorted(problems)


def _problem(info: os.stat_result) -> str | None:
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return None
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else None
        return f"a special file ({kind or 'a device'})"
    if info.st_nlink > 1:
        return f"a hard link ({info.st_nlink} names for one file, some outside the submission)"
    return None


def declared_files(release: Path) -> set[str]:
    """Relative paths of the assignment's own files: the release's regular files, no notebooks."""
    declared: set[str] = set()
    if not release.is_dir():
        return declared
    for dirpath, dirnames, filenames in os.walk(release):  # does not follow links
        dirnames[:] = [d for d in dirnames if not d.startswith(HIDDEN)]
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(HIDDEN) or name.endswith(".ipynb"):
                continue
            if stat.S_ISREG(path.lstat().st_mode):
                declared.add(path.relative_to(release).as_posix())
    return declared


def copy_declared(folder: Path, declared: set[str], target: Path) -> list[str]:
    """Copy the declared files present in ``folder`` into ``target``; the names left out.

    A file is copied only when it is a plain regular file; it is opened with ``O_NOFOLLOW`` so
    a link swapped in after the check is refused by the kernel instead of followed. Every other
    file in ``folder`` is left out and named in the result.
    """
    target.mkdir(parents=True, exist_ok=True)
    left_out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):  # does not follow links
        dirnames[:] = [d for d in dirnames if not d.startswith(HIDDEN)]
        for name in sorted(filenames) + sorted(d for d in dirnames if _is_link(dirpath, d)):
            relative = (Path(dirpath) / name).relative_to(folder).as_posix()
            if relative in declared and _copy_plain(Path(dirpath) / name, target / relative):
                continue
            if not (name.endswith(".ipynb") or name.startswith(HIDDEN) or relative in NBGRADER_OWN):
                left_out.append(relative)
    return sorted(left_out)


def _is_link(dirpath: str, name: str) -> bool:
    return (Path(dirpath) / name).is_symlink()


def _copy_plain(source: Path, destination: Path) -> bool:
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            return False
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open(destination, "wb") as out:
            shutil.copyfileobj(handle, out)
    return True
