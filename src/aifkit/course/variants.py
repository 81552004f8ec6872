"""Per-learner variants: each learner's own numbers, sizes, data seed or form of a question.

A notebook declares its variant parameters with a :class:`Variant` of its assignment::

    from aifkit.course import variants
    V = variants.Variant("a03-slurm")
    GPUS = V.integer("gpus", 16, 64)

Each value derives from the course, the assignment, the learner and the parameter's name through
SHA-256, so it is the same on every machine and Python version. In JupyterLab the learner is the
hub user (``JUPYTERHUB_USER``) and the course the one the hub sets (``AIFKIT_COURSE_ID``), so each
learner sees their own variant. The grader runs the notebook with the nbgrader student id as the
learner (``AIFKIT_LEARNER``) and, before it signs a test cell, binds the student id and the
course id into every ``Variant(...)`` and ``current_learner()`` call of the test's text: learner
code that changes its own environment changes the numbers it answers, never the numbers the test
checks them against. A correct answer to another learner's variant scores nothing.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = ["COURSE_ENV", "LEARNER_ENV", "Variant", "current_course", "current_learner"]

LEARNER_ENV = "AIFKIT_LEARNER"  # set by the grader: the nbgrader student id
HUB_USER_ENV = "JUPYTERHUB_USER"  # set by JupyterHub in a learner's server
COURSE_ENV = "AIFKIT_COURSE_ID"  # set by the hub configuration and by the grader
COURSES_ENV = "AIFKIT_COURSES"  # the learner's courses, set by the hub
T = TypeVar("T")


def current_learner() -> str:
    """Who runs this notebook: the grader's student id, else the hub user, else the OS user."""
    return os.environ.get(LEARNER_ENV) or os.environ.get(HUB_USER_ENV) or getpass.getuser()


def current_course(assignment: str = "") -> str:
    """The course this notebook runs in ("" outside a hub or a grader).

    A learner of several courses on one hub has no single ``AIFKIT_COURSE_ID``; nbgrader files
    their assignments under ``<course>/<assignment>``, so the course is the folder above the
    notebook's when it is one of theirs (``AIFKIT_COURSES``).
    """
    named = os.environ.get(COURSE_ENV, "")
    if named or not assignment:
        return named
    mine = [c for c in os.environ.get(COURSES_ENV, "").split(",") if c]
    here = Path.cwd()
    return here.parent.name if here.name == assignment and here.parent.name in mine else ""


@dataclass(frozen=True)
class Variant:
    """One learner's variant of one assignment; every value is a pure function of its name."""

    assignment: str
    learner: str = field(default_factory=current_learner)
    course: str | None = None  # None: the course this notebook runs in (current_course)

    def __post_init__(self) -> None:
        if self.course is None:
            object.__setattr__(self, "course", current_course(self.assignment))

    def _number(self, name: str) -> int:
        """A 64-bit number from the course, assignment, learner and the parameter's name."""
        text = "\x00".join((self.course or "", self.assignment, self.learner, name))
        return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")

    def seed(self, name: str) -> int:
        """A data seed (0 .. 2**32 - 1) for ``numpy.random.default_rng`` or a generator."""
        return self._number(name) % 2**32

    def integer(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        """An integer in ``low .. high`` (both included) on a grid of ``step``."""
        if step < 1 or high < low:
            raise ValueError(f"{name}: need low <= high and step >= 1, got {low}, {high}, {step}")
        return low + step * (self._number(name) % ((high - low) // step + 1))

    def uniform(self, name: str, low: float, high: float, *, digits: int = 2) -> float:
        """A number in ``[low, high]`` rounded to ``digits`` decimals (easy to read and type)."""
        if high < low:
            raise ValueError(f"{name}: need low <= high, got {low}, {high}")
        return round(low + (high - low) * (self._number(name) / 2**64), digits)

    def choice(self, name: str, options: Sequence[T]) -> T:
        """One of ``options`` (for example one of several forms of a question)."""
        if not options:
            raise ValueError(f"{name}: no options to choose from")
        return options[self._number(name) % len(options)]
