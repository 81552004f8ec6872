"""Pytest plugin: real local training hubs (JupyterHub, its proxy, formgrader, culler) in tmp.

``make_hub(tmp_path, *, db_url=None, learners=(...), start=True)`` (per test) writes a hub
configuration (profile local, a free port block P..P+3, state and a tiny nbgrader course) and
starts it with ``aifkit.hub.run.start``; every hub it made is stopped at teardown, and then no
process of it may remain. Started as root, the hubs isolate their users (each server runs as the
Unix account ``jupyter-<name>``): their folders are made in ``/tmp/aifkit-hubs-*`` (mode 0711,
removed at teardown), since pytest's ``tmp_path`` is in a folder of mode 0700 those accounts
cannot pass through. ``hub_database_url`` gives a test its own
PostgreSQL database for the hub. configurable-http-proxy comes from PATH, else it is installed
once with npm into pytest's cache folder (``.pytest_cache/d/aifkit-chp``).

Timings (hub start, spawns) are collected in ``TIMINGS`` and printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from hub_client import HubSession
from postgres_fixture import fresh_database

COURSE_ID = "advcourse"  # grading_course.make_course files the gradebook under this course id
INSTRUCTOR = "instructor"
LEARNERS = ("learner1", "learner2")
PORT_RANGE = (20000, 40000)
LEFTOVER_WAIT_S = 15.0
SPAWN_TIMEOUT_S = 180  # generous: CI machines with 2 cores take 20-60 s per server
TIMINGS: dict[str, list[float]] = {}

NBGRADER_CONFIG = """\
\"\"\"The test course as the hub serves it: its id, gradebook and the hub's exchange.\"\"\"

import os

from aifkit.grading.config import configure

c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.db_url = {db_url!r}
c.Exchange.root = os.environ["AIFKIT_EXCHANGE"]
configure(c)
"""


def record(name: str, seconds: float) -> None:
    """Keep a timing for the summary at the end of the run."""
    TIMINGS.setdefault(name, []).append(seconds)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("hub timings (seconds)")
    for name, values in TIMINGS.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        terminalreporter.write_line(
            f"{name}: n={len(values)} min={min(values):.1f} max={max(values):.1f} [{shown}]"
        )


def _free(port: int) -> bool:
    """Can a server listen on 127.0.0.1:port? (SO_REUSEADDR: connections in TIME_WAIT from a
    stopped hub do not count, as they do not for the servers, which set it too.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int = 4) -> int:
    """A port P such that P .. P+size-1 are all free on 127.0.0.1."""
    for _ in range(200):
        port = random.randint(PORT_RANGE[0], PORT_RANGE[1] - size)
        if all(_free(port + i) for i in range(size)):
            return port
    raise RuntimeError(f"no block of {size} free ports in {PORT_RANGE}")


def make_test_course(root: Path, course_id: str = COURSE_ID) -> Path:
    """grading_course's tiny course "adv", plus the nbgrader_config.py the hub's tools read."""
    from grading_course import make_course

    db_url = f"sqlite:///{root / 'gradebook.db'}"
    make_course(root, db_url, course_id=course_id)
    (root / "nbgrader_config.py").write_text(
        NBGRADER_CONFIG.format(root=str(root), course_id=course_id, db_url=db_url),
        encoding="utf-8",
    )
    return root


