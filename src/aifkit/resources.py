"""Files shipped inside the aifkit package (``aifkit/data/``), found through importlib.resources.

The same code runs from a checkout (editable install) and from an installed wheel: nothing
here knows where a repository is. Other programs get these files by path (Jupyter reads the
kernelspec folder, JupyterHub its configuration file, a single-user server its settings
folder), so the package must be installed as files, not imported from a zip archive.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aifkit.errors import ResourceError


def data_path(*parts: str) -> Path:
    """The file or folder ``aifkit/data/<parts...>`` of the installed package, checked to exist."""
    resource = files("aifkit").joinpath("data", *parts)
    if not isinstance(resource, Path):  # e.g. zipfile.Path when imported from a zip archive
        raise ResourceError(
            f"aifkit/data/{'/'.join(parts)} is inside {resource}, not a folder on disk: "
            "install aifkit as files (`pip install aifkit`), not as a zip archive"
        )
    if not resource.exists():
        raise ResourceError(
            f"{resource} is missing from the installed aifkit package: reinstall aifkit "
            "(`pip install --force-reinstall aifkit`, or `pip install -e .` in a checkout)"
        )
    return resource


def jupyter_data_dir() -> Path:
    """aifkit's Jupyter data folder (``kernels/<name>/kernel.json`` below it).

    A ``JUPYTER_PATH`` entry: with it, Jupyter finds the package's kernelspecs uninstalled.
    """
    return data_path("jupyter")


def hub_config_file() -> Path:
    """The ``jupyterhub_config.py`` every aifkit hub runs: it applies ``$AIFKIT_HUB_CONFIG``."""
    return data_path("hub", "jupyterhub_config.py")


def singleuser_config_dir(role: str) -> Path:
    """The single-user server settings of ``role`` (learner or instructor): a JUPYTER_CONFIG_PATH."""
    return data_path("hub", "singleuser", role)
