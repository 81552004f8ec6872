"""Tests are marked by what they need, and `make test-fast` leaves out what needs a service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from builders import REPO

MODULES = [
    "tests/test_slurm.py",
    "tests/test_jobs.py",
    "tests/test_notebooks.py",
    "tests/test_hub_local.py",
    "tests/test_hub_browser.py",
    "tests/test_postgres.py",
    "tests/test_grading_sandbox.py",
]


# Loaded into the collecting pytest with -p: prints each test's markers once they are applied.
PRINT_MARKS = """
def pytest_collection_finish(session):
    for item in session.items:
        marks = sorted({mark.name for mark in item.iter_markers()})
        print("MARKS", item.nodeid, ",".join(marks))
"""


class _Marks(dict[str, bool]):
    """Names in a marker expression: True for the markers a test has, False for the rest."""

    def __missing__(self, name: str) -> bool:
        return False


def fast_expression() -> str:
    """The marker expression `make test-fast` selects with, read from the Makefile."""
    found = re.search(r"^FAST := (.+)$", (REPO / "Makefile").read_text(), flags=re.MULTILINE)
    assert found, "no FAST := line in the Makefile"
    return found.group(1).strip()


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The markers of every test in MODULES, as a real collection applies them."""
    plugin = tmp_path_factory.mktemp("plugin")
    (plugin / "print_marks.py").write_text(PRINT_MARKS)
    plugins = ["-p", "no:cacheprovider", "-p", "print_marks"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *plugins, *MODULES],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), *sys.path])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("MARKS "):
            _, nodeid, names = line.split(" ", 2)
            found[nodeid] = set(filter(None, names.split(",")))
    return found


def having(marks: dict[str, set[str]], marker: str) -> set[str]:
    return {nodeid for nodeid, names in marks.items() if marker in names}


def test_fixtures_and_modules_mark_what_a_test_needs(marks: dict[str, set[str]]) -> None:
    """Are tests marked from the fixtures they use (a module-wide usefixtures included), and
    explicitly where no fixture tells (a notebook that needs SLURM, the browser, the sandbox)?"""
    slurm = having(marks, "slurm")
    assert "tests/test_slurm.py::test_batch_job_gets_its_gpu" in slurm  # uses slurm_cluster
    assert "tests/test_slurm.py::test_missing_and_silent_commands_say_so" not in slurm  # parser
    assert "tests/test_notebooks.py::test_notebook_runs_at_cpu_tiny[a03-slurm]" in slurm
    assert "tests/test_jobs.py::test_cli_submit_wait_and_status" in slurm
    assert "tests/test_notebooks.py::test_notebook_runs_at_cpu_tiny[a01-welcome]" not in slurm
    assert "tests/test_jobs.py::test_cpu_tiny_renders_two_gloo_processes_on_one_node" not in slurm
    assert {i for i in marks if i.startswith("tests/test_hub_local.py")} <= having(marks, "hub")
    assert {i for i in marks if i.startswith("tests/test_hub_browser.py")} <= having(
        marks, "browser"
    )
    assert {i for i in marks if i.startswith("tests/test_postgres.py")} <= having(marks, "postgres")
    assert {i for i in marks if i.startswith("tests/test_grading_sandbox.py")} <= having(
        marks, "sandbox"
    )


def test_make_test_fast_leaves_out_services_and_course_notebooks(
    marks: dict[str, set[str]],
) -> None:
    """Does the test-fast selection keep quick tests but no SLURM, hub, browser, PostgreSQL or
    course-notebook test? (A marker expression is and/or/not over marker names, as in Python.)"""
    expression = fast_expression()
    fast = {i for i, names in marks.items() if eval(expression, {}, _Marks.fromkeys(names, True))}
    assert "tests/test_slurm.py::test_batch_job_gets_its_gpu" not in fast
    assert "tests/test_slurm.py::test_missing_and_silent_commands_say_so" in fast
    left_out = (
        "test_hub_local",
        "test_hub_browser",
        "test_postgres",
        "test_notebooks",
    )
    assert not [i for i in fast if Path(i.split("::")[0]).stem in left_out], fast
    assert any(i.startswith("tests/test_jobs.py") for i in fast)
    assert any(i.startswith("tests/test_grading_sandbox.py") for i in fast)
