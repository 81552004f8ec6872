"""A package that installs anywhere: aifkit from its wheel, in a fresh venv, far from any checkout.

The ``slow`` tests share one install (module fixture ``wheel_venv``): the wheel is built from a
copy of the sources (pyproject.toml, README.md, src/) so that the build writes nothing into the
repository, pip installs it into a venv made in tmp_path, and every command runs there with its
working directory in tmp_path and no JUPYTER_PATH, PYTHONPATH or repository on any path.

To keep CI time sane the third-party dependencies come from this (dev) venv through a .pth file,
written after pip has installed the wheel (so pip never sees the dev venv's editable aifkit). A
.pth line only appends a folder to sys.path: the .pth files inside it, the editable install's
among them, are not run. What pip would have installed with the dependencies outside
site-packages is linked in: their Jupyter data and settings (nbconvert's templates, JupyterLab,
the server extensions' switches; not kernels/) and the console scripts the commands call by name
(alembic, which nbgrader runs). aifkit itself comes from the wheel: checked in the venv's Python,
and for every Python process of the hub.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from builders import COURSES, REPO
from hub_fixture import (
    COURSE_ID,
    INSTRUCTOR,
    NBGRADER_CONFIG,
    LocalHub,
    free_port_block,
    record,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import aifkit

NOTEBOOK = "a02-anatomy"  # reads facts.yml and checksummed samples: package data
DEPENDENCY_SCRIPTS = ("alembic",)
HUB_UP_TIMEOUT_S = 180.0
HUB_STOP_TIMEOUT_S = 90.0
# What a user's shell may carry that would point the fresh install back at this checkout.
CLEARED = ("PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR")
CLEARED += ("JUPYTER_CONFIG_PATH", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")


@dataclass(frozen=True)
class WheelVenv:
    """A fresh venv with aifkit installed from its wheel, and how to run commands in it."""

    root: Path  # the venv
    work: Path  # the working directory of every command: outside the repository
    env: dict[str, str]

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        began = time.monotonic()
        done = subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        record(f"wheel: {' '.join(argv[:2])}", time.monotonic() - began)
        return done


def _copy_sources(target: Path) -> Path:
    """What the wheel is built from, copied: the build's own build/ and egg-info stay here."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "src", target / "src", ignore=ignore)
    return target


def _dependency_files(venv: Path) -> None:
    """The Jupyter data and settings of the dependencies, and the scripts run by name."""
    for folder in ("share/jupyter", "etc/jupyter"):
        source, target = Path(sys.prefix) / folder, venv / folder
        target.mkdir(parents=True)
        for entry in source.iterdir() if source.is_dir() else []:
            if entry.name != "kernels":  # the fresh venv's own: `aifkit kernels install`
                (target / entry.name).symlink_to(entry)
    wanted = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")}
    for name in DEPENDENCY_SCRIPTS:
        entry = wanted[name]
        script = venv / "bin" / name
        script.write_text(
            f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {entry.module} import {entry.attr}\n"
            f"sys.exit({entry.attr}())\n",
            encoding="utf-8",
        )
        script.chmod(0o755)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    """Build the wheel, install it into a fresh venv in tmp, dependencies from this venv."""
    base = tmp_path_factory.mktemp("wheel")
    assert not base.is_relative_to(REPO), "the install must live outside the repository"
    began = time.monotonic()
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(dist), str(_copy_sources(base / "src"))],
        cwd=base, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("aifkit-*.whl")
    record("wheel: build", time.monotonic() - began)

    began = time.monotonic()
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    dev_paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "aifkit_test_dependencies.pth").write_text("\n".join(dev_paths) + "\n")
    _dependency_files(venv)
    record("wheel: venv and install", time.monotonic() - began)

    work, home = base / "work", base / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("AIFKIT_")}
    env.update(HOME=str(home), VIRTUAL_ENV=str(venv), PATH=_path(venv / "bin"))
    return WheelVenv(root=venv, work=work, env=env)


def _path(*first: Path) -> str:
    """PATH: the given folders, then the system's; never this dev venv's bin."""
    return os.pathsep.join([*(str(p) for p in first), "/usr/local/bin", "/usr/bin", "/bin"])


# ---------------------------------------------------------------- the installed package


