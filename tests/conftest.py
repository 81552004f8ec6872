"""Fixture catalogue: notebook builders and the environment every test shares.

Notebooks are built in ``tmp_path`` from cells, never written into the source tree. The repo
root goes on JUPYTER_PATH so that the repo's own ``kernels/aifkit`` kernelspec is the one used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from builders import REPO, answer, build, code, grader_cell

os.environ["JUPYTER_PATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("JUPYTER_PATH", "")) if p
)


@pytest.fixture
def write_nb(tmp_path: Path) -> Callable[..., Path]:
    """Write a notebook built from cells into tmp_path and return its path."""

    def _write(name: str, cells: list[nbformat.NotebookNode], **kwargs: Any) -> Path:
        path = tmp_path / "notebooks" / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(build(cells, **kwargs), str(path))
        return path

    return _write


@pytest.fixture
def good_nb(write_nb: Callable[..., Path]) -> Path:
    """A small valid notebook with one graded exercise whose solution passes."""
    return write_nb("good", [code("import os\nx = 6 * 7"), answer("ex1"), grader_cell("t1")])
