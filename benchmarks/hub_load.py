"""Load the local training hub: N simulated learners log in, spawn, run a cell, stop.

A real hub (``aifkit.hub.run.start``, the local profile's settings, a temporary state folder,
an empty course) serves learner01..learnerNN, who arrive evenly over ``--ramp`` seconds. Each
one does what a browser does: GET /hub/login (the _xsrf cookie), POST the shared password,
POST /hub/api/users/<name>/server, follow /hub/api/users/<name>/server/progress until ready,
open /user/<name>/lab (the single-user OAuth round trip), start a kernel, run ``print(6*7)``
over the kernel websocket and wait for 42, delete the kernel, DELETE the server and wait until
it is gone. Printed: failures grouped by reason (target 0), 429 retries (not failures), spawn
latency p50/p95/max (target p95 <= 15 s), cell round trip, wall time, the CPU of the hub, its
proxy, the servers and the kernels (psutil), and the peak memory of the servers together.
Targets are printed next to the figures, never asserted: the exit status is 0 unless the
harness itself failed (the hub did not start, a process was left behind).

Spawn limit, the trade-off. JupyterHub answers a spawn request with 429 while
``concurrent_spawn_limit`` spawns are pending, with a Retry-After of 30-60 s
(``spawn_throttle_retry_range``). Starting a single-user server is CPU-bound (about 3 s of CPU
on this 2-core machine; 6 s before ``aifkit-singleuser`` skipped jsonschema's rfc3987_syntax
import), so the limit only decides who waits where. A low limit keeps the
cores for the spawns already started, each finishes soon, and the learners past the limit
wait in 429 retries (limit 4: accepted spawns ready in 25 s p95, 381 retries). A high limit
refuses nobody, but every pending spawn shares the cores, all get slow together and those
past ``http_timeout`` (60 s: with the local spawner it, not start_timeout, bounds a slow
start) fail (limit 50: 37 of 50 failed). The default, ``--spawn-limit`` 10 (the local
profile's), sits between. No limit raises the throughput: on 2 cores about 0.25 learner
visits a second is all there is, so the ramp (how fast learners arrive) decides the latency.
The client retries a 429 after an exponential backoff (2, 4, 8, 16 s, jittered), never longer
than the Retry-After the hub asked for (``--honour-retry-after`` waits exactly that long), and
gives up after ``--give-up`` seconds; spawn latency counts from the learner's first click,
retries included, and retries are counted apart from failures.

Usage: python benchmarks/hub_load.py [--learners 50] [--ramp 60] [--port 18300]
       [--spawn-limit 10] [--hold 0] [--keep]   (--help: all)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import websocket
import yaml

REPO = Path(__file__).resolve().parents[1]
LOCAL_CONFIG = REPO / "hub-config" / "local" / "config.yml"
CHP_CACHE = REPO / "build" / "hub-load"  # configurable-http-proxy from npm, kept between runs
TARGET_FAILURES = 0
TARGET_SPAWN_P95_S = 15.0
HTTP_TIMEOUT_S = 60.0
SAMPLE_EVERY_S = 0.5
CODE = "print(6*7)"
EXPECTED = "42"


class StageError(Exception):
    """A learner's step failed; ``str`` is the reason grouped in the report (no user names)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage


@dataclass
class Outcome:
    """What happened to one simulated learner."""

    name: str
    failure: str = ""
    retries: int = 0
    login_s: float | None = None
    spawn_s: float | None = None  # first spawn request -> ready, 429 retries included
    attempt_s: float | None = None  # the accepted spawn request -> ready
    lab_s: float | None = None  # GET /user/<name>/lab, OAuth round trip included
    kernel_s: float | None = None  # POST kernels -> kernel_info_reply on the websocket
    cell_s: float | None = None  # execute_request -> "42" on iopub
    stop_s: float | None = None
    total_s: float | None = None
    cleanup_failure: str = ""


@dataclass
class Options:
    learners: int
    ramp: float
    port: int
    spawn_limit: int
    start_timeout: int
    http_timeout: int
    give_up: float
    honour_retry_after: bool
    hold: float
    keep: bool = False


# ----------------------------------------------------------------------------- the client


