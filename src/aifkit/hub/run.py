"""Start the local training hub (`make hub`) and stop everything it started on Ctrl-C.

First start: secrets (mode 600), the configurable-http-proxy from npm when it is not on PATH,
the course's assignments released to the exchange. Then JupyterHub runs in its own process
group; on Ctrl-C (or SIGTERM) it is asked to stop (it stops the proxy, the services and every
server), and whatever is left of the group is killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from aifkit import processes, resources
from aifkit.hub import isolation, secrets
from aifkit.hub.schema import CourseEntry, HubConfig, HubConfigError, load

CHP_VERSION = "5.3.0"
HEALTH_TIMEOUT_S = 120.0
STOP_GRACE_S = 30.0  # then whatever JupyterHub has not stopped yet is killed


def proxy_bin(config: HubConfig, announce: Callable[[str], None] = print) -> Path:
    """configurable-http-proxy: from PATH, else installed with npm into the state folder."""
    found = shutil.which("configurable-http-proxy")
    if found:
        return Path(found).parent
    prefix = config.state / "npm"
    local = prefix / "node_modules" / ".bin"
    if not (local / "configurable-http-proxy").exists():
        if shutil.which("npm") is None:
            raise HubConfigError(
                "npm is missing: `apt-get install npm` (for configurable-http-proxy)"
            )
        announce(f"installing configurable-http-proxy@{CHP_VERSION} with npm into {prefix}")
        done = subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
             f"configurable-http-proxy@{CHP_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise HubConfigError(
                f"npm install configurable-http-proxy failed:\n{done.stderr[-2000:]}"
            )
    return local


def course_environment(config: HubConfig, course: CourseEntry) -> dict[str, str]:
    return {"AIFKIT_EXCHANGE": str(config.exchange_root), "AIFKIT_COURSE_ID": course.id}


def release_course(config: HubConfig, announce: Callable[[str], None] = print) -> list[str]:
    """Release every course's configured assignments not in the exchange yet; return them."""
    return [
        f"{course.id}/{assignment}"
        for course in config.course_list
        for assignment in _release_one(config, course, announce)
    ]


@contextlib.contextmanager
def _course_environment(config: HubConfig, entry: CourseEntry) -> Iterator[None]:
    """The course's variables set while its nbgrader_config.py is read (it may read them)."""
    environment = course_environment(config, entry)
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_course(config: HubConfig, entry: CourseEntry) -> Any:
    """The course as nbgrader sees it (its id and the hub's exchange set)."""
    with _course_environment(config, entry):
        return _load_course(config, entry)


def _load_course(config: HubConfig, entry: CourseEntry) -> Any:
    from traitlets.config import Config

    from aifkit.grading.course import Course

    overrides = Config()
    overrides.CourseDirectory.course_id = entry.id
    overrides.Exchange.root = str(config.exchange_root)
    return Course.load(config.course_path(entry), overrides)


def _release_one(
    config: HubConfig, entry: CourseEntry, announce: Callable[[str], None]
) -> list[str]:
    with _course_environment(config, entry):
        return _release(config, entry, _load_course(config, entry), announce)


def _release(
    config: HubConfig, entry: CourseEntry, course: Any, announce: Callable[[str], None]
) -> list[str]:
    from aifkit import catalog
    from aifkit.grading import workflow

    if entry.release == "all":
        source = config.course_path(entry) / course.coursedir.source_directory
        wanted = [a.id for a in catalog.load(source).assignments()]
    else:
        wanted = list(entry.release)
    with course.gradebook() as gb:  # formgrader lists learners by name, not "None, None"
        for name in entry.learners:
            gb.update_or_create_student(name)
    outbound = config.exchange_root / entry.id / "outbound"
    todo = [a for a in wanted if not (outbound / a).is_dir()]
    for number, assignment in enumerate(todo, 1):
        announce(f"releasing {entry.id}/{assignment} ({number}/{len(todo)})")
        workflow.release(course, assignment)
    return todo


