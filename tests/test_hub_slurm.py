"""The factory hub against the real SLURM test cluster: learners' servers are SLURM jobs.

One hub (profile factory, shared-password login instead of OIDC, SQLite instead of PostgreSQL)
serves the module; its spawner is aifkit.hub.spawner.FactorySlurmSpawner behind wrapspawner's
ProfilesSpawner. Learners are real Unix accounts made by scripts/hub-test-users.sh, and their
jobs run as them through `sudo -E -u <learner>` (batchspawner's exec prefix). Profiles:

- small:  1 CPU, 1 GB on partition debug: the server starts and the hub reaches it;
- huge:   4 GPUs on a node with 2: sbatch refuses it;
- later:  ``--begin=now+3600``: it stays pending past the spawner's own deadline;
- broken: ``--export=NONE`` (a site default some clusters set): the job gets none of the hub's
  variables, so batchspawner-singleuser cannot reach the hub and the job ends at once;
- class:  the SLURM reservation ``CLASS_RESERVATION`` (made for the module, on one node, starting
  in two days): the job waits in the queue with reason Reservation;
- gpu, gpu-short: 1 GPU for 40 or 15 minutes, for the GPU-budget tests.

The single-user servers run from this repository's venv as the learners. When that venv's
Python lies under a folder others cannot enter (here /root, mode 700, for a pyenv Python), the
set-up adds o+x (enter, not list) to that folder for the session and restores the mode after;
on the factory the venv lives on a shared software path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
import yaml
from hub_client import HubSession
from hub_fixture import LocalHub, free_port_block, make_test_course, record
from test_hub_browser import (  # the browser journeys' fixture and helpers
    ARTIFACTS,
    CHROMIUM,
    Journey,
    browser,  # noqa: F401  (a fixture)
    login,
)

from aifkit import slurm, templates
from aifkit.course import accounting, datasets, site
from aifkit.hub.spawner import FactorySlurmSpawner, SlurmSpawnError, start_deadline

REPO = Path(__file__).resolve().parents[1]
LEARNERS = ("aifkit-learner1", "aifkit-learner2")
INSTRUCTOR = "instructor"
COURSE_ID = "advcourse"
START_TIMEOUT = 60  # the spawner gives up 5 s earlier (55 s), with its own message
PROFILES = [
    {"key": "small", "display": "1 core, 1 GB, 10 min", "partition": "debug", "cpus": 1,
     "memory_gb": 1, "time": "00:10:00"},
    {"key": "huge", "display": "4 GPUs", "partition": "debug", "cpus": 1, "memory_gb": 1,
     "gpus": 4, "time": "00:10:00"},
    {"key": "later", "display": "starts in an hour", "partition": "debug", "cpus": 1,
     "memory_gb": 1, "time": "00:10:00", "extra": "--begin=now+3600"},
    {"key": "broken", "display": "no hub variables", "partition": "debug", "cpus": 1,
     "memory_gb": 1, "time": "00:10:00", "extra": "--export=NONE"},
    {"key": "class", "display": "the class's reservation", "partition": "debug", "cpus": 1,
     "memory_gb": 1, "time": "00:10:00", "reservation": "aifkit-test-class"},
    {"key": "gpu", "display": "1 GPU, 40 min", "partition": "debug", "cpus": 1,
     "memory_gb": 1, "gpus": 1, "time": "00:40:00"},
    {"key": "gpu-short", "display": "1 GPU, 15 min", "partition": "debug", "cpus": 1,
     "memory_gb": 1, "gpus": 1, "time": "00:15:00"},
]  # fmt: skip
CLASS_RESERVATION = "aifkit-test-class"
ACCOUNT = "aifkit-course"
WAIT_S = 90.0


# -- SLURM and Unix helpers -------------------------------------------------------------------


def live_jobs(user: str, *, besides: set[str] = frozenset()) -> list[slurm.JobStatus]:
    """The user's jobs that are pending, running or completing (other than ``besides``).

    A test passes the ids it saw before it began as ``besides``: it checks its own jobs, and a
    job another test left behind fails that test (module teardown cancels it), not this one.
    """
    return [j for j in slurm.queue(user=user) if not j.finished and j.job_id not in besides]


def job_ids(user: str) -> set[str]:
    return {job.job_id for job in live_jobs(user)}


def job_state(job_id: str) -> str:
    found = slurm.queue(job_id=job_id)
    return found[0].state if found else "GONE"


def wait_no_jobs(user: str, timeout: float = 30.0, besides: set[str] = frozenset()) -> None:
    deadline = time.monotonic() + timeout
    while live_jobs(user, besides=besides) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not live_jobs(user, besides=besides), f"{user} still has jobs: {live_jobs(user)}"


def run_as(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sudo", "-u", user, *command], capture_output=True, text=True, timeout=60, cwd="/"
    )


# -- the hub ----------------------------------------------------------------------------------


@dataclass
class SlurmHub:
    """The module's factory hub and how its learners log in."""

    local: LocalHub

    def learner(self, name: str) -> HubSession:
        return self.local.session(name)

    def restart(self) -> float:
        """Stop the hub process (jobs outlive it: cleanup_servers is False), start it again."""
        began = time.monotonic()
        assert self.local.hub is not None
        self.local.hub.stop()
        self.local.hub = None
        self.local.start()
        return time.monotonic() - began