class Learner:
    """One browser: a requests session (cookies) plus the websocket to its kernel."""

    def __init__(self, base: str, name: str, password: str, options: Options) -> None:
        self.base = base.rstrip("/")
        self.name = name
        self.password = password
        self.options = options
        self.http = requests.Session()
        self.outcome = Outcome(name)
        self.requested = False  # a spawn was accepted: the server must be stopped in the end

    # -- helpers
    def _xsrf(self, path: str) -> str:
        for cookie in self.http.cookies:
            if cookie.name == "_xsrf" and cookie.path.rstrip("/") == path.rstrip("/"):
                return str(cookie.value)
        return ""

    def _hub_headers(self) -> dict[str, str]:
        return {"X-XSRFToken": self._xsrf("/hub/"), "Referer": f"{self.base}/hub/home"}

    def _user_path(self) -> str:
        return f"/user/{self.name}/"

    def _user_headers(self) -> dict[str, str]:
        return {"X-XSRFToken": self._xsrf(self._user_path()), "Referer": self.base + "/"}

    def _check(self, stage: str, reply: requests.Response, *ok: int) -> None:
        if reply.status_code not in ok:
            raise StageError(stage, f"HTTP {reply.status_code} {reply.text.strip()[:120]}")

    # -- the steps
    def login(self) -> None:
        started = time.perf_counter()
        reply = self.http.get(f"{self.base}/hub/login", timeout=HTTP_TIMEOUT_S)
        self._check("login page", reply, 200)
        if not self._xsrf("/hub/"):
            raise StageError("login page", "no _xsrf cookie")
        reply = self.http.post(
            f"{self.base}/hub/login",
            data={"username": self.name, "password": self.password, "_xsrf": self._xsrf("/hub/")},
            allow_redirects=False,  # the redirect would start the server through /hub/spawn
            timeout=HTTP_TIMEOUT_S,
        )
        self._check("login", reply, 302)
        if not any(c.name.startswith("jupyterhub-session") for c in self.http.cookies):
            raise StageError("login", "no session cookie (wrong password?)")
        self.outcome.login_s = time.perf_counter() - started

    def spawn(self) -> None:
        """Request the server, retrying politely on 429, then follow the progress stream."""
        url = f"{self.base}/hub/api/users/{self.name}/server"
        first = time.perf_counter()
        attempt = 0
        while True:
            sent = time.perf_counter()
            reply = self.http.post(url, headers=self._hub_headers(), timeout=HTTP_TIMEOUT_S)
            if reply.status_code != 429:
                break
            attempt += 1
            self.outcome.retries += 1
            asked = float(reply.headers.get("Retry-After", "30") or 30)
            if self.options.honour_retry_after:
                wait = asked
            else:
                wait = min(asked, 2.0 ** min(attempt, 4)) * random.uniform(0.75, 1.25)
            if time.perf_counter() + wait - first > self.options.give_up:
                raise StageError("spawn", f"still 429 after {self.options.give_up:.0f} s")
            time.sleep(wait)
        self._check("spawn", reply, 201, 202)
        self.requested = True
        if reply.status_code == 202:
            self._follow_progress()
        done = time.perf_counter()
        self.outcome.spawn_s = done - first
        self.outcome.attempt_s = done - sent

    def _follow_progress(self) -> None:
        url = f"{self.base}/hub/api/users/{self.name}/server/progress"
        deadline = self.options.start_timeout + self.options.http_timeout + 30
        with self.http.get(
            url, headers=self._hub_headers(), stream=True, timeout=(HTTP_TIMEOUT_S, deadline)
        ) as reply:
            self._check("spawn progress", reply, 200)
            for raw in reply.iter_lines(decode_unicode=True):
                line = raw.decode() if isinstance(raw, bytes) else raw
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise StageError("spawn", str(event.get("message", "failed"))[:160])
        raise StageError("spawn", "progress stream ended without ready")

    def open_lab(self) -> None:
        started = time.perf_counter()
        reply = self.http.get(f"{self.base}/user/{self.name}/lab", timeout=HTTP_TIMEOUT_S)
        self._check("open lab", reply, 200)
        if not self._xsrf(self._user_path()):
            raise StageError("open lab", "no _xsrf cookie from the single-user server")
        self.outcome.lab_s = time.perf_counter() - started

    def run_cell(self) -> None:
        api = f"{self.base}/user/{self.name}/api/kernels"
        started = time.perf_counter()
        reply = self.http.post(api, json={}, headers=self._user_headers(), timeout=HTTP_TIMEOUT_S)
        self._check("start kernel", reply, 201)
        kernel = reply.json()["id"]
        try:
            self._websocket_cell(kernel, started)
        finally:
            reply = self.http.delete(
                f"{api}/{kernel}", headers=self._user_headers(), timeout=HTTP_TIMEOUT_S
            )
            self._check("delete kernel", reply, 204)

    def _websocket_cell(self, kernel: str, started: float) -> None:
        session = uuid.uuid4().hex
        http_url = f"{self.base}/user/{self.name}/api/kernels/{kernel}/channels"
        query = f"?session_id={session}&_xsrf={self._xsrf(self._user_path())}"
        prepared = requests.Request("GET", http_url).prepare()
        cookie = requests.cookies.get_cookie_header(self.http.cookies, prepared) or ""
        try:
            ws = websocket.create_connection(
                "ws" + http_url[4:] + query,
                cookie=cookie,
                header=[f"X-XSRFToken: {self._xsrf(self._user_path())}"],
                origin=self.base,
                timeout=HTTP_TIMEOUT_S,
            )
        except websocket.WebSocketBadStatusException as error:
            raise StageError("websocket", f"HTTP {error.status_code}") from None
        except (OSError, websocket.WebSocketException) as error:
            raise StageError("websocket", f"{type(error).__name__}: {error}") from None
        try:
            info = self._send(ws, session, "kernel_info_request", {})
            self._wait(ws, info, lambda m: m["msg_type"] == "kernel_info_reply", "kernel_info")
            self.outcome.kernel_s = time.perf_counter() - started
            sent = time.perf_counter()
            run = self._send(ws, session, "execute_request", {"code": CODE, "silent": False})
            self._wait(ws, run, _printed_42, EXPECTED)
            self.outcome.cell_s = time.perf_counter() - sent
        finally:
            with contextlib.suppress(Exception):
                ws.close()

    @staticmethod
    def _send(ws: Any, session: str, kind: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": kind, "username": "learner", "session": session}
        header.update(date="", version="5.3")
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        ws.send(json.dumps({**message, "channel": "shell", "buffers": []}))
        return msg_id

    @staticmethod
    def _wait(ws: Any, parent: str, done: Callable[[dict[str, Any]], bool], what: str) -> None:
        deadline = time.monotonic() + HTTP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            except (OSError, websocket.WebSocketException) as error:
                raise StageError("cell", f"websocket closed: {type(error).__name__}") from None
            if isinstance(raw, bytes):
                continue  # binary frames: not what this client asked for
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != parent:
                continue
            if message.get("msg_type") == "error":
                raise StageError("cell", f"kernel error {message['content'].get('ename')}")
            if done(message):
                return
        raise StageError("cell", f"no {what} within {HTTP_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        url = f"{self.base}/hub/api/users/{self.name}/server"
        started = time.perf_counter()
        reply = self.http.delete(url, headers=self._hub_headers(), timeout=HTTP_TIMEOUT_S)
        self._check("stop", reply, 202, 204)
        deadline = time.monotonic() + 120
        pending = reply.status_code == 202  # 204: stopped already
        while pending and self._running():
            if time.monotonic() > deadline:
                raise StageError("stop", "server still there after 120 s")
            time.sleep(0.5)
        self.outcome.stop_s = time.perf_counter() - started

    def _running(self) -> bool:
        reply = self.http.get(
            f"{self.base}/hub/api/users/{self.name}",
            headers=self._hub_headers(),
            timeout=HTTP_TIMEOUT_S,
        )
        self._check("stop", reply, 200)
        return bool(reply.json().get("servers", {}).get(""))


def _printed_42(message: dict[str, Any]) -> bool:
    text = message["content"].get("text", "") if message["msg_type"] == "stream" else ""
    return bool(text.strip() == EXPECTED)


def generic(reason: str, name: str) -> str:
    """A failure reason that groups: no user name, port, kernel or server id."""
    reason = reason.replace(name, "<user>")
    reason = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", reason)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", reason)


def simulate(base: str, name: str, password: str, options: Options, at: float) -> Outcome:
    """One learner's visit, starting ``at`` (a perf_counter time); never raises."""
    time.sleep(max(0.0, at - time.perf_counter()))
    learner = Learner(base, name, password, options)
    outcome = learner.outcome
    started = time.perf_counter()
    try:
        learner.login()
        learner.spawn()
        learner.open_lab()
        learner.run_cell()
        time.sleep(options.hold)
        learner.stop()
        learner.requested = False
    except StageError as error:
        outcome.failure = generic(str(error), name)
    except requests.Timeout as error:
        outcome.failure = f"timeout: {type(error).__name__}"
    except Exception as error:  # a learner's crash is a failure to report, not the harness's
        outcome.failure = generic(f"{type(error).__name__}: {str(error)[:120]}", name)
    if learner.requested:
        try:
            learner.stop()
        except Exception as error:
            outcome.cleanup_failure = generic(f"{type(error).__name__}: {str(error)[:120]}", name)
    outcome.total_s = time.perf_counter() - started
    learner.http.close()
    return outcome


# ----------------------------------------------------------------------------- measuring


@dataclass
class Usage:
    """CPU seconds and memory of the hub's processes, sampled while the learners run."""

    cpu: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> kind, CPU s
    peak_servers_rss: int = 0
    peak_kernels_rss: int = 0
    peak_servers: int = 0
    machine_busy: float = 0.0  # machine CPU % (of all cores) over the window
    machine_seconds: float = 0.0  # busy CPU seconds of the whole machine over the window
    own_seconds: float = 0.0  # this benchmark process (the 50 simulated browsers)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end

    def seconds(self, kind: str) -> float:
        return sum(used for k, used in self.cpu.values() if k == kind)

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.cpu.values() if k == kind)


