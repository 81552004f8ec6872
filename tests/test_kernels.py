"""Kernelspecs: the ``aifkit`` kernelspec the package ships, installed where Jupyter finds it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

import aifkit
from aifkit import kernels, resources
from aifkit.errors import KernelSpecError, ResourceError


def test_shipped_kernelspec_is_the_ai_factory_kernel() -> None:
    """Does the package's aifkit/kernel.json start the launcher with the debugger enabled?"""
    spec = json.loads((kernels.kernels_dir() / "aifkit" / "kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (AI Factory)"
    assert spec["language"] == "python"
    assert spec["argv"] == ["python", "-m", "aifkit.launcher", "-f", "{connection_file}"]
    assert spec["metadata"] == {"debugger": True}
    assert spec["interrupt_mode"] == "signal"
    package = Path(aifkit.__file__).parent
    assert kernels.kernels_dir() == package / "data" / "jupyter" / "kernels"
    assert kernels.sources() == {"aifkit": kernels.kernels_dir() / "aifkit"}


def test_package_data_works_as_a_jupyter_path_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """With JUPYTER_PATH=<the package's jupyter data folder>, is aifkit found uninstalled?"""
    monkeypatch.setenv("JUPYTER_PATH", str(resources.jupyter_data_dir()))
    assert kernels.list_installed()["aifkit"] == kernels.kernels_dir() / "aifkit"
    spec = KernelSpecManager().get_kernel_spec("aifkit")
    assert spec.display_name == "Python 3 (AI Factory)"


def test_install_into_a_prefix_and_list_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does install(prefix=...) copy the kernelspec, and does list_installed then see it?"""
    where = kernels.install(prefix=str(tmp_path))
    assert where == tmp_path / "share" / "jupyter" / "kernels"
    assert json.loads((where / "aifkit" / "kernel.json").read_text())["argv"][2] == (
        "aifkit.launcher"
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    installed = kernels.list_installed()
    assert installed["aifkit"] == where / "aifkit"
    assert kernels.is_current(installed["aifkit"])
    assert kernels.on_search_path(where)


def test_sys_prefix_installs_into_this_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Does --sys-prefix install under sys.prefix (the environment Jupyter runs from)?"""
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert kernels.install(sys_prefix=True) == tmp_path / "share" / "jupyter" / "kernels"
    assert (tmp_path / "share" / "jupyter" / "kernels" / "aifkit" / "kernel.json").is_file()


def test_install_replaces_an_existing_copy(tmp_path: Path) -> None:
    """Is an older installed kernelspec replaced rather than merged or refused?"""
    where = kernels.install(prefix=str(tmp_path))
    (where / "aifkit" / "kernel.json").write_text('{"argv": ["old"]}')
    (where / "aifkit" / "stale.txt").write_text("left over")
    assert not kernels.is_current(where / "aifkit")
    kernels.install(prefix=str(tmp_path))
    assert not (where / "aifkit" / "stale.txt").exists()
    assert kernels.is_current(where / "aifkit")


def test_outside_the_search_path_is_reported(tmp_path: Path) -> None:
    """Can a caller tell that a prefix install lands where Jupyter does not look?"""
    where = kernels.install(prefix=str(tmp_path / "elsewhere"))
    assert not kernels.on_search_path(where)


def test_one_target_only(tmp_path: Path) -> None:
    """Is asking for two install targets at once a clear error?"""
    with pytest.raises(KernelSpecError, match="choose one"):
        kernels.install(user=True, prefix=str(tmp_path))
    with pytest.raises(KernelSpecError, match="choose one"):
        kernels.install(sys_prefix=True, prefix=str(tmp_path))


def test_permission_denied_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does a system-wide install without root suggest --sys-prefix or --user?"""

    def denied(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", "/usr/local/share/jupyter")

    monkeypatch.setattr(KernelSpecManager, "install_kernel_spec", denied)
    with pytest.raises(KernelSpecError, match="--sys-prefix"):
        kernels.install()


def test_package_without_its_data_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed without its package data, is the error clear about the fix (reinstall)?"""
    bare = tmp_path / "site-packages" / "aifkit"
    bare.mkdir(parents=True)
    monkeypatch.setattr(resources, "files", lambda package: bare)
    with pytest.raises(ResourceError, match=r"missing from the installed aifkit.*reinstall"):
        kernels.install(prefix=str(tmp_path / "prefix"))
    (bare / "data" / "jupyter" / "kernels").mkdir(parents=True)  # the folder, but no spec in it
    with pytest.raises(KernelSpecError, match=r"no kernelspec.*reinstall aifkit"):
        kernels.sources()


def test_broken_kernel_json_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Is a malformed kernel.json named in the error instead of being installed?"""
    (tmp_path / "kernels" / "aifkit").mkdir(parents=True)
    (tmp_path / "kernels" / "aifkit" / "kernel.json").write_text("{not json")
    monkeypatch.setattr(kernels, "kernels_dir", lambda: tmp_path / "kernels")
    with pytest.raises(KernelSpecError, match=r"kernel\.json"):
        kernels.install(prefix=str(tmp_path / "prefix"))
