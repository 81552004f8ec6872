"""Builders of small notebooks for tests: cells with nbgrader metadata, on the aifkit kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parents[1]
COURSES = REPO / "courses"
AIFKIT_KERNEL = {"name": "aifkit", "display_name": "Python 3 (AI Factory)", "language": "python"}


def code(source: str, **nbgrader: Any) -> nbformat.NotebookNode:
    """A code cell; keyword arguments become its nbgrader metadata."""
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {
            "schema_version": 3,
            "locked": False,
            "task": False,
            **nbgrader,
        }
    return cell


def parameters(source: str = 'TIER = "auto"') -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def answer(
    grade_id: str,
    source: str = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
) -> nbformat.NotebookNode:
    return code(source, solution=True, grade=False, grade_id=grade_id)


def grader_cell(
    grade_id: str, source: str = "assert f() == 1", points: float = 1
) -> nbformat.NotebookNode:
    return code(source, solution=False, grade=True, grade_id=grade_id, points=points, locked=True)


def further_reading(
    links: tuple[str, ...] = (
        "[SLURM sbatch](https://slurm.schedmd.com/sbatch.html)",
        "[PyTorch distributed](https://pytorch.org/docs/stable/distributed.html)",
    ),
    heading: str = "## Further reading",
) -> nbformat.NotebookNode:
    """The last cell every course notebook must have (lint rule 'reading')."""
    return nbformat.v4.new_markdown_cell("\n".join([heading, "", *(f"- {link}" for link in links)]))


def build(
    cells: list[nbformat.NotebookNode],
    *,
    with_parameters: bool = True,
    with_reading: bool = False,
    aifkit: dict[str, Any] | None = None,
) -> nbformat.NotebookNode:
    """A valid nbformat-4 notebook on the aifkit kernel (``with_reading``: ending as lint wants)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(AIFKIT_KERNEL)}
    if aifkit:
        nb.metadata["aifkit"] = aifkit
    nb.cells = ([parameters()] if with_parameters else []) + cells
    if with_reading:
        nb.cells.append(further_reading())
    return nb