class Monitor(threading.Thread):
    """Every SAMPLE_EVERY_S: the hub and its descendants, classified and summed."""

    def __init__(self, hub_pid: int) -> None:
        super().__init__(daemon=True, name="monitor")
        self.hub = psutil.Process(hub_pid)
        self.usage = Usage()
        self.halt = threading.Event()
        self.kinds: dict[int, str] = {}
        self.baseline: dict[int, float] = {}

    def _kind(self, process: psutil.Process) -> str:
        """What a process is; decided once it has exec'd (a fresh fork wears its parent's name)."""
        if process.pid in self.kinds:
            return self.kinds[process.pid]
        cmdline = " ".join(process.cmdline())
        parent = process.parent()
        if process.pid == self.hub.pid:
            kind = "hub"
        elif parent is not None and " ".join(parent.cmdline()) == cmdline:
            return "other"  # forked, not exec'd yet: ask again at the next sample
        elif "configurable-http-proxy" in cmdline:
            kind = "proxy"
        elif "ipykernel" in cmdline:
            kind = "kernels"
        elif "-singleuser" in cmdline:  # aifkit-singleuser, jupyterhub-singleuser
            service = process.environ().get("JUPYTERHUB_SERVICE_NAME")
            kind = "formgrader" if service else "servers"
        elif "jupyterhub_idle_culler" in cmdline:
            kind = "culler"
        else:
            return "other"  # not exec'd yet, or a helper: ask again at the next sample
        self.kinds[process.pid] = kind
        return kind

    def sample(self, first: bool = False) -> None:
        servers_rss = kernels_rss = servers = 0
        try:
            processes = [self.hub, *self.hub.children(recursive=True)]
        except psutil.Error:
            return
        for process in processes:
            try:
                with process.oneshot():
                    kind = self._kind(process)
                    times = process.cpu_times()
                    rss = process.memory_info().rss
            except psutil.Error:
                continue
            used = times.user + times.system
            if first:
                self.baseline[process.pid] = used  # before the learners: not counted
            used -= self.baseline.get(process.pid, 0.0)
            self.usage.cpu[process.pid] = (kind, used)
            if kind == "servers":
                servers_rss += rss
                servers += 1
            elif kind == "kernels":
                kernels_rss += rss
        self.usage.peak_servers_rss = max(self.usage.peak_servers_rss, servers_rss)
        self.usage.peak_kernels_rss = max(self.usage.peak_kernels_rss, kernels_rss)
        self.usage.peak_servers = max(self.usage.peak_servers, servers)

    def run(self) -> None:
        machine, own, load = psutil.cpu_times(), psutil.Process().cpu_times(), os.getloadavg()[0]
        while not self.halt.wait(SAMPLE_EVERY_S):
            self.sample()
        self.sample()
        after, own_after = psutil.cpu_times(), psutil.Process().cpu_times()
        busy = _busy(after) - _busy(machine)
        total = sum(after) - sum(machine)
        self.usage.machine_busy = 100.0 * busy / total if total else 0.0
        self.usage.machine_seconds = busy
        self.usage.own_seconds = (own_after.user + own_after.system) - (own.user + own.system)
        self.usage.load = (load, os.getloadavg()[0])


