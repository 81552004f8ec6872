"""Fixture catalogue: notebook builders and the environment every test shares.

Notebooks are built in ``tmp_path`` from cells, never written into the source tree. aifkit's
Jupyter data folder goes on JUPYTER_PATH so that its own ``aifkit`` kernelspec is the one used.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import nbgrader.api
import pytest
from builders import REPO, answer, build, code, grader_cell

from aifkit.resources import jupyter_data_dir

pytest_plugins = ["postgres_fixture", "hub_fixture", "oidc_fixture"]

os.environ["JUPYTER_PATH"] = os.pathsep.join(
    p for p in (str(jupyter_data_dir()), os.environ.get("JUPYTER_PATH", "")) if p
)

# nbgrader stamps every new gradebook with its migrations' head, which it asks a subprocess
# (`alembic heads`, about 3 s) for each time. The head is fixed by the installed nbgrader: ask
# once per test session, for real, instead of once per course the tests create.
nbgrader.api.get_alembic_version = functools.cache(nbgrader.api.get_alembic_version)


# What a test needs, told by the fixtures it uses (fixtures asked for by other fixtures
# included). Where no fixture tells, the module says it with `pytestmark` (sandbox, browser)
# or the parameter with `marks=` (a notebook that needs SLURM). `make test-fast` deselects by
# these markers; they are registered in pyproject.toml.
NEEDS_BY_FIXTURE = {
    "slurm_cluster": "slurm",
    "chp_on_path": "hub",  # every hub fixture needs the proxy first
    "postgres_server": "postgres",
    "oidc_provider": "oidc",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the real services its fixtures bring up."""
    for item in items:
        for fixture in NEEDS_BY_FIXTURE.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(NEEDS_BY_FIXTURE[fixture])


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


SCRIPTS = REPO / "scripts"


def _slurm_up() -> bool:
    """Whether the controller answers and every node takes jobs (idle, or running some already)."""
    try:
        state = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = state.stdout.split()
    return bool(states) and set(states) <= {"idle", "mix", "alloc", "comp"}


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    """A real two-node SLURM cluster on localhost (Debian slurm-wlm, munge, slurmdbd accounting).

    Installed and started by scripts/slurm-up.sh when not running (needs root, as in CI), and
    stopped by PID afterwards when this session started it. Every wait has its own timeout.
    """
    if os.geteuid() != 0:
        pytest.skip(
            "a real SLURM cluster needs root to start munged/slurmctld/slurmd (CI runs as root)"
        )
    started = not _slurm_up()  # a node busy with other tests' jobs is up: leave it alone
    if started:
        up = subprocess.run(
            [str(SCRIPTS / "slurm-up.sh")], capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, f"slurm-up.sh failed:\n{up.stdout}\n{up.stderr}"
    assert _slurm_up(), "the SLURM node does not take jobs"
    yield
    if started:
        subprocess.run([str(SCRIPTS / "slurm-down.sh")], capture_output=True, timeout=120)