def hub_processes(markers: Sequence[str]) -> list[tuple[int, str]]:
    """Processes (not this one) whose command line or environment mentions a marker."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = " ".join(proc.environ().values())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(m in cmdline or m in environ for m in markers):
            found.append((proc.pid, cmdline[:200]))
    return found


@dataclass
class LocalHub:
    """A local training hub made by ``make_hub``: where it is, how to log in, stop/restart."""

    config_path: Path
    state: Path
    course_root: Path
    port: int
    n_ports: int = 4  # public, proxy API, hub, then one formgrader per course
    hub: Any = None  # aifkit.hub.run.RunningHub while running
    start_seconds: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ports(self) -> list[int]:
        return [self.port + i for i in range(self.n_ports)]

    @property
    def exchange(self) -> Path:
        return self.state / "exchange"

    @property
    def password_file(self) -> Path:
        return self.state / "secrets" / "passwords.txt"

    @property
    def password(self) -> str:
        return self.password_file.read_text(encoding="utf-8").strip()

    @property
    def log(self) -> str:
        path = self.state / "jupyterhub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def running(self) -> bool:
        return self.hub is not None and self.hub.process.poll() is None

    def session(self, username: str, *, login: bool = True) -> HubSession:
        """A browser session of ``username`` (logged in unless asked not to)."""
        open_python_to_hub_accounts()  # again: another test session may have closed it
        user = HubSession(self.url, username, self.password)
        if login:
            user.login()
        return user

    def start(self) -> None:
        from aifkit.hub import run

        began = time.monotonic()
        self.hub = run.start(self.config_path, announce=lambda line: None)
        seconds = time.monotonic() - began
        self.start_seconds.append(seconds)
        record("hub start", seconds)

    def stop(self) -> int | None:
        """Stop the hub (and all it started); then nothing of it may remain."""
        code = None
        if self.hub is not None:
            began = time.monotonic()
            code = self.hub.stop()
            record("hub stop", time.monotonic() - began)
            self.hub = None
        self.assert_no_leftovers()
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def markers(self) -> list[str]:
        """What the command line or environment of every process of this hub mentions."""
        return [str(self.state), *(f"127.0.0.1:{p}" for p in self.ports)]

    def leftovers(self) -> list[str]:
        found = [f"{pid}: {cmd}" for pid, cmd in hub_processes(self.markers)]
        found += [f"port {p} still taken" for p in self.ports if not _free(p)]
        return found

    def leftover_pids(self) -> list[int]:
        return [pid for pid, _ in hub_processes(self.markers)]

    def assert_no_leftovers(self, wait_s: float = LEFTOVER_WAIT_S) -> None:
        """Nothing of this hub may run or listen any more (waits ``wait_s`` for stragglers).

        Leftovers are killed (by their pid) before the assertion fails, so that one broken
        test does not leave processes behind for the next.
        """
        deadline = time.monotonic() + wait_s
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.3)
        if left:
            for pid in self.leftover_pids():
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
        assert not left, f"processes of the hub at {self.state} remain: {left}"


@pytest.fixture(scope="session")
def chp_on_path(request: pytest.FixtureRequest) -> Iterator[None]:
    """configurable-http-proxy on PATH for this session (npm install once, cached)."""
    import shutil

    if shutil.which("configurable-http-proxy"):
        yield
        return
    if shutil.which("npm") is None:
        pytest.skip("npm is missing: `apt-get install npm` (for configurable-http-proxy)")
    from aifkit.hub import run
    from aifkit.hub.schema import HubConfig

    cache = Path(request.config.cache.mkdir("aifkit-chp"))
    bin_dir = run.proxy_bin(
        HubConfig(profile="local", base=cache, state_dir=str(cache), instructors=("x",)),
        announce=lambda line: None,
    )
    saved = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{saved}"
    try:
        yield
    finally:
        os.environ["PATH"] = saved


class HubFactory:
    """Makes hubs (``factory(tmp_path, ...)``) and stops every one of them at ``close()``."""

    def __init__(self) -> None:
        self.hubs: list[LocalHub] = []
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        """This factory's folder of hubs, reachable by the hub's Unix accounts (0711)."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="aifkit-hubs-"))
            self._root.chmod(0o711)
        return self._root

    def __call__(
        self,
        tmp_path: Path,
        *,
        db_url: str | None = None,
        learners: Sequence[str] = LEARNERS,
        start: bool = True,
        courses: Sequence[dict[str, Any]] = (),
        **settings: Any,
    ) -> LocalHub:
        """Write a hub configuration in ``tmp_path`` (and start the hub unless ``start=False``).

        ``settings`` are further keys of the YAML file (see aifkit.hub.schema.HubConfig).
        ``courses`` (``id``, ``instructors``, ``learners``) replace the one test course: each
        gets the test course "adv" in a folder of its own.
        """
        folder = self.root / f"hub{len(self.hubs)}"  # tmp_path: kept for the callers' own files
        state, course = folder / "state", folder / "course"
        course.mkdir(parents=True)
        make_test_course(course)
        port = free_port_block(4 + max(1, len(courses)))
        config = {
            "profile": "local",
            "bind_url": f"http://127.0.0.1:{port}",
            "state_dir": str(state),
            "auth": "shared-password",
            "instructors": [INSTRUCTOR],
            "learners": list(learners),
            "spawner": "local",
            "start_timeout": SPAWN_TIMEOUT_S,
            "course_id": COURSE_ID,
            "course_root": str(course),
            "release": ["adv"],
            "culler_timeout": 3600,
            "culler_every": 300,
            **({"db_url": db_url} if db_url else {}),
            **settings,
        }
        if courses:
            for key in ("instructors", "learners", "course_id", "course_root", "release"):
                config.pop(key)
            config["courses"] = []
            for entry in courses:
                root = folder / str(entry["id"])
                root.mkdir()
                make_test_course(root, str(entry["id"]))
                config["courses"].append({**entry, "root": str(root), "release": ["adv"]})
        config_path = folder / "config.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        open_python_to_hub_accounts()
        hub = LocalHub(
            config_path=config_path,
            state=state,
            course_root=course,
            port=port,
            n_ports=3 + max(1, len(courses)),
        )
        self.hubs.append(hub)
        if start:
            hub.start()
        return hub

    def close(self) -> None:
        """Stop every hub made here; fail (after killing them) if any process remains."""
        problems = []
        for hub in reversed(self.hubs):
            try:
                hub.stop()
            except Exception as error:  # stop the others all the same
                problems.append(f"{type(error).__name__}: {error}")
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        assert not problems, "\n".join(problems)