def _busy(times: Any) -> float:
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


# ----------------------------------------------------------------------------- the hub


def free_ports(port: int) -> None:
    """The hub needs port..port+3 (public, proxy API, hub, formgrader)."""
    for p in range(port, port + 4):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", p))
            except OSError:
                message = f"port {p} is in use: pick another --port (needs 4 in a row)"
                raise SystemExit(message) from None


def ensure_proxy() -> None:
    """configurable-http-proxy on PATH, installed once into build/ (not per temporary hub)."""
    if shutil.which("configurable-http-proxy"):
        return
    from aifkit.hub.run import proxy_bin
    from aifkit.hub.schema import HubConfig

    config = HubConfig(profile="local", base=REPO, state_dir=str(CHP_CACHE), instructors=("x",))
    local = proxy_bin(config)
    os.environ["PATH"] = f"{local}{os.pathsep}{os.environ['PATH']}"


def write_config(work: Path, options: Options) -> Path:
    """The local profile's settings, with this run's users, ports and folders."""
    data = yaml.safe_load(LOCAL_CONFIG.read_text(encoding="utf-8"))
    course = work / "course"
    course.mkdir()
    data.update(
        bind_url=f"http://127.0.0.1:{options.port}",
        state_dir=str(work / "state"),
        instructors=["instructor"],
        learners=[f"learner{i:02d}" for i in range(1, options.learners + 1)],
        concurrent_spawn_limit=options.spawn_limit,
        start_timeout=options.start_timeout,
        http_timeout=options.http_timeout,
        course_root=str(course),
        release=[],
        isolation="none",  # the baseline it compares with runs every server as one user too
    )
    path = work / "hub" / "config.yml"  # every path in it is absolute
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def leftovers(exchange: Path, port: int) -> list[psutil.Process]:
    """Processes started for this hub still alive: servers, kernels and the proxy carry its
    exchange folder, services (the culler) the address of its API."""
    api = f"http://127.0.0.1:{port + 2}/"
    found = []
    for process in psutil.process_iter(["pid"]):
        if process.pid == os.getpid():
            continue
        try:
            env = process.environ()
        except psutil.Error:
            continue
        if env.get("AIFKIT_EXCHANGE") == str(exchange) or env.get(
            "JUPYTERHUB_API_URL", ""
        ).startswith(api):
            found.append(process)
    return found


