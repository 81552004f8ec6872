"""Content hash of everything a notebook's execution depends on, for ``validate --cached``.

Inputs: the code cells, the kernelspec (name and kernel.json), the tier and parameters, the
dependency lock, the site the learner selects (``AIFKIT_SITE`` and a site's own profile file),
the aifkit code a kernel can run, aifkit's package data, the files beside the
notebook, and the globs it declares in ``metadata.aifkit.reads``. The aifkit code a kernel can
run is the course library (``aifkit.course``), the kernel launcher and zygote, and every aifkit
module those or the notebook's cells import, followed through import statements (``ast``): a
module the course starts importing counts from then on. Markdown edits do not invalidate the
cache, nor do edits to tooling no kernel imports (the hub, grading, this toolchain).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aifkit
from aifkit import resources
from aifkit.course.site import ENV_SITE
from aifkit.notebooks import reading

LOCK_FILE = "requirements.lock"
_SKIP_SUFFIXES = {".pyc", ".log"}
#: What a kernel runs of aifkit before any notebook import: the launcher (or the zygote that
#: stands in for it) and the library the course imports.
KERNEL_SIDE = ("launcher", "zygote")
COURSE_LIBRARY = "course"
PACKAGE_DATA = "data"


def imported_names(source: str, package: str = "") -> set[str]:
    """Dotted names the import statements of ``source`` may load, parent packages included.

    ``from m import n`` gives ``m`` and also ``m.n`` (a module when ``n`` is a submodule);
    relative imports resolve against ``package``. Source that does not parse imports nothing.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: max(0, len(package.split(".")) - node.level + 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base:
                continue
            modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in modules:
            parts = name.split(".")
            found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def _module_file(name: str, src_root: Path) -> Path | None:
    """The file of module ``name`` below ``src_root``, or None when it is not a module there."""
    base = src_root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def kernel_code(package_dir: Path, imports: Iterable[str] = ()) -> list[Path]:
    """The files of the package at ``package_dir`` that a notebook's kernel can run.

    Starts from the course library, the kernel launcher and zygote, and the package's modules
    in ``imports`` (what the notebook's cells import); follows every import statement to the
    package's modules (and their packages' ``__init__``) that they load.
    """
    name = package_dir.name
    src_root = package_dir.parent
    course = package_dir / COURSE_LIBRARY
    queue = [
        ".".join(f.relative_to(src_root).with_suffix("").parts).removesuffix(".__init__")
        for f in sorted(course.rglob("*.py"))
    ]
    queue += [f"{name}.{module}" for module in KERNEL_SIDE]
    queue += [m for m in imports if m == name or m.startswith(name + ".")]
    seen: set[str] = set()
    files: set[Path] = set()
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        file = _module_file(module, src_root)
        if file is None:
            continue
        files.add(file)
        parts = module.split(".")
        queue += [".".join(parts[:i]) for i in range(1, len(parts))]
        package = module if file.name == "__init__.py" else ".".join(parts[:-1])
        source = file.read_text(encoding="utf-8", errors="replace")
        queue += [m for m in imported_names(source, package) if m.split(".")[0] == name]
    return sorted(files)


def code_only(source: str) -> str:
    """A cell's source without IPython's magics and shell escapes, which ``ast`` cannot parse."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def find_root(start: Path) -> Path | None:
    """The project root above ``start``: the first folder holding the dependency lock."""
    for folder in [start, *start.parents]:
        if (folder / LOCK_FILE).is_file():
            return folder
    return None


def _files(paths: Iterable[Path], exclude: Iterable[Path]) -> list[Path]:
    """Files below ``paths``, skipping hidden and generated ones and the ``exclude`` folders."""
    skip = [e.resolve() for e in exclude]
    found: set[Path] = set()
    for path in paths:
        candidates = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in candidates:
            relative = file.relative_to(path).parts if file != path else ()
            if (
                file.is_file()
                and file.suffix not in _SKIP_SUFFIXES
                and not any(part.startswith(".") or part == "__pycache__" for part in relative)
                and not any(file.resolve().is_relative_to(e) for e in skip)
            ):
                found.add(file)
    return sorted(found)


def _kernel_json(name: str, roots: list[Path]) -> str:
    for root in roots:
        spec = root / "kernels" / name / "kernel.json"
        if spec.is_file():
            return spec.read_text(encoding="utf-8")
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec_dir = Path(KernelSpecManager().find_kernel_specs()[name])
        return (spec_dir / "kernel.json").read_text(encoding="utf-8")
    except (KeyError, OSError):
        return f"missing:{name}"


def fingerprint(
    path: Path,
    *,
    tier: str,
    parameters: Mapping[str, Any] | None = None,
    exclude: Iterable[Path] = (),
    nb: Any = None,
    package_dir: Path | None = None,
) -> str:
    """Hex digest that changes whenever anything this notebook's run depends on changes.

    ``exclude`` names folders that validation itself writes (reports, state), never inputs;
    ``nb`` is the notebook when the caller has read it already; ``package_dir`` is the aifkit
    package whose code counts (this one unless a test hashes a copy).
    """
    nb = reading.read(path) if nb is None else nb
    root = find_root(path.resolve().parent)
    digest = hashlib.sha256()

    def add(label: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        digest.update(f"{label}:{len(raw)}:".encode() + raw)

    add("tier", tier)
    add("parameters", json.dumps(dict(parameters or {}), sort_keys=True, default=str))
    chosen_site = os.environ.get(ENV_SITE, "")
    add("site", chosen_site)  # site.load() and facts read it: another site, other numbers
    for index, cell in reading.code_cells(nb):
        add(f"cell{index}", reading.source_of(cell))
    aifkit_meta = nb.metadata.get("aifkit", {})
    add("aifkit-metadata", json.dumps(aifkit_meta, sort_keys=True))
    kernel = nb.metadata.get("kernelspec", {}).get("name", "")
    add("kernelspec", _kernel_json(kernel, [resources.jupyter_data_dir()]))
    package = package_dir or Path(aifkit.__file__).parent
    cell_imports = set().union(
        *(imported_names(code_only(reading.source_of(c))) for _, c in reading.code_cells(nb))
    )
    inputs = [*kernel_code(package, cell_imports), package / PACKAGE_DATA, path.parent]
    if chosen_site.endswith((".yml", ".yaml")):  # a site's own profile, outside the package
        inputs.append(Path(chosen_site))
    if root:
        inputs.append(root / LOCK_FILE)
        inputs.extend(p for glob in aifkit_meta.get("reads", []) for p in root.glob(glob))
    for file in _files(inputs, exclude):
        if file.suffix != ".ipynb":  # the notebook itself counts by its code cells only
            add(f"file:{file.name}", file.read_bytes())
    return digest.hexdigest()
