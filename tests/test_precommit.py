"""The pre-commit nbstripout hook strips outputs but keeps what grading and validation need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import yaml
from builders import REPO, answer, code, grader_cell


def nbstripout_args() -> list[str]:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            if hook["id"] == "nbstripout":
                return list(hook.get("args", []))
    raise AssertionError("no nbstripout hook in .pre-commit-config.yaml")


def test_nbstripout_keeps_nbgrader_and_aifkit_metadata(write_nb) -> None:
    """Does the configured hook drop outputs and noise but keep nbgrader, aifkit, tags and ids?"""
    cell = code("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 1
    path: Path = write_nb(
        "hooked", [cell, answer("ex1"), grader_cell("t1")], aifkit={"min_seconds": 1}
    )
    nb = nbformat.read(path, 4)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, str(path))
    ids = [c.id for c in nb.cells]
    stripout = Path(sys.executable).parent / "nbstripout"
    subprocess.run([str(stripout), *nbstripout_args(), str(path)], check=True, timeout=60)
    stripped = nbformat.read(path, 4)
    assert set(stripped.metadata) == {"kernelspec", "aifkit"}
    assert stripped.cells[0].metadata["tags"] == ["parameters"]
    assert stripped.cells[2].metadata["nbgrader"]["grade_id"] == "ex1"
    assert stripped.cells[3].metadata["nbgrader"]["points"] == 1
    assert stripped.cells[1].outputs == [] and stripped.cells[1].execution_count is None
    assert [c.id for c in stripped.cells] == ids
