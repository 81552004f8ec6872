"""The pre-commit notebook hook is `aifkit nb strip`: outputs go, grading metadata stays."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import yaml
from builders import REPO, answer, build, code, grader_cell

HOOK_ID = "aifkit-nb-strip"
BIN = Path(sys.executable).parent


def hooks() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every hook of .pre-commit-config.yaml by id, with the repo entry it belongs to."""
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    return {hook["id"]: (repo, hook) for repo in config["repos"] for hook in repo["hooks"]}


def test_the_notebook_hook_is_aifkit_nb_strip() -> None:
    """Is the one notebook stripper a local hook running `aifkit nb strip` on course notebooks,
    ahead of the lint, with no second stripper beside it?"""
    found = hooks()
    repo, hook = found[HOOK_ID]
    assert repo["repo"] == "local"
    assert hook["entry"] == "aifkit nb strip" and hook["language"] == "system"
    assert re.search(hook["files"], "courses/a01-welcome/a01-welcome.ipynb")
    assert not re.search(hook["files"], "tests/fixtures/x.ipynb")
    ids = list(found)
    assert ids.index(HOOK_ID) < ids.index("aifkit-nb-lint"), "strip before lint"
    assert "nbstripout" not in (REPO / ".pre-commit-config.yaml").read_text()


def git(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_commit_through_the_hook_strips_outputs_and_keeps_grading_metadata(
    tmp_path: Path,
) -> None:
    """Does committing a notebook with outputs fail once with the file stripped, and does the
    commit after `git add` hold it without outputs but with nbgrader/aifkit metadata and ids?"""
    repo = tmp_path / "repo"
    course = repo / "courses" / "x01"
    course.mkdir(parents=True)
    repo_entry, hook = hooks()[HOOK_ID]
    (repo / ".pre-commit-config.yaml").write_text(
        yaml.safe_dump({"repos": [{**repo_entry, "hooks": [hook]}]})
    )
    cell = code("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 1
    cell.metadata["collapsed"] = True
    nb = build([cell, answer("ex1"), grader_cell("t1")], aifkit={"min_seconds": 1})
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["widgets"] = {"state": {}}
    notebook = course / "x01.ipynb"
    nbformat.write(nb, str(notebook))
    ids = [c.id for c in nb.cells]

    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    assert git(repo, "init", "-q", env=env).returncode == 0
    installed = subprocess.run(
        [str(BIN / "pre-commit"), "install"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stderr
    git(repo, "add", ".", env=env)

    refused = git(repo, "commit", "-qm", "notebook with outputs", env=env)
    assert refused.returncode != 0, "the hook let a notebook with outputs through"
    said = refused.stdout + refused.stderr
    assert "aifkit nb strip" in said and "files were modified by this hook" in said, said
    assert git(repo, "rev-parse", "--verify", "HEAD", env=env).returncode != 0

    git(repo, "add", ".", env=env)
    committed = git(repo, "commit", "-qm", "stripped notebook", env=env)
    assert committed.returncode == 0, committed.stdout + committed.stderr
    shown = git(repo, "show", "HEAD:courses/x01/x01.ipynb", env=env).stdout
    stripped = nbformat.reads(shown, as_version=4)
    assert set(stripped.metadata) == {"kernelspec", "aifkit"}
    assert stripped.metadata["aifkit"] == {"min_seconds": 1}
    assert stripped.cells[0].metadata["tags"] == ["parameters"]
    assert stripped.cells[1].outputs == [] and stripped.cells[1].execution_count is None
    assert "collapsed" not in stripped.cells[1].metadata
    assert stripped.cells[2].metadata["nbgrader"]["grade_id"] == "ex1"
    assert stripped.cells[3].metadata["nbgrader"]["points"] == 1
    assert [c.id for c in stripped.cells] == ids
