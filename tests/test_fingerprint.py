"""The validate cache's fingerprint counts the aifkit code a kernel can run, and nothing else."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from builders import code

import aifkit
from aifkit.notebooks.fingerprint import fingerprint, imported_names, kernel_code

PACKAGE = Path(aifkit.__file__).parent


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the aifkit package that a test may edit (the source tree is never touched)."""
    copy = tmp_path / "src" / "aifkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture
def digest(write_nb, package: Path) -> Callable[..., str]:
    """The fingerprint of a course-like notebook, hashed against the package copy."""
    path = write_nb("lesson", [code("from aifkit.course import tiers\nx = tiers.pick")])

    def _digest(notebook: Path = path) -> str:
        return fingerprint(notebook, tier="cpu-tiny", package_dir=package)

    return _digest


def _edit(file: Path, text: str = "\n# edited\n") -> None:
    file.write_text(file.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.parametrize(
    "tooling",
    ["hub/check.py", "grading/execute.py", "notebooks/lint.py", "cli.py", "catalog.py"],
)
def test_editing_tooling_keeps_the_fingerprint(digest, package: Path, tooling: str) -> None:
    """Does editing a module no kernel imports (hub, grading, this toolchain) keep the cache?"""
    before = digest()
    _edit(package / tooling)
    assert digest() == before


@pytest.mark.parametrize(
    "kernel_side",
    ["course/tiers.py", "course/jobs.py", "launcher.py", "zygote.py", "errors.py", "__init__.py"],
)
def test_editing_what_a_kernel_runs_changes_the_fingerprint(
    digest, package: Path, kernel_side: str
) -> None:
    """Does editing the course library, the launcher, the zygote or a module they import
    (errors.py, the package __init__) invalidate the cache?"""
    before = digest()
    _edit(package / kernel_side)
    assert digest() != before


def test_package_data_counts(digest, package: Path) -> None:
    """Does editing the package data the course reads (facts, samples) invalidate the cache?"""
    before = digest()
    _edit(package / "data" / "facts.yml", "\n# a comment\n")
    assert digest() != before


def test_the_selected_site_counts(digest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does choosing another site (AIFKIT_SITE), or editing a site's own profile, invalidate
    the cache? Its facts and partitions change what the notebook computes."""
    monkeypatch.delenv("AIFKIT_SITE", raising=False)
    reference = digest()
    monkeypatch.setenv("AIFKIT_SITE", "meluxina")
    meluxina = digest()
    assert meluxina != reference
    own = tmp_path / "own-site.yml"
    own.write_text("name: own\n", encoding="utf-8")
    monkeypatch.setenv("AIFKIT_SITE", str(own))
    before = digest()
    _edit(own)
    assert digest() != before


def test_a_module_the_course_starts_importing_counts_from_then_on(digest, package: Path) -> None:
    """When course/jobs.py starts importing a new aifkit module, do edits to it count?"""
    client = package / "newclient.py"
    client.write_text('"""A new client."""\n', encoding="utf-8")
    before = digest()
    _edit(client)
    assert digest() == before, "not imported by anything a kernel runs yet"
    _edit(package / "course" / "jobs.py", "\nfrom aifkit import newclient  # noqa: E402\n")
    wired = digest()
    _edit(client)
    assert digest() != wired


def test_a_notebook_importing_tooling_counts_it(write_nb, package: Path) -> None:
    """Does a notebook that imports aifkit.catalog itself get catalog.py (and its imports)
    into its fingerprint, while one that does not is unaffected?"""
    direct = write_nb("direct", [code("import aifkit.catalog")])
    other = write_nb("other", [code("x = 1")])
    before = {p: fingerprint(p, tier="cpu-tiny", package_dir=package) for p in (direct, other)}
    _edit(package / "catalog.py")
    after = {p: fingerprint(p, tier="cpu-tiny", package_dir=package) for p in (direct, other)}
    assert after[direct] != before[direct] and after[other] == before[other]


def test_kernel_code_is_the_course_library_and_what_it_imports() -> None:
    """Is the real package's kernel-side code the course library, the launcher, the zygote,
    errors.py and the package __init__s, and none of the tooling?"""
    names = {str(f.relative_to(PACKAGE)) for f in kernel_code(PACKAGE)}
    assert {"course/tiers.py", "course/jobs.py", "launcher.py", "zygote.py", "errors.py"} <= names
    assert {"__init__.py", "course/__init__.py"} <= names
    assert not {n for n in names if n.split("/")[0] in {"hub", "grading", "notebooks"}}


def test_imported_names_resolve_relative_and_from_imports() -> None:
    """Are ``from . import x``, ``from .m import y`` and ``import a.b`` all followed?"""
    source = "import a.b\nfrom . import site\nfrom .tiers import pick\nfrom .. import errors\n"
    names = imported_names(source, "aifkit.course")
    assert {"a", "a.b", "aifkit.course.site", "aifkit.course.tiers", "aifkit.errors"} <= names
    assert imported_names("this is not python") == set()
