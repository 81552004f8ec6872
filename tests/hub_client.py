"""A small client of a running JupyterHub, as a browser-less learner or instructor uses it.

Used by the hub tests and by ``benchmarks/hub_load.py``; the public API below is kept stable:

    HubSession(base_url, username, password)
        .login() -> None                      form login at /hub/login (shared password)
        .api(method, path, **kw) -> Response  /hub/api/<path>, with the hub's XSRF header
        .user_model() -> dict                 GET /hub/api/users/<name>
        .start_server(timeout=120.0) -> float seconds until the server is ready
        .stop_server(timeout=60.0) -> None    and wait until it is gone
        .server_api(method, path, **kw) -> Response  /user/<name>/<path>, with its XSRF header
        .run_cell(code, timeout=60.0, kernel_name=None) -> str  text of the cell's outputs
        .run_in_terminal(command, timeout=60.0) -> tuple[int, str]  a terminal's exit code, output
        .get(path, **kw) -> Response          one request, redirects NOT followed
        .follow(path, max_hops=10) -> list[Response]  redirects followed within the hub
        .session                              the requests.Session (cookies)

Failures raise ``HubError`` (an AssertionError, so pytest shows it as a failed check).
Every request has a timeout; no call waits forever. Only ``requests`` and ``websocket-client``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlparse

import requests
import websocket

REQUEST_TIMEOUT_S = 30.0
# what a browser's fetch() sends: the hub and the servers then check the XSRF token on every
# API request, GETs included (without it they skip the check for GETs and log a warning)
FETCH = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"}


class HubError(AssertionError):
    """The hub or a server answered something a learner's browser would not accept."""


