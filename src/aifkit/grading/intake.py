"""Read a learner's submitted notebooks however broken they are, repairing what can be repaired.

Every problem becomes a sentence about one notebook of one student: the grader scores that
notebook zero (or grades the repaired copy) and the batch goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 50 * 2**20


@dataclass
class Intake:
    """The notebooks of one submission that could be read, and what went wrong with the rest."""

    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # notebook name -> what is wrong
    repairs: list[str] = field(default_factory=list)


def read_submission(folder: Path, expected: list[str]) -> Intake:
    """Read ``<name>.ipynb`` for every expected notebook name in a submission folder.

    A missing notebook is taken from the one unexpected ``.ipynb`` in the folder when there is
    exactly one (a renamed copy); otherwise it is reported missing.
    """
    intake = Intake()
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
    size = path.stat().st_size
    if size == 0:
        raise ValueError("the file is empty (0 bytes)")
    if size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the file is {size / 2**20:.0f} MiB, over the 50 MiB limit")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(data, dict) or not isinstance(
        data.get("cells", data.get("worksheets")), list
    ):
        raise ValueError("not a Jupyter notebook (no list of cells)")
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
