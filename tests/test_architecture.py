"""Does every module import only from its own layer or the layers below (docs/architecture.md)?

The layers are read from the code's import statements (lazy imports inside functions
included), so a new upward import fails here with the module, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from builders import REPO

SRC = REPO / "src"

# Bottom first. A module may import its own layer and any layer below, never one above.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"aifkit", "aifkit.errors"}),
    (
        "foundation",
        {
            "aifkit.models",
            "aifkit.processes",
            "aifkit.resources",
            "aifkit.slurm",
            "aifkit.launcher",
            "aifkit.guard",
            "aifkit.verifier",
            "aifkit.trusted_values",
            "aifkit.zygote",
        },
    ),
    ("templates", {"aifkit.templates"}),
    ("course library", {"aifkit.course"}),
    ("checkout tools", {"aifkit.kernels", "aifkit.catalog", "aifkit.doctor"}),
    ("notebook tooling", {"aifkit.notebooks"}),
    ("grading", {"aifkit.grading"}),
    ("hub", {"aifkit.hub"}),
    ("command line", {"aifkit.cli", "aifkit.__main__"}),
]


def _group(module: str) -> str:
    """``aifkit.grading.worker`` -> ``aifkit.grading``; ``aifkit.errors`` stays itself."""
    return ".".join(module.split(".")[:2])


def _layer(module: str) -> int:
    group = _group(module)
    for index, (_, members) in enumerate(LAYERS):
        if group in members:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, aifkit module) for every aifkit import in ``path``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "aifkit":  # from aifkit import x: x may be a module
                found += [(node.lineno, f"aifkit.{alias.name}") for alias in node.names]
            elif node.module.startswith("aifkit."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("aifkit")]
    return found


def _package_modules() -> list[Path]:
    # data/ holds files other programs run (JupyterHub's config file), not package modules
    return sorted(p for p in (SRC / "aifkit").rglob("*.py") if "data" not in p.parts)


def test_every_module_has_a_layer() -> None:
    """Is every module of the package placed in a layer?"""
    for path in _package_modules():
        _layer(_module_name(path))


@pytest.mark.parametrize("path", _package_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    """Does this module import only its own layer or the layers below it?"""
    module = _module_name(path)
    own = _layer(module)
    upward = []
    for line, target in _imports(path):
        if target == "aifkit.__version__":
            target = "aifkit"
        if _layer(target) > own:
            upward.append(
                f"{path.relative_to(REPO)}:{line} imports {target} "
                f"({LAYERS[_layer(target)][0]}), above {module}'s layer ({LAYERS[own][0]})"
            )
    assert not upward, "\n".join(upward)


def test_the_course_library_imports_no_tooling() -> None:
    """Can a learner's kernel import aifkit.course without the notebook, grading or hub tooling?"""
    allowed = {"aifkit", "aifkit.errors", "aifkit.models", "aifkit.resources", "aifkit.slurm"}
    allowed |= {"aifkit.templates", "aifkit.course"}
    for path in sorted((SRC / "aifkit" / "course").glob("*.py")):
        for line, target in _imports(path):
            assert _group(target) in allowed, f"{path.relative_to(REPO)}:{line} imports {target}"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """Would an import of the hub from the course library be caught?"""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from aifkit.hub import apply\n", encoding="utf-8")
    targets = [target for _, target in _imports(bad)]
    assert targets == ["aifkit.hub"]
    assert _layer("aifkit.hub") > _layer("aifkit.course.tiers")