@dataclass
class RunningHub:
    """A running hub process and how to reach it."""

    process: subprocess.Popen[bytes]
    config: HubConfig
    log: Path
    created: list[str]  # secrets made at this start: the password is shown only then

    @property
    def url(self) -> str:
        return self.config.bind_url.rstrip("/") + "/"

    def wait_healthy(self, timeout_s: float | None = None) -> None:
        """Wait for /hub/health; the hub answers only once the formgrader service is up."""
        timeout_s = timeout_s or max(HEALTH_TIMEOUT_S, self.config.start_timeout + 60.0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HubConfigError(f"the hub exited ({self.process.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "hub/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise HubConfigError(f"the hub did not answer within {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def descendants(self) -> list[psutil.Process]:
        """The proxy, services and servers: JupyterHub starts each in a session of its own."""
        return processes.descendants(self.process.pid)

    def stop(self) -> int:
        """Ask JupyterHub to stop (it stops proxy, services, servers), then kill what is left."""
        started = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_GRACE_S)
        processes.kill_group(self.process.pid)
        # the proxy of a hub that died before it could stop it
        proxy = processes.from_pid_file(
            self.config.state / "proxy.pid", command_contains="configurable-http-proxy"
        )
        processes.terminate(started + ([proxy] if proxy else []))
        return self.process.wait()


def _default_interrupt_signals() -> None:
    """In the hub's process, before exec: SIGINT and SIGQUIT back to their default actions.

    A shell starts a background command (``make hub &`` in a script, ``nohup ... &``) with both
    ignored, and the ignoring is inherited through exec. JupyterHub stops its services and the
    learners' servers with SIGINT first and waits 10 s for each before SIGTERM; with SIGINT
    ignored every stop ran into the 30 s grace and was killed (seen in CI-like runs).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def start(config_path: Path, announce: Callable[[str], None] = print) -> RunningHub:
    """Set up what is missing and start JupyterHub; returns once it answers /hub/health."""
    config = load(config_path)
    isolation.require(config)  # refused before anything is made
    created = secrets.ensure(config)
    for made in created:
        announce(f"created {made} (mode 600)")
    config.exchange_root.mkdir(parents=True, exist_ok=True)
    (config.state / "home").mkdir(parents=True, exist_ok=True)
    chp = proxy_bin(config, announce)
    release_course(config, announce)
    isolation.prepare(config, announce)
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "AIFKIT_EXCHANGE": str(config.exchange_root),
        "PATH": os.pathsep.join([str(venv_bin), str(chp), os.environ.get("PATH", "")]),
        "AIFKIT_HUB_CONFIG": str(Path(config_path).resolve()),
    }
    log = config.state / "jupyterhub.log"
    with open(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as stream:
        process = subprocess.Popen(
            # this Python's JupyterHub (no script on PATH needed) and aifkit's one config file
            [sys.executable, "-m", "jupyterhub", "-f", str(resources.hub_config_file())],
            cwd=config.state,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C here stops all of it
            preexec_fn=_default_interrupt_signals,  # two signal() calls, nothing else
        )
    hub = RunningHub(process, config, log, created)
    try:
        hub.wait_healthy()
    except BaseException:
        hub.stop()
        raise
    return hub


def _never_fails(announce: Callable[[str], None]) -> Callable[[str], None]:
    """``announce`` that gives up quietly when its output is gone.

    ``make hub 2>&1 | tee hub.log`` stopped with Ctrl-C: the terminal interrupts tee too, which
    exits at once, and every later print raises BrokenPipeError. Stopping must not depend on it.
    """

    def say(text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a broken pipe, a closed stream
            announce(text)

    return say


def serve(config_path: Path, announce: Callable[[str], None] = print) -> int:
    """`make hub`: start, say how to log in, wait for Ctrl-C, stop everything."""
    say = _never_fails(announce)
    hub = start(config_path, say)
    try:
        return _announce_and_wait(hub, say)
    finally:  # Ctrl-C at any moment, even before the handlers below, stops everything
        say("stopping the hub ...")
        hub.stop()
        say("stopped.")


def _announce_and_wait(hub: RunningHub, announce: Callable[[str], None]) -> int:
    config = hub.config
    announce(f"\nThe training hub is up: {hub.url}")
    if config.auth == "shared-password":
        password_file = config.path(config.password_file)
        for course in config.course_list:
            prefix = f"  {course.id}: " if len(config.course_list) > 1 else "  "
            announce(f"{prefix}instructors: {', '.join(course.instructors)}")
            announce(f"{prefix}learners:    {', '.join(course.learners)}")
        if any(made.startswith("password") for made in hub.created):  # shown once, at creation
            announce(
                f"  password:    {secrets.read_private(password_file)}  (saved in {password_file})"
            )
        else:
            announce(f"  password:    in {password_file} (mode 600)")
    for course in config.course_list:
        announce(f"  formgrader:  {hub.url}services/{course.id}/ (its instructors only)")
    announce(f"  log:         {hub.log}\nCtrl-C stops the hub and everything it started.")
    stopping = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping["now"] and hub.process.poll() is None:
        time.sleep(0.5)
    return 0 if stopping["now"] else (hub.process.returncode or 0)
