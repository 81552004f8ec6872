"""What validation remembers between runs: recent durations and the fingerprint of the last pass.

Durations order the work longest first and expose suspiciously fast "passes"; fingerprints let
``--cached`` skip notebooks whose inputs have not changed since they last passed. The state is
one JSON file, written atomically, keyed by notebook path and tier.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KEEP_DURATIONS = 5


@dataclass
class Record:
    """Memory of one notebook at one tier."""

    durations: list[float] = field(default_factory=list)
    passed_fingerprint: str = ""

    @property
    def minimum(self) -> float | None:
        """Fastest recent passing run, if any."""
        return min(self.durations) if self.durations else None

    @property
    def estimate(self) -> float | None:
        """Expected duration of the next run (the latest one)."""
        return self.durations[-1] if self.durations else None


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
        """Read the state; a missing or corrupt file starts empty (it is only a cache)."""
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            records = {key: Record(**value) for key, value in raw.get("records", {}).items()}
        except (OSError, ValueError, TypeError):
            records = {}
        return cls(path, records)

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
        data = {"records": {key: asdict(record) for key, record in sorted(self.records.items())}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, self.path)