def _folders_closed_to_others(paths: Sequence[Path]) -> list[Path]:
    """The folders on the way to ``paths`` that other users cannot pass through (no o+x)."""
    closed: dict[Path, None] = {}
    for path in paths:
        for folder in reversed(path.parents):
            if not folder.stat().st_mode & stat.S_IXOTH:
                closed[folder] = None
    return list(closed)


OPENED: dict[Path, int] = {}  # folders this session opened (o+x), with their modes before


def open_python_to_hub_accounts() -> None:
    """o+x on every folder on the way to this Python that others cannot pass (root only).

    Called at each hub start too: another test session on this machine that opened the same
    folder (/root) may close it again when it ends.
    """
    if os.geteuid() != 0:
        return
    needed = [Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix)]
    for folder in _folders_closed_to_others(needed):
        mode = folder.stat().st_mode
        OPENED.setdefault(folder, stat.S_IMODE(mode))
        folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


@pytest.fixture(scope="session")
def python_reachable_by_hub_accounts() -> Iterator[None]:
    """The hub's accounts must run this Python: o+x on its folders for the session, then restored.

    The interpreter of this machine is in /root/.pyenv (/root is 0700); other test runs share
    /root, so the bit is taken back at the end, whatever happened.
    """
    try:
        open_python_to_hub_accounts()
        yield
    finally:
        for folder, mode in OPENED.items():
            folder.chmod(mode)
        OPENED.clear()


@pytest.fixture
def make_hub(chp_on_path: None, python_reachable_by_hub_accounts: None) -> Iterator[HubFactory]:
    """Factory: ``make_hub(tmp_path, *, db_url=None, learners=LEARNERS, start=True)``."""
    factory = HubFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def make_module_hub(
    chp_on_path: None, python_reachable_by_hub_accounts: None
) -> Iterator[HubFactory]:
    """The same factory for hubs shared by the tests of a module (stopped after the module)."""
    factory = HubFactory()
    yield factory
    factory.close()


@pytest.fixture
def hub_database_url(postgres_server: Any) -> Iterator[str]:
    """A fresh PostgreSQL database for one hub (role aifkit owns it), dropped afterwards.

    Request it before ``make_hub`` so that the hub is stopped before its database goes.
    """
    with fresh_database(postgres_server, "aifkit_hub") as url:
        yield url