# ----------------------------------------------------------------------------- the report


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report(
    outcomes: list[Outcome], usage: Usage, wall: float, options: Options, cpus: int
) -> list[str]:
    def values(attr: str) -> list[float]:
        return [v for o in outcomes if (v := getattr(o, attr)) is not None]

    failures = [o for o in outcomes if o.failure]
    spawn = values("spawn_s")
    p95 = pct(spawn, 0.95)
    verdict = "-" if p95 is None else ("met" if p95 <= TARGET_SPAWN_P95_S else "MISSED")
    retried = sum(1 for o in outcomes if o.retries)
    lines = [
        f"hub load: {options.learners} learners over a {options.ramp:.0f} s ramp, "
        f"concurrent_spawn_limit {options.spawn_limit}, start_timeout {options.start_timeout} s, "
        f"http_timeout {options.http_timeout} s, "
        f"{cpus} CPUs" + (", hold " + f"{options.hold:.0f} s" if options.hold else ""),
        "",
        f"{'learners':<26}{len(outcomes)}",
        f"{'failures':<26}{len(failures):<22}target {TARGET_FAILURES}  "
        f"{'met' if len(failures) <= TARGET_FAILURES else 'MISSED'}",
    ]
    for reason, count in Counter(o.failure for o in failures).most_common():
        lines.append(f"  {count:>3} x {reason}")
    cleanup = [o for o in outcomes if o.cleanup_failure]
    for reason, count in Counter(o.cleanup_failure for o in cleanup).most_common():
        lines.append(f"  {count:>3} x (stopping after the failure) {reason}")
    lines += [
        f"{'429 retries':<26}{sum(o.retries for o in outcomes)} (by {retried} learners; "
        "not failures)",
        f"{'spawn latency p50':<26}{secs(pct(spawn, 0.5))}",
        f"{'spawn latency p95':<26}{secs(p95):<22}target <= {TARGET_SPAWN_P95_S:.0f} s  {verdict}",
        f"{'spawn latency max':<26}{secs(max(spawn, default=None))}",
        f"{'  accepted request p50/95':<26}{secs(pct(values('attempt_s'), 0.5))} / "
        f"{secs(pct(values('attempt_s'), 0.95))}  (429 waits excluded)",
        f"{'login p50/p95':<26}{secs(pct(values('login_s'), 0.5))} / "
        f"{secs(pct(values('login_s'), 0.95))}",
        f"{'open lab p50/p95':<26}{secs(pct(values('lab_s'), 0.5))} / "
        f"{secs(pct(values('lab_s'), 0.95))}",
        f"{'kernel start p50/p95':<26}{secs(pct(values('kernel_s'), 0.5))} / "
        f"{secs(pct(values('kernel_s'), 0.95))}",
        f"{'cell round trip p50/p95':<26}{secs(pct(values('cell_s'), 0.5))} / "
        f"{secs(pct(values('cell_s'), 0.95))}",
        f"{'stop p50/p95':<26}{secs(pct(values('stop_s'), 0.5))} / "
        f"{secs(pct(values('stop_s'), 0.95))}",
        f"{'learner visit p50/max':<26}{secs(pct(values('total_s'), 0.5))} / "
        f"{secs(max(values('total_s'), default=None))}",
        f"{'total wall time':<26}{wall:.1f} s",
        "",
        f"CPU over the run ({wall:.1f} s; % of one core):",
    ]
    for kind, label in (
        ("hub", "hub (jupyterhub)"),
        ("proxy", "proxy (CHP)"),
        ("servers", "single-user servers"),
        ("kernels", "kernels"),
        ("formgrader", "formgrader service"),
        ("culler", "idle-culler service"),
        ("other", "other (lab's node/yarn checks)"),
    ):
        seconds = usage.seconds(kind)
        extra = ""
        if kind in ("servers", "kernels") and usage.count(kind):
            extra = f"  ({seconds / usage.count(kind):.2f} s each)"
        lines.append(f"  {label:<30}{seconds:7.1f} s  {100 * seconds / wall:6.1f} %{extra}")
    ours = sum(used for _, used in usage.cpu.values()) + usage.own_seconds
    others = max(0.0, usage.machine_seconds - ours)
    lines += [
        f"  {'the simulated browsers':<30}{usage.own_seconds:7.1f} s  "
        f"{100 * usage.own_seconds / wall:6.1f} %",
        f"  {'other processes (not this run)':<30}{others:7.1f} s  {100 * others / wall:6.1f} %",
        f"  {'machine, all processes':<30}{usage.machine_seconds:7.1f} s  "
        f"{usage.machine_busy:6.1f} % of {cpus} cores "
        f"(load average {usage.load[0]:.1f} -> {usage.load[1]:.1f})",
        f"peak RSS, single-user servers  {usage.peak_servers_rss / 2**20:7.0f} MiB "
        f"({usage.peak_servers} at once; kernels {usage.peak_kernels_rss / 2**20:.0f} MiB more)",
    ]
    return lines


