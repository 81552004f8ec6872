"""Mechanical fixes for lint findings: outputs, execution counts, metadata, cell ids.

Unlike a generic output stripper, this keeps the ``nbgrader`` and ``aifkit`` metadata that
grading and validation depend on, and only ever removes what the allow-lists do not name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat.validator import normalize

from aifkit.notebooks import reading


@dataclass(frozen=True)
class StripResult:
    """What stripping changed in one notebook (empty ``changes``: already clean)."""

    path: Path
    changes: tuple[str, ...]


def strip_notebook(nb: Any) -> list[str]:
    """Strip ``nb`` in place; return a description of each change."""
    changes: list[str] = []
    for key in sorted(set(nb.metadata) - reading.NOTEBOOK_METADATA_KEYS):
        del nb.metadata[key]
        changes.append(f"removed notebook metadata {key!r}")
    for index, cell in enumerate(nb.cells):
        for key in sorted(set(cell.metadata) - reading.CELL_METADATA_KEYS):
            del cell.metadata[key]
            changes.append(f"cell {index}: removed metadata {key!r}")
        if cell.cell_type == "code":
            if cell.get("outputs"):
                changes.append(f"cell {index}: removed {len(cell.outputs)} output(s)")
            if cell.get("execution_count") is not None:
                changes.append(f"cell {index}: removed execution count")
            cell.outputs = []
            cell.execution_count = None
        elif "attachments" in cell and not cell.attachments:
            del cell["attachments"]
    return changes


def strip(paths: Iterable[Path], *, check: bool = False) -> list[StripResult]:
    """Strip every notebook below ``paths``; with ``check`` only report what would change."""
    results = []
    for path in reading.find_notebooks(paths):
        nb = reading.read(path)
        changes = strip_notebook(nb)
        fixes, nb_dict = normalize(nb)
        if fixes:
            changes.append(f"repaired {fixes} nbformat problem(s) such as missing cell ids")
            nb = nbformat.from_dict(nb_dict)
        if changes and not check:
            nbformat.write(nb, str(path))
        results.append(StripResult(path=path, changes=tuple(changes)))
    return results
