"""The course's late policy: one rule per assignment, applied by nbgrader's late-penalty step.

Due dates and extensions are nbgrader's own: the gradebook's due date per assignment and a
learner's extension (``aifkit grade due``, ``aifkit grade extend``, or the formgrader). nbgrader
counts how late a submission is (its ``timestamp.txt`` against due date + extension) and asks a
``LateSubmissionPlugin`` for the penalty of each notebook. ``configure`` makes ``LatePolicy`` that
plugin, and both grading paths run nbgrader's ``AssignLatePenalties`` step, so a submission gets
the same penalty whichever path graded it; feedback and export show it.

Rules, in the course's nbgrader_config.py (``"*"``: every assignment without a rule of its own)::

    c.LatePolicy.rules = {
        "*": {"penalty": "none"},
        "a01-welcome": {"penalty": "percent-per-day", "percent": 10, "cap": 50, "grace_minutes": 15},
        "e05-llm-at-scale": {"penalty": "zero"},
    }

- ``none``: no penalty (the default when no rule applies).
- ``percent-per-day``: ``percent`` of the notebook's score for each day or part of a day late, at
  most ``cap`` percent (default 100).
- ``zero``: a late notebook scores 0.

``grace_minutes`` (default 0): a submission at most this late counts as on time; a later one is
late from the due date, not from the end of the grace.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Dict

from aifkit.errors import AifkitError

if TYPE_CHECKING:
    from aifkit.grading.course import Course

Penalty = Literal["none", "percent-per-day", "zero"]
PENALTIES: tuple[Penalty, ...] = ("none", "percent-per-day", "zero")
DAY_S = 86_400
ANY = "*"


class LatePolicyError(AifkitError):
    """A late rule in the course configuration that cannot be applied, named with its key."""


@dataclass(frozen=True)
class LateRule:
    """How one assignment's late notebooks lose points."""

    penalty: Penalty = "none"
    percent: float = 0.0  # per day or part of a day (percent-per-day)
    cap: float = 100.0  # at most this percent of the score (percent-per-day)
    grace_minutes: float = 0.0

    def penalty_points(self, score: float, seconds_late: float) -> float:
        """Points taken from a notebook that scored ``score`` and came ``seconds_late`` late."""
        if seconds_late <= self.grace_minutes * 60 or score <= 0 or self.penalty == "none":
            return 0.0
        if self.penalty == "zero":
            return score
        days = math.ceil(seconds_late / DAY_S)
        return score * min(self.cap, self.percent * days) / 100

    def describe(self) -> str:
        grace = f", {self.grace_minutes:g} min grace" if self.grace_minutes else ""
        if self.penalty == "percent-per-day":
            return f"{self.percent:g}% per day late, at most {self.cap:g}%{grace}"
        if self.penalty == "zero":
            return f"0 points when late{grace}"
        return "no late penalty"


def parse_rules(rules: Mapping[str, Any]) -> dict[str, LateRule]:
    """The rules by assignment (``"*"`` for the rest); ``LatePolicyError`` names a bad entry."""
    parsed = {}
    for assignment, rule in rules.items():
        where = f"c.LatePolicy.rules[{assignment!r}]"
        if not isinstance(rule, Mapping):
            raise LatePolicyError(f"{where} must be a dict such as {{'penalty': 'zero'}}")
        unknown = set(rule) - {"penalty", "percent", "cap", "grace_minutes"}
        if unknown:
            raise LatePolicyError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        penalty = rule.get("penalty", "none")
        if penalty not in PENALTIES:
            raise LatePolicyError(
                f"{where}['penalty'] is {penalty!r}: one of {', '.join(PENALTIES)}"
            )
        numbers = {}
        for key, default, top in (
            ("percent", 0.0, 100.0),
            ("cap", 100.0, 100.0),
            ("grace_minutes", 0.0, math.inf),
        ):
            value = rule.get(key, default)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= top
            ):
                raise LatePolicyError(f"{where}[{key!r}] is {value!r}: a number from 0 to {top:g}")
            numbers[key] = float(value)
        if penalty == "percent-per-day" and numbers["percent"] <= 0:
            raise LatePolicyError(f"{where} has penalty 'percent-per-day' but no 'percent' above 0")
        parsed[assignment] = LateRule(penalty, **numbers)
    return parsed


def rule_for(rules: Mapping[str, LateRule], assignment: str) -> LateRule:
    """The assignment's own rule, else the ``"*"`` rule, else no penalty."""
    return rules.get(assignment) or rules.get(ANY) or LateRule()


class LatePolicy(LateSubmissionPlugin):  # type: ignore[misc]
    """nbgrader's late-submission plugin, reading the course's ``c.LatePolicy.rules``."""

    rules = Dict(help="Late rule per assignment ('*' for the rest): see aifkit.grading.late.").tag(
        config=True
    )

    def late_submission_penalty(
        self, student_id: str, score: float, total_seconds_late: float
    ) -> float | None:
        # AssignLatePenalties (the parent) sets the assignment it grades before asking.
        assignment = str(getattr(self.parent, "assignment_id", ""))
        rule = rule_for(parse_rules(self.rules), assignment)
        points = rule.penalty_points(score or 0.0, total_seconds_late)
        self.log.info(
            "%s/%s is %.0f s late: %s, penalty %g",
            student_id,
            assignment,
            total_seconds_late,
            rule.describe(),
            points,
        )
        return points or None


def set_due(course: Course, assignment: str, when: str) -> datetime.datetime:
    """Store ``assignment``'s due date in the gradebook (UTC); ``when`` must name its timezone."""
    from nbgrader.utils import parse_utc

    try:
        named = _names_a_timezone(when)
    except (ValueError, OverflowError) as error:
        raise LatePolicyError(f"due date {when!r} is not a date and time: {error}") from None
    if not named:
        raise LatePolicyError(
            f"due date {when!r} has no timezone: add one (CET, +01:00 or UTC) so that it means "
            "the same on every machine"
        )
    due: datetime.datetime = parse_utc(when)
    with course.gradebook() as gb:
        gb.update_or_create_assignment(assignment, duedate=due)
    return due


def _names_a_timezone(when: str) -> bool:
    """Does ``when`` name a timezone nbgrader's ``parse_utc`` understands ("... CET", "+01:00")?
    An unknown name would silently mean UTC there."""
    import dateutil.parser
    import dateutil.tz

    parts = when.split(" ")
    if len(parts) == 3:  # nbgrader's "date time zone" form
        dateutil.parser.parse(" ".join(parts[:2]))
        return parts[2].lstrip("+-").isdigit() or dateutil.tz.gettz(parts[2]) is not None
    return dateutil.parser.parse(when).tzinfo is not None


def grant_extension(course: Course, assignment: str, student: str, hours: float) -> None:
    """Give ``student`` ``hours`` more for ``assignment`` (0 removes it): after collect, before
    autograde (or autograde again). A collected submission is recorded in the gradebook first."""
    from aifkit.grading.commit import record_submission

    if not course.folder("submitted", student, assignment).is_dir():
        raise LatePolicyError(
            f"{student} has no collected submission of {assignment}: collect first, then extend"
        )
    with course.gradebook() as gb:
        record_submission(course, gb, assignment, student)
        gb.grant_extension(assignment, student, minutes=round(hours * 60))