# ----------------------------------------------------------------------------- main


def parse(argv: list[str]) -> Options:
    from aifkit.hub.schema import HubConfig

    local = yaml.safe_load(LOCAL_CONFIG.read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=50, help="simulated learners (50)")
    parser.add_argument("--ramp", type=float, default=60.0, help="arrivals spread over S s (60)")
    parser.add_argument("--port", type=int, default=18300, help="public port; +1..+3 used too")
    parser.add_argument(
        "--spawn-limit",
        type=int,
        default=int(local.get("concurrent_spawn_limit", 10)),
        help="concurrent_spawn_limit (the local profile's)",
    )
    parser.add_argument(
        "--start-timeout",
        type=int,
        default=int(local.get("start_timeout", 60)),
        help="Spawner.start_timeout in s (the local profile's)",
    )
    parser.add_argument(
        "--http-timeout",
        type=int,
        default=int(local.get("http_timeout", HubConfig.http_timeout)),
        help="Spawner.http_timeout in s: a started server must answer within it (the local "
        "profile's); with the local spawner this, not start_timeout, bounds the slow start",
    )
    parser.add_argument("--give-up", type=float, default=300.0, help="429 retries stop after S s")
    parser.add_argument(
        "--honour-retry-after",
        action="store_true",
        help="on 429 wait the hub's Retry-After (30-60 s) instead of a capped backoff",
    )
    parser.add_argument("--hold", type=float, default=0.0, help="keep each server S s after")
    parser.add_argument("--keep", action="store_true", help="keep the state folder and logs")
    parsed = parser.parse_args(argv)
    if parsed.learners < 1:
        parser.error("--learners must be at least 1")
    return Options(
        learners=parsed.learners,
        ramp=parsed.ramp,
        port=parsed.port,
        spawn_limit=parsed.spawn_limit,
        start_timeout=parsed.start_timeout,
        http_timeout=parsed.http_timeout,
        give_up=parsed.give_up,
        honour_retry_after=parsed.honour_retry_after,
        hold=parsed.hold,
        keep=parsed.keep,
    )


