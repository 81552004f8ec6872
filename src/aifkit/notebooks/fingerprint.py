"""Content hash of everything a notebook's execution depends on, for ``validate --cached``.

Inputs: the code cells, the kernelspec (name and kernel.json), the tier and parameters, the
dependency lock, the aifkit package (notebooks import it; its bundled data included), the
files beside the notebook, and the globs it declares in ``metadata.aifkit.reads``. Markdown
edits do not invalidate the cache; any of the above does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aifkit
from aifkit import resources
from aifkit.notebooks import reading

LOCK_FILE = "requirements.lock"
_SKIP_SUFFIXES = {".pyc", ".log"}


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
) -> str:
    """Hex digest that changes whenever anything this notebook's run depends on changes.

    ``exclude`` names folders that validation itself writes (reports, state), never inputs;
    ``nb`` is the notebook when the caller has read it already.
    """
    nb = reading.read(path) if nb is None else nb
    root = find_root(path.resolve().parent)
    digest = hashlib.sha256()

    def add(label: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        digest.update(f"{label}:{len(raw)}:".encode() + raw)

    add("tier", tier)
    add("parameters", json.dumps(dict(parameters or {}), sort_keys=True, default=str))
    for index, cell in reading.code_cells(nb):
        add(f"cell{index}", reading.source_of(cell))
    aifkit_meta = nb.metadata.get("aifkit", {})
    add("aifkit-metadata", json.dumps(aifkit_meta, sort_keys=True))
    kernel = nb.metadata.get("kernelspec", {}).get("name", "")
    add("kernelspec", _kernel_json(kernel, [resources.jupyter_data_dir()]))
    inputs = [Path(aifkit.__file__).parent, path.parent]
    if root:
        inputs.append(root / LOCK_FILE)
        inputs.extend(p for glob in aifkit_meta.get("reads", []) for p in root.glob(glob))
    for file in _files(inputs, exclude):
        if file.suffix != ".ipynb":  # the notebook itself counts by its code cells only
            add(f"file:{file.name}", file.read_bytes())
    return digest.hexdigest()
