"""Progress of a long autograde: a bar with ETA on a terminal, one line per student elsewhere."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from tqdm import tqdm

from aifkit.grading.records import SubmissionResult


class GradingProgress:
    """Receives ``start(total)`` and ``update(result)`` callbacks from autograde."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: tqdm[Any] | None = None

    def start(self, total: int) -> None:
        if self.stream.isatty():
            self.bar = tqdm(total=total, unit="sub", file=self.stream, dynamic_ncols=True)

    def update(self, result: SubmissionResult) -> None:
        line = (
            f"{result.status.upper():11} {result.score:g}/{result.max_score:g}"
            f"  {result.seconds:5.1f} s  {result.student}"
        )
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
            self.bar.update(1)
        else:
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> GradingProgress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()
