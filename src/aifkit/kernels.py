"""Install and list the kernelspecs aifkit ships (package data: ``aifkit/data/jupyter/kernels/``).

Each sub-folder of that folder holding a ``kernel.json`` is one kernelspec (``aifkit`` runs
``python -m aifkit.launcher``). Installing copies it where Jupyter looks, replacing an older
copy; ``JUPYTER_PATH=<resources.jupyter_data_dir()>`` uses it in place, uninstalled.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from aifkit import resources
from aifkit.errors import AifkitError, KernelSpecError

KERNEL_NAME = "aifkit"
_QUIET = logging.getLogger("aifkit.kernels")
_QUIET.addHandler(logging.NullHandler())  # jupyter_client's info/warnings: see on_search_path
_QUIET.propagate = False


def kernels_dir() -> Path:
    """The folder of the kernelspecs this aifkit ships (inside the installed package)."""
    return resources.jupyter_data_dir() / "kernels"


def sources() -> dict[str, Path]:
    """Kernelspec name -> source folder, for every valid kernelspec under ``kernels_dir()``."""
    found: dict[str, Path] = {}
    folder = kernels_dir()
    specs = (
        sorted(p for p in folder.iterdir() if (p / "kernel.json").is_file())
        if folder.is_dir()
        else []
    )
    for spec_dir in specs:
        spec_file = spec_dir / "kernel.json"
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KernelSpecError(f"{spec_file} is not valid JSON ({exc}): fix the file") from exc
        if not isinstance(spec, dict) or not spec.get("argv"):
            raise KernelSpecError(
                f"{spec_file} has no 'argv' list: reinstall aifkit to restore its kernelspecs"
            )
        found[spec_dir.name.lower()] = spec_dir
    if not found:
        raise KernelSpecError(
            f"no kernelspec (a folder with kernel.json) under {folder}: reinstall aifkit "
            "(`pip install --force-reinstall aifkit`, or `pip install -e .` in a checkout)"
        )
    return found


def install(*, user: bool = False, sys_prefix: bool = False, prefix: str | None = None) -> Path:
    """Install every kernelspec aifkit ships and return the folder they were copied into.

    At most one target: ``user`` (~/.local/share/jupyter), ``sys_prefix`` (this Python's
    environment, what a site admin wants), ``prefix`` (PREFIX/share/jupyter); none means the
    system-wide folder, which needs root. An existing copy is replaced.
    """
    if sum((user, sys_prefix, prefix is not None)) > 1:
        raise KernelSpecError("choose one of --user, --sys-prefix and --prefix, not several")
    target_prefix = sys.prefix if sys_prefix else prefix
    manager = KernelSpecManager(log=_QUIET)
    installed: list[Path] = []
    for name, source in sources().items():
        try:
            dest = manager.install_kernel_spec(
                str(source), kernel_name=name, user=user, prefix=target_prefix
            )
        except PermissionError as exc:
            raise KernelSpecError(
                f"cannot install kernel {name!r}: {exc}; install as root, or use "
                "`aifkit kernels install --sys-prefix` (this environment) or `--user`"
            ) from exc
        except (OSError, ValueError) as exc:
            raise KernelSpecError(f"cannot install kernel {name!r}: {exc}") from exc
        installed.append(Path(dest))
    return installed[0].parent


def list_installed() -> dict[str, Path]:
    """Kernelspecs Jupyter finds now (JUPYTER_PATH, user, environment, system): name -> folder."""
    specs = KernelSpecManager(log=_QUIET).find_kernel_specs()
    return {name: Path(path) for name, path in sorted(specs.items())}


def on_search_path(folder: Path) -> bool:
    """Whether Jupyter looks for kernelspecs in ``folder`` (e.g. the one ``install`` returned)."""
    dirs = KernelSpecManager(log=_QUIET).kernel_dirs
    return any(Path(d).resolve() == folder.resolve() for d in dirs)


def is_current(resource_dir: Path, name: str = KERNEL_NAME) -> bool:
    """Whether an installed kernelspec's kernel.json equals the one this aifkit ships."""
    try:
        installed = json.loads((resource_dir / "kernel.json").read_text(encoding="utf-8"))
        source = json.loads((kernels_dir() / name / "kernel.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, AifkitError):
        return False
    return bool(installed == source)
