"""The local training hub for real: JupyterHub, configurable-http-proxy, the formgrader service.

Learners log in with the shared password, spawn local servers, run code through the kernel
API, fetch and submit the released assignment through nbgrader's server extension; the
instructor collects and autogrades it. Access between users is checked on the wire, state is
checked across restarts (SQLite and PostgreSQL), and `aifkit hub run` stops cleanly on Ctrl-C.
Every hub is stopped at teardown and then no process of it may remain (see hub_fixture).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import nbformat
import psutil
import pytest
import requests
from grading_course import ASSIGNMENT, AUTOGRADED_POINTS, gradebook_scores, with_answers
from hub_client import HubSession
from hub_fixture import COURSE_ID, SPAWN_TIMEOUT_S, HubFactory, LocalHub, record

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("npm") is None and shutil.which("configurable-http-proxy") is None,
        reason="needs npm (apt-get install npm) to install configurable-http-proxy",
    ),
]
BIN = Path(sys.executable).parent
FORMGRADER = f"services/{COURSE_ID}/formgrader"
SQUARE = "def square(x): return x * x"
MEAN = "def mean(xs): return sum(xs) / len(xs)"
LOCKED_FOR_LEARNERS = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:course-list",
)


@pytest.fixture(scope="module")
def shared_hub(make_module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> LocalHub:
    """One hub (SQLite) for the learner/instructor tests of this module."""
    return make_module_hub(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def learner1(shared_hub: LocalHub) -> HubSession:
    return shared_hub.session("learner1")


def _ensure_server(user: HubSession) -> None:
    """Start the user's server unless it runs (tests share it); record the spawn time."""
    if not user.user_model().get("servers", {}).get("", {}).get("ready"):
        record("spawn", user.start_server(timeout=SPAWN_TIMEOUT_S))


def _users_in_database(db_url: str) -> dict[str, set[str]]:
    """Users and groups (with members) as the hub's database has them."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as db:
            users = {row[0] for row in db.execute(text("SELECT name FROM users"))}
            members = db.execute(
                text(
                    "SELECT g.name, u.name FROM groups g"
                    " JOIN user_group_map m ON m.group_id = g.id"
                    " JOIN users u ON u.id = m.user_id"
                )
            )
            groups: dict[str, set[str]] = {}
            for group, user in members:
                groups.setdefault(group, set()).add(user)
    finally:
        engine.dispose()
    return {"users": users, **{f"group:{g}": m for g, m in groups.items()}}


def _assert_denied(chain: list[requests.Response], client_id: str) -> None:
    """Redirected (302 only) to the hub's OAuth authorize page, which answers 403."""
    *hops, last = chain
    assert all(r.status_code == 302 for r in hops), [(r.status_code, r.url) for r in chain]
    assert last.status_code == 403, [(r.status_code, r.url) for r in chain]
    where = urlparse(last.url)
    assert where.path == "/hub/api/oauth2/authorize", last.url
    assert parse_qs(where.query)["client_id"] == [client_id]
    assert "You do not have permission to access" in last.text


# -- a. spawn and run code ------------------------------------------------------------------


def test_learner_spawns_runs_code_and_stops(learner1: HubSession) -> None:
    _ensure_server(learner1)
    assert learner1.run_cell("print(6*7)").strip() == "42"
    code = "import os; print(os.environ['JUPYTERHUB_USER'])"
    assert learner1.run_cell(code).strip() == "learner1"
    learner1.stop_server()
    assert learner1.user_model()["servers"] == {}


# -- b. who reaches what --------------------------------------------------------------------


def test_learners_are_kept_out_of_the_formgrader_and_other_servers(
    shared_hub: LocalHub, learner1: HubSession
) -> None:
    learner2 = shared_hub.session("learner2")
    _ensure_server(learner2)

    _assert_denied(learner1.follow(FORMGRADER), client_id=f"service-{COURSE_ID}")
    _assert_denied(learner1.follow("user/learner2/"), client_id="jupyterhub-user-learner2")
    assert learner1.get("user/learner2/api/contents").status_code == 403  # no cookie there

    instructor = shared_hub.session("instructor")
    chain = instructor.follow(FORMGRADER)
    page = chain[-1]
    assert page.status_code == 200, [(r.status_code, r.url) for r in chain]
    assert urlparse(page.url).path == f"/{FORMGRADER}/manage_assignments"
    assert "<title>nbgrader formgrade</title>" in page.text

    learner2.stop_server()


# -- c. the learner's lab -------------------------------------------------------------------