class HubSession:
    """One user's browser session on the hub: cookies, XSRF tokens, their single server."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.username = username
        self.password = password
        self.session = requests.Session()

    # -- plumbing -----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (taken from the hub's root, leading slash optional)."""
        return urljoin(self.base_url, path.lstrip("/"))

    def xsrf(self, path: str) -> str:
        """The ``_xsrf`` cookie that applies to ``path`` (the most specific cookie path wins).

        The hub's cookie lives on /hub/, each single-user server sets its own on /user/<name>/.
        """
        path = "/" + urlparse(self.url(path)).path.lstrip("/")
        candidates = [
            (len(cookie.path or "/"), cookie.value or "")
            for cookie in self.session.cookies
            if cookie.name == "_xsrf" and path.startswith(cookie.path or "/")
        ]
        return max(candidates)[1] if candidates else ""

    def get(self, path: str, **kw: Any) -> requests.Response:
        """GET ``path`` once, redirects not followed: for access checks."""
        kw.setdefault("timeout", REQUEST_TIMEOUT_S)
        return self.session.get(self.url(path), allow_redirects=False, **kw)

    def follow(self, path: str, max_hops: int = 10) -> list[requests.Response]:
        """GET ``path`` and follow redirects that stay on the hub; every response, in order."""
        chain: list[requests.Response] = []
        url = self.url(path)
        host = urlparse(self.base_url).netloc
        for _ in range(max_hops):
            reply = self.session.get(
                url, headers=NAVIGATE, allow_redirects=False, timeout=REQUEST_TIMEOUT_S
            )
            chain.append(reply)
            location = reply.headers.get("Location")
            if not reply.is_redirect or not location:
                return chain
            url = urljoin(url, location)
            if urlparse(url).netloc != host:
                return chain
        raise HubError(f"more than {max_hops} redirects from {path}: {[r.url for r in chain]}")

    # -- the hub ------------------------------------------------------------------------------

    def login(self) -> None:
        """Log in through the hub's form, as a browser does (XSRF cookie, then the POST)."""
        page = self.get("hub/login")
        if page.status_code != 200:
            raise HubError(f"GET /hub/login answered {page.status_code}")
        reply = self.session.post(
            self.url("hub/login"),
            data={
                "_xsrf": self.xsrf("hub/login"),
                "username": self.username,
                "password": self.password,
            },
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT_S,
        )
        if reply.status_code != 302:
            raise HubError(
                f"login of {self.username} answered {reply.status_code}, not a redirect:\n"
                f"{reply.text[-500:]}"
            )
        # the reply also set a fresh _xsrf cookie on /hub/, bound to the new login session

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A request to ``/hub/api/<path>`` with the hub's XSRF header (cookie-authenticated)."""
        headers = {**FETCH, "X-XSRFToken": self.xsrf("hub/api/"), **kw.pop("headers", {})}
        kw.setdefault("timeout", REQUEST_TIMEOUT_S)
        return self.session.request(
            method, self.url("hub/api/" + path.lstrip("/")), headers=headers, **kw
        )

    def user_model(self) -> dict[str, Any]:
        """The hub's model of this user (GET /hub/api/users/<name>)."""
        reply = self.api("GET", f"users/{self.username}")
        if reply.status_code != 200:
            raise HubError(f"GET users/{self.username}: {reply.status_code} {reply.text[:300]}")
        model: dict[str, Any] = reply.json()
        return model

    def start_server(self, timeout: float = 120.0) -> float:
        """Start this user's server and wait until the hub says it is ready; seconds taken."""
        started = time.monotonic()
        reply = self.api("POST", f"users/{self.username}/server")
        if reply.status_code not in (201, 202):
            raise HubError(f"starting {self.username}'s server: {reply.status_code} {reply.text}")
        while time.monotonic() - started < timeout:
            server = self.user_model().get("servers", {}).get("")
            if server and server.get("ready"):
                return time.monotonic() - started
            time.sleep(0.25)
        raise HubError(f"{self.username}'s server was not ready within {timeout:.0f} s")

    def stop_server(self, timeout: float = 60.0) -> None:
        """Stop this user's server and wait until the hub no longer lists it."""
        reply = self.api("DELETE", f"users/{self.username}/server")
        if reply.status_code not in (202, 204):
            raise HubError(f"stopping {self.username}'s server: {reply.status_code} {reply.text}")
        if not self.wait_server_gone(timeout):
            raise HubError(f"{self.username}'s server did not stop within {timeout:.0f} s")

    def wait_server_gone(self, timeout: float) -> bool:
        """Wait until the hub no longer lists this user's server; False if it still does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "" not in self.user_model().get("servers", {}):
                return True
            time.sleep(0.25)
        return False

    # -- the user's server --------------------------------------------------------------------

    @property
    def server_path(self) -> str:
        return f"user/{self.username}/"

    def server_api(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A request to this user's server (``/user/<name>/<path>``), cookie + XSRF header.

        The first call opens the server's start page as a browser does: its OAuth login with the
        hub (redirects followed) sets the server's own ``_xsrf`` cookie on /user/<name>/.
        """
        if not self.xsrf(self.server_path + "api/"):
            self.follow(self.server_path)
        headers = {
            **FETCH,
            "X-XSRFToken": self.xsrf(self.server_path + "api/"),
            **kw.pop("headers", {}),
        }
        kw.setdefault("timeout", REQUEST_TIMEOUT_S)
        return self.session.request(
            method, self.url(self.server_path + path.lstrip("/")), headers=headers, **kw
        )

    def run_cell(self, code: str, timeout: float = 60.0, kernel_name: str | None = None) -> str:
        """Run ``code`` in a new kernel on this user's server; the text of its outputs.

        stream output, execute_result and display_data (text/plain) and error tracebacks are
        joined in order. The kernel is deleted afterwards, whatever happened.
        """
        body = {"name": kernel_name} if kernel_name else {}
        reply = self.server_api("POST", "api/kernels", json=body)
        if reply.status_code != 201:
            raise HubError(f"creating a kernel: {reply.status_code} {reply.text[:500]}")
        kernel_id = reply.json()["id"]
        try:
            return self._execute(kernel_id, code, timeout)
        finally:
            self.server_api("DELETE", f"api/kernels/{kernel_id}")

    def run_in_terminal(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """Type ``command`` (one line) into a new JupyterLab terminal, through its websocket.

        Returns the exit code and what the shell printed between two markers, which the echo of
        the typed line cannot contain (each is split in two there); CR LF is turned into LF.
        The terminal is deleted afterwards, whatever happened.
        """
        reply = self.server_api("POST", "api/terminals")
        if reply.status_code != 200:
            raise HubError(f"creating a terminal: {reply.status_code} {reply.text[:500]}")
        name = reply.json()["name"]
        try:
            return self._type(name, command, timeout)
        finally:
            self.server_api("DELETE", f"api/terminals/{name}")

    def _websocket(self, path: str, timeout: float, query: str = "") -> websocket.WebSocket:
        """A websocket to ``path`` (plus ``query``) on this user's server, with its cookies and
        XSRF header."""
        http_url = self.url(self.server_path + path)
        prepared = self.session.prepare_request(requests.Request("GET", http_url))
        headers = [
            f"X-XSRFToken: {self.xsrf(self.server_path + 'api/')}",
            "Sec-Fetch-Mode: websocket",
            "Sec-Fetch-Site: same-origin",
        ]
        cookie = prepared.headers.get("Cookie")  # the cookies of that path, as requests sends them
        if isinstance(cookie, str) and cookie:
            headers.append(f"Cookie: {cookie}")
        ws_url = "ws" + http_url[len("http") :] + query
        return websocket.create_connection(ws_url, header=headers, timeout=timeout)

    def _type(self, name: str, command: str, timeout: float) -> tuple[int, str]:
        begin, end = "@@AIFKIT-BEGIN@@", "@@AIFKIT-END@@"
        line = f"echo '{begin[:5]}''{begin[5:]}'; {command}; echo '{end[:5]}''{end[5:]}' $?\r"
        deadline = time.monotonic() + timeout
        channel = self._websocket(f"terminals/websocket/{name}", timeout)
        try:
            channel.send(json.dumps(["stdin", line]))
            seen = ""
            pattern = re.compile(
                re.escape(begin) + r"\r?\n(.*?)" + re.escape(end) + r" (\d+)", re.S
            )
            while not (found := pattern.search(seen)):
                channel.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    raw = channel.recv()
                except websocket.WebSocketTimeoutException:
                    raise HubError(
                        f"no end marker within {timeout:.0f} s: {seen[-2000:]}"
                    ) from None
                message = json.loads(raw) if isinstance(raw, str) else []
                if message and message[0] == "stdout":
                    seen += message[1]
            return int(found.group(2)), found.group(1).replace("\r\n", "\n")
        finally:
            channel.close()

    def _execute(self, kernel_id: str, code: str, timeout: float) -> str:
        session_id = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        channel = self._websocket(
            f"api/kernels/{kernel_id}/channels", timeout, query=f"?session_id={session_id}"
        )
        try:
            msg_id = uuid.uuid4().hex
            channel.send(json.dumps(self._execute_request(msg_id, session_id, code)))
            outputs: list[str] = []
            while True:
                channel.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    raw = channel.recv()
                except websocket.WebSocketTimeoutException:
                    raise HubError(f"no idle status within {timeout:.0f} s: {outputs}") from None
                if not isinstance(raw, str):
                    continue  # binary frames carry buffers, not the outputs we read
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if message.get("channel") != "iopub":
                    continue
                if kind == "stream":
                    outputs.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    outputs.append(content.get("data", {}).get("text/plain", "") + "\n")
                elif kind == "error":
                    outputs.append("\n".join(content.get("traceback", [])) + "\n")
                elif kind == "status" and content.get("execution_state") == "idle":
                    return "".join(outputs)
        finally:
            channel.close()

    def _execute_request(self, msg_id: str, session_id: str, code: str) -> dict[str, Any]:
        """A Jupyter messaging protocol 5.3 execute_request for the shell channel."""
        return {
            "header": {
                "msg_id": msg_id,
                "username": self.username,
                "session": session_id,
                "msg_type": "execute_request",
                "version": "5.3",
                "date": datetime.now(UTC).isoformat(),
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
