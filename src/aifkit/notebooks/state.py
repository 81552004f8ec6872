"""What validation remembers between runs: recent durations and the fingerprint of the last pass.

Durations order the work longest first and expose suspiciously fast "passes"; fingerprints let
``--cached`` skip notebooks whose inputs have not changed since they last passed. The state is
one JSON file, written atomically, keyed by notebook path and tier. A corrupt file is an error
naming it (deleting it only forgets timings and cached passes), never silently half read.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import Field

from aifkit.errors import NotebookError
from aifkit.models import Model, MutableModel, load_json

KEEP_DURATIONS = 5


class Record(MutableModel):
    """Memory of one notebook at one tier."""

    durations: list[float] = Field(default_factory=list)
    passed_fingerprint: str = ""

    @property
    def minimum(self) -> float | None:
        """Fastest recent passing run, if any."""
        return min(self.durations) if self.durations else None

    @property
    def estimate(self) -> float | None:
        """Expected duration of the next run (the latest one)."""
        return self.durations[-1] if self.durations else None


class StateFile(Model):
    """The state file: ``records``, keyed ``<notebook path>::<tier>``."""

    records: dict[str, Record] = Field(default_factory=dict)


class State:
    """The records of every notebook, loaded from and saved to one JSON file."""

    def __init__(self, path: Path, records: dict[str, Record] | None = None) -> None:
        self.path = path
        self.records = records or {}

    @staticmethod
    def key(notebook: Path, tier: str) -> str:
        return f"{notebook.resolve()}::{tier}"

    @classmethod
    def load(cls, path: Path) -> State:
        """Read the state; a missing file starts empty, a corrupt one is a NotebookError."""
        hint = f"delete {path} to start afresh: it only holds timings and cached passes"
        if not path.exists():
            return cls(path)
        state = load_json(
            StateFile, path, what="the validation state", error=NotebookError, hint=hint
        )
        return cls(path, state.records)

    def get(self, notebook: Path, tier: str) -> Record:
        return self.records.setdefault(self.key(notebook, tier), Record())

    def record_pass(self, notebook: Path, tier: str, seconds: float, fingerprint: str) -> None:
        record = self.get(notebook, tier)
        record.durations = [*record.durations, round(seconds, 3)][-KEEP_DURATIONS:]
        record.passed_fingerprint = fingerprint

    def forget_pass(self, notebook: Path, tier: str) -> None:
        self.get(notebook, tier).passed_fingerprint = ""

    def save(self) -> None:
        """Write atomically: a crash mid-write never leaves a half file behind."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = StateFile(records=dict(sorted(self.records.items()))).model_dump(mode="json")
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, self.path)