def test_learner_lab_has_the_instructor_tools_disabled_and_locked(learner1: HubSession) -> None:
    _ensure_server(learner1)
    chain = learner1.follow("user/learner1/lab")
    page = chain[-1]
    assert page.status_code == 200, [(r.status_code, r.url) for r in chain]
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
        page.text,
        re.S,
    )
    assert found, "no page config in the lab page"
    config = json.loads(found.group(1))
    for plugin in LOCKED_FOR_LEARNERS:
        assert plugin in config["disabledExtensions"], config["disabledExtensions"]
        assert plugin in config["lockedExtensions"], config["lockedExtensions"]
    assert "@jupyter/nbgrader:assignment-list" not in config["disabledExtensions"]
    # the server extension is off too: no formgrader route on a learner's server
    assert learner1.get("user/learner1/formgrader").status_code == 404
    assert learner1.server_api("GET", "formgrader/api/assignments").status_code == 404


# -- d. fetch, answer, submit; collect and autograde ---------------------------------------


def _assignment_action(user: HubSession, action: str) -> list[dict[str, object]]:
    """nbgrader's assignment_list REST API (what the lab extension calls)."""
    reply = user.server_api(
        "POST",
        f"assignments/{action}",
        data={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT},
    )
    assert reply.status_code == 200, reply.text[:1000]
    listing = reply.json()
    assert listing["success"], listing
    value: list[dict[str, object]] = listing["value"]
    return value


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="autograde needs bubblewrap")
def test_learner_submits_through_the_hub_and_the_instructor_autogrades(
    shared_hub: LocalHub, learner1: HubSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ensure_server(learner1)
    listed = learner1.server_api("GET", "assignments", params={"course_id": COURSE_ID}).json()
    assert [(a["assignment_id"], a["status"]) for a in listed["value"]] == [
        (ASSIGNMENT, "released")
    ], listed

    fetched = _assignment_action(learner1, "fetch")
    statuses = {(a["assignment_id"], a["status"]) for a in fetched}
    assert (ASSIGNMENT, "fetched") in statuses, (fetched, shared_hub.log[-3000:])
    home = shared_hub.state / "home" / "learner1"
    notebook = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert notebook.is_file(), sorted(str(p) for p in home.rglob("*"))

    # the learner edits the answer cells (as the lab would save them)
    nb = with_answers(nbformat.read(str(notebook), as_version=4), square=SQUARE, mean=MEAN)
    nbformat.write(nb, str(notebook))

    submitted = _assignment_action(learner1, "submit")
    assert any(a["status"] == "submitted" for a in submitted), submitted
    inbound = sorted(p.name for p in (shared_hub.exchange / COURSE_ID / "inbound").iterdir())
    assert len(inbound) == 1 and inbound[0].startswith(f"learner1+{ASSIGNMENT}+"), inbound

    env = {**os.environ, "AIFKIT_EXCHANGE": str(shared_hub.exchange)}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    root = str(shared_hub.course_root)
    for step in ("collect", "autograde"):
        done = subprocess.run(
            [str(BIN / "aifkit"), "grade", step, ASSIGNMENT, "--course", root],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=root,
        )
        assert done.returncode == 0, f"{step}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "learner1" in done.stdout and "5/5" in done.stdout, done.stdout

    from aifkit.grading.course import Course

    monkeypatch.setenv("AIFKIT_EXCHANGE", str(shared_hub.exchange))  # the course config reads it
    assert gradebook_scores(Course.load(shared_hub.course_root)) == {"learner1": AUTOGRADED_POINTS}


# -- e./f. restarts keep users, groups and secrets ------------------------------------------


def _restart_keeps_users(hub: LocalHub, db_url: str) -> None:
    learner = hub.session("learner1")
    before = learner.user_model()
    _ensure_server(learner)
    secrets = {p.name: p.read_text() for p in (hub.state / "secrets").iterdir()}
    expected = {
        "users": {"instructor", "learner1", "learner2"},
        "group:instructors": {"instructor"},
        "group:learners": {"learner1", "learner2"},
        f"group:formgrade-{COURSE_ID}": {"instructor"},  # nbgrader's names for the course
        f"group:nbgrader-{COURSE_ID}": {"learner1", "learner2"},
    }
    assert _users_in_database(db_url) == expected

    hub.restart()

    assert {p.name: p.read_text() for p in (hub.state / "secrets").iterdir()} == secrets
    assert _users_in_database(db_url) == expected
    # the browser session from before the restart is still valid (same cookie secret, same db)
    after = learner.user_model()
    assert after["created"] == before["created"], "the user was created again"
    assert sorted(after["groups"]) == ["learners", f"nbgrader-{COURSE_ID}"]
    # the local profile sets cleanup_servers: servers stop with the hub and are not resumed
    assert after["servers"] == {}
    # listing all users needs an admin; the local profile has none
    assert learner.api("GET", "users").status_code == 403

    again = hub.session("learner1")  # a fresh login with the unchanged password
    assert again.user_model()["created"] == before["created"]
    assert sorted(hub.session("instructor").user_model()["groups"]) == [
        f"formgrade-{COURSE_ID}",
        "instructors",
    ]
    _ensure_server(again)
    assert again.run_cell("print('back')").strip() == "back"
    again.stop_server()


def test_users_and_secrets_survive_a_restart(make_hub: HubFactory, tmp_path: Path) -> None:
    hub = make_hub(tmp_path)
    _restart_keeps_users(hub, f"sqlite:///{hub.state / 'jupyterhub.sqlite'}")


def test_postgresql_as_the_hub_database(
    hub_database_url: str, make_hub: HubFactory, tmp_path: Path
) -> None:
    hub = make_hub(tmp_path, db_url=hub_database_url)
    assert not (hub.state / "jupyterhub.sqlite").exists()
    _restart_keeps_users(hub, hub_database_url)


# -- g. `aifkit hub run` and Ctrl-C ---------------------------------------------------------


def _lines(stream: Iterator[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_aifkit_hub_run_stops_everything_on_ctrl_c(make_hub: HubFactory, tmp_path: Path) -> None:
    hub = make_hub(tmp_path, start=False)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    process = subprocess.Popen(
        [str(BIN / "aifkit"), "hub", "run", "--config", str(hub.config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while not any("Ctrl-C stops the hub" in line for line in seen):
            assert time.monotonic() < deadline, f"no 'hub is up' within 300 s: {seen}"
            assert process.poll() is None, f"aifkit hub run exited {process.returncode}: {seen}"
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        record("hub start (aifkit hub run)", time.monotonic() - began)
        assert any(f"The training hub is up: {hub.url}" in line for line in seen), seen
        # first start: the generated password is shown once, with where it is saved
        assert any(line.strip().startswith(f"password:    {hub.password}") for line in seen), seen
        assert requests.get(hub.url + "hub/health", timeout=10).status_code == 200
        time.sleep(1)  # the signal handlers are installed right after the last line
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=150)  # the hub stops services one by one: grace 60 s
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    assert code == 0, seen
    assert any("stopped." in line for line in seen), seen
    hub.assert_no_leftovers()


def test_ctrl_c_stops_everything_when_the_pipes_reader_died_first(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    """``make hub 2>&1 | tee hub.log`` and Ctrl-C: tee exits at once, and every later print of
    the hub's launcher fails; the hub, the proxy and the services must stop all the same."""
    hub = make_hub(tmp_path, start=False)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "hub.log"
    process = subprocess.Popen(
        [str(BIN / "aifkit"), "hub", "run", "--config", str(hub.config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    tee = subprocess.Popen(["tee", str(log)], stdin=process.stdout, stdout=subprocess.DEVNULL)
    process.stdout.close()  # tee is the pipe's only reader, as in a shell pipeline
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C stops the hub" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, f"no 'hub is up' within 300 s:\n{log.read_text()}"
            assert process.poll() is None, f"aifkit hub run exited:\n{log.read_text()}"
            time.sleep(0.5)
        hub_pids = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        assert hub_pids, "the hub's processes are running"
        time.sleep(1)  # the signal handlers are installed right after the last line
        tee.kill()  # the terminal's Ctrl-C ends tee first
        tee.wait(timeout=10)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=150)
    finally:
        for child in (process, tee):
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
    assert "stopping the hub" not in log.read_text(), "tee died before the stop was announced"
    assert not [pid for pid in hub_pids if psutil.pid_exists(pid)], "something outlived the hub"
    hub.assert_no_leftovers()


def _ignores_sigint(pid: int) -> bool:
    """Does process ``pid`` ignore SIGINT (its SigIgn mask in /proc)?"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def test_hub_started_in_the_background_still_stops_cleanly(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    """A background shell starts commands with SIGINT ignored: the hub must not inherit that.

    JupyterHub stops services and servers with SIGINT, then waits 10 s each before SIGTERM; a hub
    that inherited the ignoring ran into the stop grace and was killed, every time.
    """
    from aifkit.hub.run import STOP_GRACE_S

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `make hub &` in a script
    try:
        hub = make_hub(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert hub.hub is not None
    processes = [hub.hub.process.pid, *(p.pid for p in hub.hub.descendants())]
    commands = {pid: " ".join(psutil.Process(pid).cmdline()) for pid in processes}
    assert any("aifkit-singleuser" in command for command in commands.values()), commands
    ignoring = [commands[pid] for pid in processes if _ignores_sigint(pid)]
    assert not ignoring, f"these processes of the hub ignore SIGINT: {ignoring}"
    began = time.monotonic()
    code = hub.stop()
    seconds = time.monotonic() - began
    assert code == 0, f"the hub was killed after {seconds:.1f} s instead of stopping (code {code})"
    assert seconds < STOP_GRACE_S / 2, f"the hub took {seconds:.1f} s to stop"
