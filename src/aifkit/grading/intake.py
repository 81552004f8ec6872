"""Read a learner's submitted notebooks however broken they are, repairing what can be repaired.

Every problem becomes a sentence about one notebook of one student: the grader scores that
notebook zero (or grades the repaired copy) and the batch goes on. Nothing is read before the
whole folder passed ``submission_files.unsafe_entries`` (links, special files, hard links), and
the grader runs this reading in a confined child (``confined.run_confined``, ``prepare.py``)
with the limits below.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from aifkit.grading.submission_files import unsafe_entries

MAX_NOTEBOOK_BYTES = 50 * 2**20
MAX_CELLS = 2000  # course notebooks have tens to a few hundred; 300,000 empty ones is an attack
INTAKE_SECONDS = 60.0  # wall clock (and CPU) for reading and sanitising one submission
INTAKE_MEMORY_MB = 1024  # what reading and sanitising one submission may add to the process


@dataclass
class Intake:
    """The notebooks of one submission that could be read, and what went wrong with the rest."""

    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # notebook name -> what is wrong
    repairs: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # unsafe entries: nothing at all was read


def read_submission(folder: Path, expected: list[str]) -> Intake:
    """Read ``<name>.ipynb`` for every expected notebook name in a submission folder.

    A missing notebook is taken from the one unexpected ``.ipynb`` in the folder when there is
    exactly one (a renamed copy); otherwise it is reported missing. A folder holding anything
    unsafe to read (``unsafe_entries``) is refused whole: every notebook gets that sentence.
    """
    intake = Intake(refused=unsafe_entries(folder))
    if intake.refused:
        shown = "; ".join(intake.refused[:5]) + ("; ..." if len(intake.refused) > 5 else "")
        for name in expected:
            intake.problems[name] = f"submission refused: {shown}"
        return intake
    present = {p.stem: p for p in folder.glob("*.ipynb") if p.is_file()}
    strays = [p for stem, p in sorted(present.items()) if stem not in expected]
    missing = [name for name in expected if name not in present]
    if len(missing) == 1 and len(strays) == 1:
        present[missing[0]] = strays[0]
        intake.repairs.append(f"graded {strays[0].name} as {missing[0]}.ipynb (renamed)")
    for name in expected:
        path = present.get(name)
        if path is None:
            intake.problems[name] = f"{name}.ipynb is missing from the submission"
            continue
        try:
            intake.notebooks[name] = _read(path, intake.repairs)
        except ValueError as error:
            intake.problems[name] = f"{path.name}: {error}"
    return intake


def _read(path: Path, repairs: list[str]) -> nbformat.NotebookNode:
    size = path.lstat().st_size
    if size == 0:
        raise ValueError("the file is empty (0 bytes)")
    if size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the file is {size / 2**20:.0f} MiB, over the 50 MiB limit")
    try:  # O_NOFOLLOW: a link swapped in since the check is refused, never followed
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise ValueError(f"cannot be opened safely ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_NOTEBOOK_BYTES + 1)
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise ValueError("the file grew past the 50 MiB limit while it was read")
    too_many = _over_cell_limit(raw)
    if too_many:
        raise ValueError(too_many)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(data, dict) or not isinstance(
        data.get("cells", data.get("worksheets")), list
    ):
        raise ValueError("not a Jupyter notebook (no list of cells)")
    cells = _cell_count(data)
    if cells > MAX_CELLS:
        raise ValueError(
            f"the notebook has {cells:,} cells, over the limit of {MAX_CELLS:,}: "
            "it was not graded (delete the empty cells and submit again)"
        )
    version = data.get("nbformat")
    if version not in (3, 4):
        raise ValueError(f"unsupported nbformat {version!r} (expected 4)")
    try:
        nb: nbformat.NotebookNode = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as error:  # nbformat raises several types for broken structure
        raise ValueError(f"cannot convert the notebook: {error}") from None
    if version == 3:
        repairs.append(f"{path.name}: converted from nbformat 3 to 4")
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise ValueError(f"cell {index} has no valid cell_type")
        if not isinstance(cell.get("source"), str):
            raise ValueError(f"cell {index} has no source text")
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as error:  # outputs and ids are rebuilt by the grader
        repairs.append(f"{path.name}: schema problem ignored ({error.message[:80]})")
    return nb


def _cell_count(data: dict[str, object]) -> int:
    """Cells of a version 4 notebook, or of every worksheet of a version 3 one."""
    if isinstance(data.get("cells"), list):
        return len(data["cells"])  # type: ignore[arg-type]
    sheets = data.get("worksheets")
    return sum(
        len(sheet.get("cells", [])) if isinstance(sheet, dict) else 0
        for sheet in (sheets if isinstance(sheets, list) else [])
    )


def _over_cell_limit(raw: bytes) -> str | None:
    """The sentence refusing a notebook with too many cells, counted without parsing it.

    Every cell is a JSON object with a ``"cell_type"`` key; inside a JSON string a quote is
    always escaped, so the unescaped key counts cells (at most over-counts a metadata key of
    that name). It refuses 300,000 empty cells in milliseconds, before ``json.loads``.
    """
    cells = raw.count(b'"cell_type"')
    if cells <= MAX_CELLS:
        return None
    return (
        f"the notebook has {cells:,} cells, over the limit of {MAX_CELLS:,}: it was not "
        "graded (delete the empty cells and submit again)"
    )


def notebook_problems(folder: Path) -> list[str]:
    """What makes the notebooks directly in ``folder`` unreadable within the intake limits.

    Only ``lstat`` and one bounded read per notebook; call it on a folder that passed
    ``unsafe_entries`` (regular files only).
    """
    problems: list[str] = []
    for path in sorted(folder.glob("*.ipynb")):
        size = path.lstat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            problems.append(f"{path.name}: {size / 2**20:.0f} MiB, over the 50 MiB limit")
            continue
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            too_many = _over_cell_limit(handle.read(MAX_NOTEBOOK_BYTES + 1))
        if too_many:
            problems.append(f"{path.name}: {too_many}")
    return problems
