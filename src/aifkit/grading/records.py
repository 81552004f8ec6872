"""What one autograde run learned about one submission, as plain data saved beside the gradebook.

The grader writes one JSON record per student and assignment under
``<course root>/grading-results/<assignment>/<student>.json``. Reports, exports and retries read
these records; only the grader process writes the gradebook itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

TestStatus = Literal["passed", "partial", "failed", "not-run", "flagged"]
SubmissionStatus = Literal["graded", "flagged", "timeout", "kernel-died", "error"]

RESULTS_DIRECTORY = "grading-results"


@dataclass
class TestResult:
    """The autograded score of one graded test cell and why it got it."""

    notebook: str
    grade_id: str
    max_score: float
    score: float
    status: TestStatus
    detail: str = ""


@dataclass
class Finding:
    """A suspicious construct in a learner's code, for a human to review."""

    notebook: str
    cell: str  # grade_id of the cell, or "cell <index>" for an ungraded one
    line: int
    construct: str
    reason: str


@dataclass
class SubmissionResult:
    """One student's submission of one assignment, after autograding (or failing to)."""

    assignment: str
    student: str
    status: SubmissionStatus
    message: str = ""
    seconds: float = 0.0
    tests: list[TestResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["score"], data["max_score"] = self.score, self.max_score
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionResult:
        return cls(
            assignment=data["assignment"],
            student=data["student"],
            status=data["status"],
            message=data.get("message", ""),
            seconds=float(data.get("seconds", 0.0)),
            tests=[TestResult(**t) for t in data.get("tests", [])],
            findings=[Finding(**f) for f in data.get("findings", [])],
            repairs=list(data.get("repairs", [])),
        )


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
    return [
        SubmissionResult.from_json(json.loads(p.read_text(encoding="utf-8")))
        for p in sorted(folder.glob("*.json"))
    ]