def hub_test_users(*args: str) -> subprocess.CompletedProcess[str]:
    """scripts/hub-test-users.sh for this module's learners."""
    return subprocess.run(
        [str(REPO / "scripts" / "hub-test-users.sh"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HUB_TEST_USERS": " ".join(LEARNERS)},
    )


@pytest.fixture(scope="module")
def learners_exist(slurm_cluster: None) -> Iterator[None]:
    """Real Unix accounts for the learners (and sudo), made by the project's own script."""
    if os.geteuid() != 0:
        pytest.skip("creating Unix accounts needs root")
    made = hub_test_users()
    assert made.returncode == 0, f"hub-test-users.sh failed:\n{made.stdout}\n{made.stderr}"
    yield
    for name in LEARNERS:
        subprocess.run(["scancel", f"--user={name}"], capture_output=True, timeout=30)
    for name in LEARNERS:
        wait_no_jobs(name)
    removed = hub_test_users("--remove")
    assert removed.returncode == 0, removed.stderr


@pytest.fixture(scope="module")
def venv_usable_by_learners(learners_exist: None, python_reachable_by_hub_accounts: None) -> None:
    """The learners can run this venv's aifkit-singleuser (the hub fixture's session fixture
    opens the folders on the way to this Python, and closes them again at the end)."""
    singleuser = Path(sys.executable).parent / "aifkit-singleuser"
    check = run_as(LEARNERS[0], str(singleuser), "--version")
    assert check.returncode == 0, f"learners cannot run {singleuser}: {check.stderr}"


@pytest.fixture(scope="module")
def class_reservation(slurm_cluster: None) -> Iterator[str]:
    """A real reservation for the course's account on one node, from two days on, 10 minutes.

    It starts after any job the other tests submit could end (the partition's MaxTime is one
    day), so it holds no node from them; a job that asks for it waits with reason Reservation.
    """
    if os.geteuid() != 0:
        pytest.skip("creating a SLURM reservation needs root")
    subprocess.run(  # one left by an interrupted run
        ["scontrol", "delete", f"ReservationName={CLASS_RESERVATION}"],
        capture_output=True,
        timeout=30,
    )
    made = subprocess.run(
        [
            "scontrol", "create", "reservation", f"ReservationName={CLASS_RESERVATION}",
            "StartTime=now+2days", "Duration=10", "Nodes=aifkit-n2", f"Accounts={ACCOUNT}",
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    try:
        yield CLASS_RESERVATION
    finally:
        gone = subprocess.run(
            ["scontrol", "delete", f"ReservationName={CLASS_RESERVATION}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert gone.returncode == 0, gone.stderr


@pytest.fixture(scope="module")
def slurm_hub(
    tmp_path_factory: pytest.TempPathFactory,
    chp_on_path: None,
    venv_usable_by_learners: None,
    class_reservation: str,
) -> Iterator[SlurmHub]:
    folder = tmp_path_factory.mktemp("slurm-hub")
    state, course = folder / "state", folder / "course"
    course.mkdir()
    make_test_course(course)
    port = free_port_block()
    config = {
        "profile": "factory",
        "bind_url": f"http://127.0.0.1:{port}",
        "state_dir": str(state),
        "auth": "shared-password",
        "instructors": [INSTRUCTOR],
        "learners": list(LEARNERS),
        "spawner": "slurm",
        "start_timeout": START_TIMEOUT,
        "http_timeout": 30,
        "profiles": PROFILES,
        "course_id": COURSE_ID,
        "course_root": str(course),
        "release": ["adv"],
    }
    config_path = folder / "config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    local = LocalHub(config_path=config_path, state=state, course_root=course, port=port)
    local.start()
    try:
        yield SlurmHub(local)
    finally:
        for name in LEARNERS:  # the factory hub leaves jobs running when it stops: end them
            subprocess.run(["scancel", f"--user={name}"], capture_output=True, timeout=30)
        for name in LEARNERS:
            wait_no_jobs(name)
        local.stop()


# -- spawning through the hub's REST API, as the spawn page does --------------------------------


@dataclass
class Outcome:
    ready: bool
    message: str  # the last event's message: "Server ready at ..." or "Spawn failed: ..."
    events: list[str]
    seconds: float


def progress_stream(user: HubSession, timeout: float) -> Iterator[dict[str, Any]]:
    """The spawn's progress events (server-sent) as they come, until one says ready or failed."""
    with user.api(
        "GET", f"users/{user.username}/server/progress", stream=True, timeout=timeout
    ) as reply:
        assert reply.status_code == 200, reply.text
        for line in reply.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            event = json.loads(line[len("data:") :])
            yield event
            if event.get("ready") or event.get("failed"):
                return


def progress_events(user: HubSession, timeout: float) -> list[dict[str, Any]]:
    """The spawn's progress events, until the one that says ready or failed."""
    return list(progress_stream(user, timeout))


def spawn(user: HubSession, profile: str, timeout: float = WAIT_S, **extra: str) -> Outcome:
    """Start the user's server with ``profile``; what the learner is told in the end.

    A 201 does not always mean ready: JupyterHub 6.1 answers 201 to a slow spawn that follows
    a failed one (it checks a replaced spawner object). The progress stream always tells.
    """
    began = time.monotonic()
    reply = user.api("POST", f"users/{user.username}/server", json={"profile": profile, **extra})
    if reply.status_code >= 400:  # failed within the hub's slow-spawn wait: told at once
        message = reply.json().get("message", reply.text)
        return Outcome(False, message, [], time.monotonic() - began)
    assert reply.status_code in (201, 202), reply.text
    events = progress_events(user, timeout)
    messages = [str(e.get("message", "")) for e in events]
    ready = bool(events and events[-1].get("ready"))
    return Outcome(ready, messages[-1] if messages else "", messages, time.monotonic() - began)


def events_until(
    user: HubSession, found: Any, timeout: float = WAIT_S
) -> tuple[list[str], re.Match[str] | None]:
    """The spawn's progress messages until one matches ``found`` (a compiled pattern)."""
    messages: list[str] = []
    with contextlib.closing(progress_stream(user, timeout)) as events:
        for event in events:
            messages.append(str(event.get("message", "")))
            match = found.search(messages[-1])
            if match:
                return messages, match
    return messages, None


def server_gone(user: HubSession, timeout: float = 30.0) -> None:
    if not user.wait_server_gone(timeout):
        raise AssertionError(f"{user.username}'s server is still listed: {user.user_model()}")


def spawn_page_says(user: HubSession) -> str:
    """The text of the learner's spawn-pending page after a failed spawn."""
    page = user.get(f"hub/spawn-pending/{user.username}")
    return re.sub(r"\s+", " ", page.text)


def reaches_server(user: HubSession) -> int:
    reply = user.server_api("GET", "api/status")
    return reply.status_code


def server_uids(name: str) -> set[int]:
    """The user ids of the single-user server processes that serve ``name``."""
    uids = set()
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            if "aifkit-singleuser" in " ".join(proc.info["cmdline"] or []) and (
                proc.environ().get("JUPYTERHUB_USER") == name
            ):
                uids.add(proc.info["uids"].real)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return uids


def one_running_job(name: str, besides: set[str] = frozenset()) -> str:
    jobs = live_jobs(name, besides=besides)
    assert len(jobs) == 1, f"{name} should have exactly one job: {jobs}"
    job = jobs[0]
    assert (job.state, job.user, job.name) == ("RUNNING", name, f"aifkit-hub-{name}"), jobs
    return job.job_id


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.slow
def test_small_profile_runs_as_the_learners_job(slurm_hub: SlurmHub) -> None:
    """Does the learner's server start as their SLURM job, and does the hub reach it?"""
    name = LEARNERS[0]
    user = slurm_hub.learner(name)
    # user options beyond the profile must not change the job (batchspawner would let them)
    outcome = spawn(user, "small", partition="nosuch", options="--begin=now+3600")
    assert outcome.ready, f"{outcome.message}\n{outcome.events}\n{slurm_hub.local.log[-3000:]}"
    record("slurm spawn to ready", outcome.seconds)
    assert reaches_server(user) == 200
    job_id = one_running_job(name)
    assert server_uids(name) == {pwd.getpwnam(name).pw_uid}, "the server runs as the learner"
    home = Path("/home") / name
    log = home / ".aifkit-hub-slurm.log"
    assert log.stat().st_uid == home.stat().st_uid, "the job's log is the learner's own file"
    assert f"aifkit-hub: job {job_id} for {name}" in log.read_text()
    user.stop_server()
    wait_no_jobs(name)
    assert job_state(job_id) in ("CANCELLED", "COMPLETED"), job_state(job_id)


@pytest.mark.slow
def test_impossible_profile_is_refused_with_slurms_reason(slurm_hub: SlurmHub) -> None:
    """Does a request SLURM cannot satisfy fail at once, saying so in SLURM's words?"""
    name = LEARNERS[1]
    user = slurm_hub.learner(name)
    before = job_ids(name)
    outcome = spawn(user, "huge")
    record("slurm refused spawn", outcome.seconds)
    assert not outcome.ready
    assert "SLURM rejected the request for profile huge" in outcome.message, outcome
    assert "Requested node configuration is not available" in outcome.message, outcome
    assert "Pick a smaller profile" in outcome.message
    assert "SLURM rejected the request for profile huge" in spawn_page_says(user)
    assert not live_jobs(name, besides=before)
    server_gone(user)


@pytest.mark.slow
def test_pending_job_is_cancelled_with_the_queue_reason(slurm_hub: SlurmHub) -> None:
    """Is a job still queued near start_timeout cancelled, and told with the queue's reason?"""
    name = LEARNERS[1]
    user = slurm_hub.learner(name)
    before = job_ids(name)
    outcome = spawn(user, "later")
    record("slurm pending spawn given up", outcome.seconds)
    assert not outcome.ready
    match = re.search(
        r"Your job (\d+) waited (\d+) s in the queue \(reason: (\w+)\)", outcome.message
    )
    assert match, outcome
    job_id, waited, reason = match.groups()
    assert reason == "BeginTime" and "was cancelled" in outcome.message
    assert START_TIMEOUT - 10 <= int(waited) < START_TIMEOUT
    assert outcome.seconds < START_TIMEOUT + 5, "the spawner, not JupyterHub's timeout, gave up"
    assert any(f"Job {job_id} waits in the SLURM queue (reason: BeginTime (it may not start "
               "before its begin time), position " in e for e in outcome.events), outcome.events  # fmt: skip
    assert any("SLURM expects it to start at" in e and "Stop Server cancels it" in e
               for e in outcome.events), outcome.events  # fmt: skip
    assert "try a smaller profile than later, a profile with your class's reservation" in (
        outcome.message
    ), outcome.message
    assert not live_jobs(name, besides=before)
    assert job_state(job_id) == "CANCELLED"
    assert f"Your job {job_id} waited" in spawn_page_says(user)
    server_gone(user)


@pytest.mark.slow
def test_job_that_dies_is_reported_and_the_next_spawn_works(slurm_hub: SlurmHub) -> None:
    """Is a job that ends before its server starts reported with its log, and state cleared?"""
    name = LEARNERS[1]
    user = slurm_hub.learner(name)
    before = job_ids(name)
    outcome = spawn(user, "broken")
    record("slurm dying spawn reported", outcome.seconds)
    assert not outcome.ready
    match = re.search(
        r"Your job (\d+) ended before the server started \(state (\w+)", outcome.message
    )
    assert match, outcome
    job_id, state = match.groups()
    assert state in ("FAILED", "COMPLETED"), outcome.message
    # the log's tail: batchspawner-singleuser, without the hub's address, cannot reach it
    assert f"its log /home/{name}/.aifkit-hub-slurm.log:" in outcome.message, outcome.message
    assert "Connection refused" in outcome.message, outcome.message
    assert outcome.seconds < START_TIMEOUT, "found by the spawner, not by JupyterHub's timeout"
    server_gone(user)
    again = spawn(user, "small")
    assert again.ready, f"{again.message}\n{again.events}"
    assert reaches_server(user) == 200
    assert one_running_job(name, besides=before) != job_id
    user.stop_server()
    wait_no_jobs(name, besides=before)


@pytest.mark.slow
def test_hub_restart_keeps_the_running_job(slurm_hub: SlurmHub) -> None:
    """After a hub restart, is the same job still the learner's server, with no duplicate?"""
    name = LEARNERS[0]
    user = slurm_hub.learner(name)
    outcome = spawn(user, "small")
    assert outcome.ready, f"{outcome.message}\n{outcome.events}"
    job_id = one_running_job(name)
    seconds = slurm_hub.restart()
    record("factory hub restart", seconds)
    assert one_running_job(name) == job_id, "the job survived the restart, alone"
    user = slurm_hub.learner(name)
    server = user.user_model()["servers"].get("")
    assert server and server["ready"], user.user_model()
    assert reaches_server(user) == 200
    assert one_running_job(name) == job_id, "no second job was submitted"
    user.stop_server()
    wait_no_jobs(name)
    assert job_state(job_id) in ("CANCELLED", "COMPLETED")


@pytest.mark.slow
def test_hub_restart_while_queued_leaves_no_orphan_job(slurm_hub: SlurmHub) -> None:
    """A hub restarted while a job is queued: does it find that job and cancel it?"""
    name = LEARNERS[1]
    user = slurm_hub.learner(name)
    before = job_ids(name)
    reply = user.api("POST", f"users/{name}/server", json={"profile": "later"})
    assert reply.status_code in (201, 202), reply.text
    deadline = time.monotonic() + WAIT_S
    while not live_jobs(name, besides=before) and time.monotonic() < deadline:
        time.sleep(0.3)
    (queued,) = live_jobs(name, besides=before)
    job_id = queued.job_id
    assert queued.state == "PENDING"
    began = time.monotonic()
    slurm_hub.restart()  # the job id was stored at submission, not only when start() returns
    deadline = time.monotonic() + WAIT_S
    while live_jobs(name, besides=before) and time.monotonic() < deadline:
        time.sleep(0.5)
    record("queued job cancelled after restart", time.monotonic() - began)
    assert job_state(job_id) == "CANCELLED", "the restarted hub cancels the job it cannot reach"
    server_gone(slurm_hub.learner(name))


@pytest.mark.slow
def test_unknown_profile_is_refused_not_run_on_the_hub(slurm_hub: SlurmHub) -> None:
    """Is a profile name that is not configured refused, rather than run beside the hub?"""
    name = LEARNERS[1]
    user = slurm_hub.learner(name)
    before = job_ids(name)
    outcome = spawn(user, "bogus")
    assert not outcome.ready
    assert (
        "There is no profile 'bogus'; choose one of small, huge, later, broken, class, gpu, "
        "gpu-short" in outcome.message
    )
    assert not live_jobs(name, besides=before)
    server_gone(user)


@pytest.mark.slow
def test_queued_job_shows_its_place_and_stop_server_cancels_it(slurm_hub: SlurmHub) -> None:
    """Does the spawn page show a reserved job's id, place and reason, and Stop Server cancel it?"""
    name = LEARNERS[0]
    user = slurm_hub.learner(name)
    before = job_ids(name)
    reply = user.api("POST", f"users/{name}/server", json={"profile": "class"})
    assert reply.status_code in (201, 202), reply.text
    shown = re.compile(
        r"Job (\d+) waits in the SLURM queue \(reason: Reservation \(its reservation has not "
        r"started yet\), position (\d+) of (\d+) in partition debug, "
    )
    events, match = events_until(user, shown)
    assert match, events
    job_id = match[1]
    assert int(match[2]) <= int(match[3])
    assert "Stop Server cancels it" in events[-1]
    (queued,) = live_jobs(name, besides=before)
    assert (queued.job_id, queued.state, queued.reason) == (job_id, "PENDING", "Reservation")
    began = time.monotonic()
    stopped = user.api("DELETE", f"users/{name}/server")  # the spawn page's Stop Server
    assert stopped.status_code in (202, 204), stopped.text
    wait_no_jobs(name, besides=before)
    record("queued job cancelled by Stop Server", time.monotonic() - began)
    assert job_state(job_id) == "CANCELLED"
    server_gone(user)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: scripts/system-deps.sh")
def test_spawn_page_in_a_browser_shows_budget_and_queue_and_cancels(
    browser: Any,  # noqa: F811  (the fixture imported above)
    slurm_hub: SlurmHub,
) -> None:
    """In chromium: the form shows the GPU budget, the pending page the queue, Stop Server works.

    Screenshots in build/test-artifacts/browser-slurm/.
    """
    name = LEARNERS[0]
    before = job_ids(name)
    journey = Journey(ARTIFACTS.parent / "browser-slurm", slurm_hub.local)
    context = journey.context(browser)
    page = context.new_page()
    with journey.step("01-profile-form-with-gpu-budget", page):
        login(page, slurm_hub.local, name, next_url="/hub/spawn")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text(re.compile(r"GPU budget: \d+ of 6000 GPU-minutes left")).wait_for()
        page.get_by_text("1 GPU, 15 min: up to 15 GPU-minutes").wait_for()
    with journey.step("02-queued-with-place-and-reason", page):
        page.locator("select[name=profile]").select_option("class")
        page.get_by_role("button", name="Start").click()
        shown = page.locator("#progress-message").filter(
            has_text=re.compile(
                r"Job \d+ waits in the SLURM queue \(reason: Reservation \(its reservation has "
                r"not started yet\), position \d+ of \d+ in partition debug"
            )
        )
        shown.wait_for(timeout=WAIT_S * 1000)
    (queued,) = live_jobs(name, besides=before)
    assert (queued.state, queued.reason) == ("PENDING", "Reservation")
    with journey.step("03-stop-server-cancelled-the-job", page):
        page.locator("#stop-server-btn").click()
        wait_no_jobs(name, besides=before)
        # the spawn ends: the page reloads onto JupyterHub's "not running" page
        page.get_by_text("Your server is not running.").wait_for()
    assert job_state(queued.job_id) == "CANCELLED"
    context.close()
    assert not journey.offsite, f"the browser tried to leave 127.0.0.1: {journey.offsite}"
    server_gone(slurm_hub.learner(name))


def set_gpu_limit(user: str, minutes: int) -> None:
    """The user's GPU-minute limit in the course account, once slurmctld has it (assoc_mgr)."""
    subprocess.run(
        ["sacctmgr", "-i", "modify", "user", "where", f"name={user}", f"account={ACCOUNT}",
         "set", f"GrpTRESMins=gres/gpu={minutes}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        limits = accounting.budget(user=user, account=ACCOUNT).limits
        if any(x.scope == f"user {user} in {ACCOUNT}" and x.limit_min == minutes for x in limits):
            return
        time.sleep(0.3)
    raise AssertionError(f"slurmctld did not take the limit of {minutes} GPU-minutes for {user}")


@pytest.fixture
def small_gpu_budget(slurm_hub: SlurmHub) -> Iterator[str]:
    """LEARNERS[1] with a 30 GPU-minute limit; the usual one is put back afterwards."""
    name = LEARNERS[1]
    set_gpu_limit(name, 30)
    try:
        yield name
    finally:
        set_gpu_limit(name, 6000)  # scripts/slurm-up.sh's SLURM_GPU_BUDGET default


@pytest.mark.slow
def test_spawn_over_the_gpu_budget_is_refused_before_sbatch(
    slurm_hub: SlurmHub, small_gpu_budget: str
) -> None:
    """Is a profile over the learner's GPU budget refused, no job submitted, and the form told?

    The limit is a real association limit (sacctmgr), and a real running GPU job of the learner
    holds part of it (GrpTRESRunMins), as SLURM counts it.
    """
    name = small_gpu_budget
    user = slurm_hub.learner(name)
    form = re.sub(r"\s+", " ", user.get("hub/spawn").text)
    assert "GPU budget: 30 of 30 GPU-minutes left" in form, form[-3000:]
    assert "<li>1 GPU, 40 min: up to 40 GPU-minutes (over your budget)</li>" in form
    assert "<li>1 GPU, 15 min: up to 15 GPU-minutes</li>" in form
    before = job_ids(name)
    outcome = spawn(user, "gpu")
    record("spawn refused over the GPU budget", outcome.seconds)
    assert not outcome.ready
    assert "Profile gpu would use up to 40 GPU-minutes (1 GPU x 40 min) but you have 30 of 30 " \
        "GPU-minutes left" in outcome.message, outcome.message  # fmt: skip
    assert "nothing was submitted" in outcome.message
    assert not live_jobs(name, besides=before), "refused before sbatch"
    server_gone(user)
    # a real GPU job of the learner runs: SLURM counts its GPU x time limit as held
    held = run_as(name, "sbatch", "--parsable", "--output=/dev/null", "--gres=gpu:1", "--time=20",
                  "--wrap=sleep 300")  # fmt: skip
    assert held.returncode == 0, held.stderr
    job_id = slurm.parse_job_id(held.stdout)
    try:
        deadline = time.monotonic() + 30
        while job_state(job_id) != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.3)
        budget_now = accounting.budget(user=name, account=ACCOUNT)
        assert budget_now.remaining_min is not None and budget_now.remaining_min <= 10, budget_now
        outcome = spawn(user, "gpu-short")  # 15 GPU-minutes: fits 30, not what the job leaves
        assert not outcome.ready
        assert "Profile gpu-short would use up to 15 GPU-minutes" in outcome.message
        assert "held by running jobs" in outcome.message, outcome.message
        mine = [j.job_id for j in live_jobs(name, besides=before)]
        assert mine == [job_id], "only the learner's own job: the spawn submitted nothing"
        server_gone(user)
    finally:
        slurm.cancel(job_id)
        wait_no_jobs(name, besides=before)


@pytest.mark.slow
def test_check_asks_the_cluster_for_reservations_and_qos(
    class_reservation: str, tmp_path: Path
) -> None:
    """Does `aifkit hub check` pass a real reservation and QOS, and name a missing one?"""
    from aifkit.hub import check

    def findings(**profile: str) -> list[str]:
        data = {
            "profile": "factory",
            "spawner": "slurm",
            "instructors": [INSTRUCTOR],
            "profiles": [{"key": "p", "display": "p", "partition": "debug", **profile}],
        }
        path = tmp_path / "config.yml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        c, context = check.load(path)
        return [f.line() for f in check.check(c, context=context) if f.rule == "reservations"]

    assert findings(reservation=class_reservation, qos="budget") == []
    (missing,) = findings(reservation="no-such-class", qos="budget")
    assert missing.startswith("ERROR reservations: the cluster has no reservation 'no-such-class'")
    assert class_reservation in missing
    (qos,) = findings(reservation=class_reservation, qos="no-such-qos")
    assert "the cluster has no QOS 'no-such-qos'" in qos


# -- the spawner without a cluster --------------------------------------------------------------


def test_batch_script_runs_the_profile_and_nothing_else() -> None:
    """Is the job the learner's (name, log, home), exporting the hub's variables only?"""
    spawner = FactorySlurmSpawner(
        user=SimpleNamespace(name="ann", url="/user/ann/"),
        req_homedir="/home/ann",
        req_keepvars="PATH,JUPYTERHUB_API_TOKEN",
        req_partition="debug",
        req_nprocs="1",
        req_memory="1G",
        req_runtime="00:10:00",
        req_options="--gres=gpu:1 --begin=now+3600",
        cmd=["/venv/bin/jupyterhub-singleuser"],
    )
    # what batchspawner passes: the template variables updated with the learner's options
    posted = {**spawner.get_req_subvars(), "partition": "gpu", "cmd": "/bin/sh -c evil"}
    script = asyncio.run(spawner._get_batch_script(**posted))
    sbatch = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert sbatch == [
        "#SBATCH --job-name=aifkit-hub-ann",
        "#SBATCH --output=/home/ann/.aifkit-hub-slurm.log",
        "#SBATCH --open-mode=truncate",
        "#SBATCH --chdir=/home/ann",
        "#SBATCH --export=PATH,JUPYTERHUB_API_TOKEN",
        "#SBATCH --partition=debug",
        "#SBATCH --time=00:10:00",
        "#SBATCH --mem=1G",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --begin=now+3600",
    ]
    singleuser = Path(sys.executable).parent / "batchspawner-singleuser"
    assert f"srun {singleuser} /venv/bin/jupyterhub-singleuser\n" in script
    assert "evil" not in script and "--export=ALL" not in script


def test_spawner_gives_up_before_the_hub() -> None:
    """Is the spawner's own deadline inside start_timeout?"""
    assert start_deadline(600, 30) == 570
    assert start_deadline(60, 5) == 55
    assert start_deadline(8, 5) == 4  # never less than half of start_timeout


def make_spawner(**traits: Any) -> FactorySlurmSpawner:
    return FactorySlurmSpawner(
        user=SimpleNamespace(name="ann", url="/user/ann/"),
        req_homedir="/home/ann",
        req_keepvars="PATH",
        cmd=["/venv/bin/jupyterhub-singleuser"],
        **traits,
    )


def test_spawner_runs_and_reads_aifkit_slurm_commands() -> None:
    """Are the spawner's SLURM commands aifkit.slurm's, and its job states read by its parser?"""
    spawner = make_spawner()
    assert spawner.batch_submit_cmd == "sbatch --parsable"
    assert spawner.batch_query_cmd.format(job_id="42") == "scontrol show job '42'"
    assert spawner.batch_cancel_cmd.format(job_id="42") == "scancel '42'"
    assert spawner.parse_job_id("42;aifkit\n") == "42"
    sample = datasets.sample_text("a03-scontrol-job.txt")  # a running task, recorded on a factory
    spawner.job_status = sample
    assert spawner.state_isrunning() and not spawner.state_ispending()
    assert spawner.state_gethost() == "gpu0412"
    spawner.job_status = sample.replace(
        "JobState=RUNNING Reason=None", "JobState=PENDING Reason=Priority"
    )
    assert spawner.state_ispending() and spawner.slurm_job().reason == "Priority"  # type: ignore[union-attr]
    spawner.job_status = (
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
    )
    assert spawner.state_isunknown() and not spawner.state_isrunning()
    spawner.job_status = "slurm_load_jobs error: Invalid job id specified"
    assert not (spawner.state_isunknown() or spawner.state_isrunning() or spawner.state_ispending())


def test_spawner_commands_have_a_time_limit() -> None:
    """Does a SLURM command that hangs fail within slurm_timeout, read as 'controller silent'?"""
    spawner = make_spawner(slurm_timeout=0.5)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=r"sleep 10 did not answer within 0 s") as silent:
        asyncio.run(spawner.run_command("sleep 10"))
    assert time.monotonic() - began < 5
    assert slurm.controller_unreachable(str(silent.value)), "the job counts as unknown, not gone"
    assert asyncio.run(spawner.run_command("cat", input="hello")) == "hello"
    with pytest.raises(RuntimeError, match=r"^refused$"):
        asyncio.run(spawner.run_command("echo refused >&2; exit 1"))


def test_a_cancel_that_does_not_take_is_told_and_the_job_kept(tmp_path: Path) -> None:
    """When scancel fails and the job stays queued, is the learner told, and the id kept?"""
    queued = "JobId=7 JobName=aifkit-hub-ann\n   JobState=PENDING Reason=BeginTime\n"
    (tmp_path / "status").write_text(queued, encoding="utf-8")
    spawner = make_spawner(
        exec_prefix="",
        batch_query_cmd=f"cat {tmp_path / 'status'}",
        batch_cancel_cmd="echo 'scancel: error: Kill job error on job id 7' >&2; exit 1",
    )
    spawner.job_id = "7"
    with pytest.raises(SlurmSpawnError) as told:
        asyncio.run(spawner._give_up_pending("7", 55))
    assert "could not be cancelled (scancel: scancel: error: Kill job error" in str(told.value)
    assert spawner.job_id == "7", "kept: the hub's stop after the failed spawn cancels it again"
    (tmp_path / "status").write_text(queued.replace("PENDING", "CANCELLED"), encoding="utf-8")
    with pytest.raises(SlurmSpawnError, match=r"\(reason: unknown\) and was cancelled"):
        asyncio.run(spawner._give_up_pending("7", 55))
    assert spawner.job_id == "", "gone from the queue: forgotten"


def test_site_templates_folder_replaces_the_spawner_script(tmp_path: Path) -> None:
    """Does a site profile's own hub-spawner.sbatch become the batch script, strictly rendered?"""
    profile = yaml.safe_load((site.SITES_DIR / "local.yml").read_text(encoding="utf-8"))
    profile.update(name="custom", templates="own")
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "hub-spawner.sbatch").write_text(
        "#!/bin/bash\n#SBATCH --job-name=hub-{{ username }}\n#SBATCH --qos=interactive\n"
        "{{ cmd }}\n",
        encoding="utf-8",
    )
    (tmp_path / "custom.yml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    spawner = make_spawner(site_profile=str(tmp_path / "custom.yml"))
    script = asyncio.run(spawner._get_batch_script(**spawner.get_req_subvars()))
    singleuser = Path(sys.executable).parent / "batchspawner-singleuser"
    assert script == (
        "#!/bin/bash\n#SBATCH --job-name=hub-ann\n#SBATCH --qos=interactive\n"
        f"{singleuser} /venv/bin/jupyterhub-singleuser\n"
    )
    typo = make_spawner(batch_script="#SBATCH --partition={{ partiton }}\n")
    with pytest.raises(
        templates.TemplateError, match=r"hub-spawner\.sbatch: 'partiton' is undefined"
    ):
        asyncio.run(typo._get_batch_script(**typo.get_req_subvars()))


def test_a_job_given_up_says_where_it_stood_and_what_to_try(tmp_path: Path) -> None:
    """Does the give-up message name the job's place, its estimate and the class's reservation?"""
    from datetime import datetime, timedelta

    from aifkit.hub import queue

    (tmp_path / "status").write_text("JobId=7 JobState=CANCELLED Reason=None\n", encoding="utf-8")
    spawner = make_spawner(
        exec_prefix="",
        batch_query_cmd=f"cat {tmp_path / 'status'}",
        batch_cancel_cmd="true",
        req_reservation="ws-2026",
    )
    spawner.job_id = "7"
    spawner.user_options = {"profile": "gpu1"}
    spawner._pending_reason = "Reservation"
    start = datetime.now() + timedelta(days=2, minutes=30)
    spawner._queue_view = queue.PendingJob("7", "gpu", "Reservation", 2, 5, start)
    with pytest.raises(SlurmSpawnError) as told:
        asyncio.run(spawner._give_up_pending("7", 55))
    assert str(told.value) == (
        "Your job 7 waited 55 s in the queue (reason: Reservation) (position 2 of 5 in partition "
        f"gpu, SLURM expects it to start at {start:%Y-%m-%d %H:%M} (in 2 d 0 h)) and was "
        "cancelled; its reservation ws-2026 may not have begun: try again when it has, or a "
        "smaller profile than gpu1."
    )
