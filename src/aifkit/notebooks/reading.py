"""Reading notebooks and the nbgrader facts about their cells, shared by lint, strip and validate."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import nbformat

from aifkit.errors import NotebookError

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
NOTEBOOK_METADATA_KEYS = frozenset({"kernelspec", "nbgrader", "aifkit"})
CELL_METADATA_KEYS = frozenset({"nbgrader", "tags", "aifkit"})


def read_json(path: Path) -> dict[str, Any]:
    """Load a notebook file as plain JSON, raising NotebookError with the position of bad JSON."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise NotebookError(f"{path}: cannot read: {error.strerror}") from error
    if not raw.strip():
        raise NotebookError(f"{path}: empty file, not a notebook")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NotebookError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise NotebookError(f"{path}: top level is {type(data).__name__}, not a notebook object")
    return data


def read(path: Path) -> nbformat.NotebookNode:
    """Read a version-4 notebook, raising NotebookError on bad JSON or another nbformat."""
    data = read_json(path)
    if data.get("nbformat") != 4:
        raise NotebookError(
            f"{path}: nbformat {data.get('nbformat')!r}; open and save it in JupyterLab to upgrade to 4"
        )
    notebook: nbformat.NotebookNode = nbformat.from_dict(data)
    return notebook


def source_of(cell: Any) -> str:
    """The cell's source as one string (nbformat allows a list of lines on disk)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def nbgrader_meta(cell: Any) -> dict[str, Any]:
    """The cell's nbgrader metadata, or an empty dict."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_solution_cell(cell: Any) -> bool:
    """An answer cell the learner edits."""
    return bool(nbgrader_meta(cell).get("solution"))


def is_test_cell(cell: Any) -> bool:
    """An autograder test cell: graded, not a solution, code."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_autograded_answer(cell: Any) -> bool:
    """A code answer cell graded by the tests that follow it (not by hand)."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("solution")) and not meta.get("grade")


def has_tag(cell: Any, tag: str) -> bool:
    """Whether the cell carries ``tag`` in its metadata tags."""
    tags = cell.get("metadata", {}).get("tags", [])
    return isinstance(tags, list) and tag in tags


def code_cells(nb: Any) -> Iterator[tuple[int, Any]]:
    """(index, cell) of every code cell."""
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code":
            yield index, cell


def find_notebooks(paths: Iterable[Path]) -> list[Path]:
    """Notebooks named or found below the given paths, skipping checkpoints and build output."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*.ipynb"))
                if not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))