@pytest.mark.slow
def test_aifkit_comes_from_the_wheel(wheel_venv: WheelVenv) -> None:
    """Is the aifkit the fresh venv imports the wheel's, with no editable finder or src/ path?"""
    probe = (
        "import aifkit, importlib.metadata, json, sys\n"
        "dist = importlib.metadata.distribution('aifkit')\n"
        "print(json.dumps({'file': aifkit.__file__, 'path': sys.path,\n"
        "    'finders': [type(f).__module__ + '.' + type(f).__name__ for f in sys.meta_path],\n"
        "    'direct_url': json.loads(dist.read_text('direct_url.json') or '{}'),\n"
        "    'scripts': sorted(e.name for e in dist.entry_points)}))\n"
    )
    done = wheel_venv.run("python", "-c", probe)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert Path(seen["file"]).is_relative_to(wheel_venv.root), seen["file"]
    assert not any("editable" in finder.lower() for finder in seen["finders"]), seen["finders"]
    assert str(REPO / "src") not in seen["path"] and str(REPO) not in seen["path"]
    assert "archive_info" in seen["direct_url"], seen["direct_url"]  # a wheel, not a folder
    assert seen["scripts"] == ["aifkit", "aifkit-singleuser"]
    assert Path(aifkit.__file__).is_relative_to(REPO), "this process still tests the checkout"


