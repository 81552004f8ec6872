"""Progress of a long autograde: a bar with ETA on a terminal, one line per student elsewhere."""

from __future__ import annotations

from typing import Any

from aifkit.grading.records import SubmissionResult
from aifkit.notebooks.progress import Progress


class GradingProgress(Progress):
    """Receives ``start(total)`` and ``update(result)`` callbacks from autograde."""

    unit = "sub"

    def describe(self, item: Any) -> tuple[str, str]:
        result: SubmissionResult = item
        line = (
            f"{result.status.upper():11} {result.score:g}/{result.max_score:g}"
            f"  {result.seconds:5.1f} s  {result.student}"
        )
        return line, result.student
