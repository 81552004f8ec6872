"""Progress of a long validation: a bar with ETA on a terminal, one line per notebook elsewhere."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from tqdm import tqdm

from aifkit.notebooks.validate import Outcome


class Progress:
    """Receives ``start(total)`` and ``update(outcome)`` callbacks from ``validate``.

    Subclasses report other work (graded submissions) by overriding ``unit`` and ``describe``.
    """

    unit = "nb"

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: tqdm[Any] | None = None

    def start(self, total: int) -> None:
        if self.stream.isatty():
            self.bar = tqdm(total=total, unit=self.unit, file=self.stream, dynamic_ncols=True)

    def describe(self, item: Any) -> tuple[str, str]:
        """The line printed for one finished item, and the bar's short postfix."""
        outcome: Outcome = item
        line = f"{outcome.status.upper():7} {outcome.seconds:6.1f} s  {outcome.notebook}"
        return line, outcome.notebook.rsplit("/", 1)[-1]

    def update(self, item: Any) -> None:
        line, postfix = self.describe(item)
        if self.bar is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.write(line, file=self.stream)
            self.bar.update(1)
        else:
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()