def run(options: Options, work: Path) -> int:
    from aifkit.hub import run as hub_run
    from aifkit.hub import secrets

    free_ports(options.port)
    ensure_proxy()
    config_path = write_config(work, options)
    started = time.perf_counter()
    hub = hub_run.start(config_path, announce=lambda text: print(f"  [hub] {text}", flush=True))
    print(f"hub up in {time.perf_counter() - started:.1f} s at {hub.url}", flush=True)
    exchange = hub.config.exchange_root
    code = 0
    try:
        password = secrets.read_private(hub.config.path(hub.config.password_file))
        names = list(hub.config.learners)
        time.sleep(2.0)  # let the formgrader service and the culler settle before measuring
        monitor = Monitor(hub.process.pid)
        monitor.sample(first=True)
        monitor.start()
        began = time.perf_counter()
        gap = options.ramp / max(len(names) - 1, 1)
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="learner") as pool:
            futures = [
                pool.submit(simulate, hub.url, name, password, options, began + i * gap)
                for i, name in enumerate(names)
            ]
            outcomes = []
            for number, future in enumerate(futures, 1):
                outcomes.append(future.result())
                if number % 10 == 0 or number == len(futures):
                    print(f"  {number}/{len(futures)} learners done", flush=True)
        wall = time.perf_counter() - began
        monitor.halt.set()
        monitor.join()
        print()
        print("\n".join(report(outcomes, monitor.usage, wall, options, os.cpu_count() or 1)))
    finally:
        stopping = time.perf_counter()
        status = hub.stop()
        print(
            f"\nhub.stop(): {time.perf_counter() - stopping:.1f} s, exit status {status}"
            + (" (killed after the grace period)" if status == -9 else "")
        )
        deadline = time.monotonic() + 15
        left = leftovers(exchange, options.port)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = leftovers(exchange, options.port)
        if left:
            code = 1
            print(f"LEFT BEHIND after hub.stop(): {len(left)} process(es); killing them:")
            for process in left:
                with contextlib.suppress(psutil.Error):
                    print(f"  {process.pid} {' '.join(process.cmdline())[:100]}")
                    process.kill()
        else:
            print(f"clean: no process of {hub.config.state} left")
        if options.keep:
            print(f"kept: {work} (hub log: {hub.log})")
    return code


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO / "src"))
    options = parse(argv)
    work = Path(tempfile.mkdtemp(prefix="aifkit-hubload-"))
    keep = options.keep
    try:
        return run(options, work)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"the harness failed; state and logs kept in {work}", file=sys.stderr)
        keep = True
        return 2
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