@pytest.mark.slow
def test_kernels_install_and_doctor(wheel_venv: WheelVenv) -> None:
    """Does `kernels install --sys-prefix` put kernel.json in the venv, and doctor see it there?"""
    done = wheel_venv.run("aifkit", "kernels", "install", "--sys-prefix")
    assert done.returncode == 0, done.stderr
    installed = wheel_venv.root / "share" / "jupyter" / "kernels" / "aifkit"
    assert f"installed kernels into {installed.parent}" in done.stdout
    spec = json.loads((installed / "kernel.json").read_text())
    shipped = REPO / "src" / "aifkit" / "data" / "jupyter" / "kernels" / "aifkit" / "kernel.json"
    assert spec == json.loads(shipped.read_text())

    done = wheel_venv.run("aifkit", "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    (kernel_line,) = [line for line in done.stdout.splitlines() if "aifkit at" in line]
    # the value column is clipped at doctor's width: the venv's own kernelspec, current
    assert f"aifkit at {wheel_venv.root}/share/jupyter/" in kernel_line, kernel_line
    assert kernel_line.split()[-1] == "ok", kernel_line


@pytest.mark.slow
def test_validate_one_course_notebook(wheel_venv: WheelVenv) -> None:
    """Does `aifkit validate` run a course notebook copied out of the repository, and pass it?"""
    course = wheel_venv.work / "course"
    shutil.copytree(COURSES / NOTEBOOK, course / NOTEBOOK)
    done = wheel_venv.run(
        "aifkit", "validate", f"course/{NOTEBOOK}", "--tier", "cpu-tiny",
        "--report", "report", "--state", "report/state.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((wheel_venv.work / "report" / "report.json").read_text())
    assert "1 passed" in done.stdout, done.stdout[-2000:]
    assert NOTEBOOK in json.dumps(report)


# ---------------------------------------------------------------- the hub


def _python_processes(pid: int) -> list[list[str]]:
    """Command lines of the Python processes below ``pid`` (the hub, its services)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if cmdline and "python" in Path(cmdline[0]).name:
            found.append(cmdline)
    return found


def _wait_healthy(url: str, process: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + HUB_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, output.read_text(errors="replace")[-3000:]
        try:
            with urllib.request.urlopen(url + "hub/health", timeout=2) as reply:
                if reply.status == 200 and "Ctrl-C stops the hub" in output.read_text():
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no healthy hub at {url}:\n{output.read_text(errors='replace')[-3000:]}")


@pytest.mark.slow
def test_hub_run_starts_and_stops(wheel_venv: WheelVenv, chp_on_path: None) -> None:
    """Does `aifkit hub run` start a hub from the wheel alone, and Ctrl-C leave nothing behind?

    The config sits in its own folder with relative paths (taken from that folder, not from the
    working directory); the hub's own settings and the formgrader's come from package data.
    """
    proxy = shutil.which("configurable-http-proxy")
    assert proxy, "chp_on_path puts configurable-http-proxy on PATH"
    env = {**wheel_venv.env, "PATH": _path(wheel_venv.bin, Path(proxy).parent)}
    folder = wheel_venv.work.parent / "hub"
    course = folder / "course"  # no assignment: the formgrader's settings, the gradebook
    (course / "source").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        NBGRADER_CONFIG.format(
            root=str(course), course_id=COURSE_ID, db_url=f"sqlite:///{course / 'gradebook.db'}"
        ),
        encoding="utf-8",
    )
    port = free_port_block()
    config = {
        "profile": "local",
        "bind_url": f"http://127.0.0.1:{port}",
        "state_dir": "state",
        "course_root": "course",
        "auth": "shared-password",
        "instructors": [INSTRUCTOR],
        "learners": ["learner1"],
        "spawner": "local",
        "isolation": "none",  # the wheel's venv is in a folder the hub's accounts cannot reach
        "start_timeout": 180,
        "course_id": COURSE_ID,
        "release": [],  # nbgrader's release is tested with the hub; here: that it starts
    }
    config_path = folder / "config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    hub = LocalHub(config_path=config_path, state=folder / "state", course_root=folder, port=port)
    output = wheel_venv.work / "hub-run.log"
    began = time.monotonic()
    with open(output, "wb") as stream:
        process = subprocess.Popen(
            [str(wheel_venv.bin / "aifkit"), "hub", "run", "--config", "../hub/config.yml"],
            cwd=wheel_venv.work,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(hub.url, process, output)
        record("wheel: hub start", time.monotonic() - began)
        log = folder / "state" / "jupyterhub.log"
        assert log.is_file(), "state_dir is taken from the config's folder"
        problems = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if line.startswith("[E ") or "failed loading" in line
        ]
        assert not problems, problems  # e.g. the formgrader without nbconvert's templates
        pythons = _python_processes(process.pid)
        assert any("jupyterhub" in cmd for cmd in pythons), pythons  # the hub
        assert any("aifkit-singleuser" in " ".join(cmd) for cmd in pythons), pythons  # formgrader
        for cmdline in pythons:
            assert Path(cmdline[0]).is_relative_to(wheel_venv.root), cmdline
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(HUB_STOP_TIMEOUT_S)
        record("wheel: hub stop", time.monotonic() - began)
        assert code == 0, output.read_text(errors="replace")[-3000:]
        assert "stopped." in output.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        hub.assert_no_leftovers()


# ---------------------------------------------------------------- the [hub] extra


def _without_jupyterhub(*code: str) -> subprocess.CompletedProcess[str]:
    """Run Python lines in this venv with JupyterHub made unimportable (as without [hub])."""
    return subprocess.run(
        [sys.executable, "-c", "\n".join(["import sys", "sys.modules['jupyterhub'] = None", *code])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_hub_commands_without_jupyterhub_name_the_extra(tmp_path: Path) -> None:
    """Without JupyterHub, do `aifkit hub run/check` say to install aifkit[hub], and the core work?"""
    config = tmp_path / "config.yml"
    config.write_text("profile: local\ninstructors: [i]\n")
    for argv in (["hub", "run", "--config", str(config)], ["hub", "check", str(config)]):
        done = _without_jupyterhub(
            "from aifkit.cli import main", f"sys.argv = ['aifkit', *{argv!r}]", "main()"
        )
        assert done.returncode == 2, done.stderr
        assert "pip install 'aifkit[hub]'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    done = _without_jupyterhub(
        "from aifkit.cli import main", "sys.argv = ['aifkit', 'kernels', 'list']", "main()"
    )
    assert done.returncode == 0 and "aifkit" in done.stdout, done.stderr


def test_singleuser_without_jupyterhub_names_the_extra() -> None:
    """Does the aifkit-singleuser script, without JupyterHub, say what to install?"""
    done = _without_jupyterhub("from aifkit.hub.singleuser import main", "sys.exit(main())")
    assert done.returncode == 2, done.stderr
    assert "aifkit-singleuser needs JupyterHub" in done.stderr
    assert "pip install 'aifkit[hub]'" in done.stderr


# ---------------------------------------------------------------- declared dependencies


def _imported_modules(package: Path) -> dict[str, set[str]]:
    """Top-level third-party modules imported anywhere in ``package`` (lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("aifkit", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(package)))
    return found


def test_every_import_is_a_declared_dependency() -> None:
    """Is each module aifkit imports declared: in the dependencies, or under aifkit/hub/ in [hub]?"""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in requirements}

    core = names(project["dependencies"])
    hub = names(project["optional-dependencies"]["hub"])
    owners = importlib.metadata.packages_distributions()
    undeclared = []
    for module, files in sorted(_imported_modules(REPO / "src" / "aifkit").items()):
        dists = {canonicalize_name(d) for d in owners.get(module, [module])}
        hub_only = all(f.startswith("hub/") for f in files)
        if not dists & (core | hub if hub_only else core):
            undeclared.append(f"{module} ({', '.join(sorted(files))})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
