"""What one autograde run learned about one submission, as plain data saved beside the gradebook.

The grader writes one JSON record per student and assignment under
``<course root>/grading-results/<assignment>/<student>.json``. Reports, exports and retries read
these records; only the grader process writes the gradebook itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from aifkit.grading.course import GradingError
from aifkit.models import MutableModel, load_json, validate

TestStatus = Literal["passed", "partial", "failed", "not-run", "flagged"]
SubmissionStatus = Literal["graded", "flagged", "timeout", "kernel-died", "error"]

RESULTS_DIRECTORY = "grading-results"
_TOTALS = ("score", "max_score")  # written for readers of the file, derived from the tests


class TestResult(MutableModel):
    """The autograded score of one graded test cell and why it got it."""

    notebook: str
    grade_id: str
    max_score: float
    score: float
    status: TestStatus
    detail: str = ""


class AnswerResult(MutableModel):
    """A manually graded answer cell: zero when unanswered or when its code raised, else a human's."""

    notebook: str
    grade_id: str
    max_score: float
    auto_score: float | None = None  # None: left to a human grader
    detail: str = ""


class Suspicion(MutableModel):
    """A suspicious construct in a learner's code, for a human to review."""

    notebook: str
    cell: str  # grade_id of the cell, or "cell <index>" for an ungraded one
    line: int
    # what was found, e.g. "sys.exit"; read as "construct" from records written before 0.2
    # (pydantic's BaseModel.construct takes that name)
    pattern: str = Field(validation_alias=AliasChoices("pattern", "construct"))
    reason: str


class SubmissionResult(MutableModel):
    """One student's submission of one assignment, after autograding (or failing to)."""

    assignment: str
    student: str
    status: SubmissionStatus
    message: str = ""
    seconds: float = 0.0
    tests: list[TestResult] = Field(default_factory=list)
    findings: list[Suspicion] = Field(default_factory=list)
    answers: list[AnswerResult] = Field(default_factory=list)
    repairs: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _drop_totals(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in _TOTALS}
        return data

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests)

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["score"], data["max_score"] = self.score, self.max_score
        return data

    @classmethod
    def from_json(cls, data: Any, *, source: str | Path = "a grading record") -> SubmissionResult:
        """A record from its JSON data; GradingError naming ``source`` and the bad keys."""
        return validate(cls, data, source=source, error=GradingError)

    @classmethod
    def load(cls, path: Path) -> SubmissionResult:
        """The record saved in ``path``; GradingError naming the file when it is corrupt."""
        rerun = f"autograde it again to rewrite it: aifkit grade autograde {path.parent.name} --student {path.stem}"
        return load_json(cls, path, what="the grading record", error=GradingError, hint=rerun)


def result_path(root: Path, assignment: str, student: str) -> Path:
    return root / RESULTS_DIRECTORY / assignment / f"{student}.json"


def save(root: Path, result: SubmissionResult) -> Path:
    """Write a record atomically (temp file + rename): a crash never leaves half a record."""
    path = result_path(root, result.assignment, result.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump(result.to_json(), stream, indent=1)
    os.replace(tmp, path)
    return path


def load_all(root: Path, assignment: str) -> list[SubmissionResult]:
    """Every saved record of an assignment, sorted by student."""
    folder = root / RESULTS_DIRECTORY / assignment
    return [SubmissionResult.load(p) for p in sorted(folder.glob("*.json"))]
