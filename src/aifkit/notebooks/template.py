"""Start a new assignment from ``courses/TEMPLATE.ipynb``."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import nbformat

from aifkit.errors import NotebookError
from aifkit.notebooks import reading

TEMPLATE_NAME = "TEMPLATE.ipynb"
ID_PATTERN = re.compile(r"^[a-z]\d\d-[a-z0-9]+(-[a-z0-9]+)*$")


def new_assignment(assignment_id: str, *, courses: Path = Path("courses")) -> Path:
    """Copy the template into ``courses/<id>/<id>.ipynb`` with fresh cell ids; return its path."""
    if not ID_PATTERN.match(assignment_id):
        raise NotebookError(
            f"assignment id {assignment_id!r} must look like 'c07-my-topic' "
            "(track letter, two digits, a dash, lowercase words joined by dashes)"
        )
    target = courses / assignment_id / f"{assignment_id}.ipynb"
    if target.exists():
        raise NotebookError(f"{target} already exists; edit it instead")
    nb = reading.read(courses / TEMPLATE_NAME)
    for cell in nb.cells:
        cell.id = uuid.uuid4().hex[:8]
    nb.metadata.setdefault("aifkit", {})["id"] = assignment_id
    target.parent.mkdir(parents=True)
    nbformat.write(nb, str(target))
    return target
