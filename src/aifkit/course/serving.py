"""A local HTTP endpoint that serves a model through a batching queue (taught in e04).

e04-inference-and-serving first builds the idea by hand: requests that arrive close together
are grouped (``take_batch``) so the model runs one batched forward pass for all of them. This
module is that idea made reusable: ``BatchingServer`` listens on 127.0.0.1 (a free port chosen
by the operating system), queues each ``POST /generate``, and one worker thread hands groups of
at most ``max_batch`` prompts to ``generate_batch``. ``load_test`` measures it with concurrent
clients. Only the standard library is used, and ``with BatchingServer(...)`` always stops the
server, so a failing cell never leaves the port taken.
"""

from __future__ import annotations

import http.client
import json
import math
import queue
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
BatchFn = Callable[[list[str]], list[str]]
LOCALHOST = "127.0.0.1"


class ServingError(RuntimeError):
    """The endpoint cannot start, or a request could not be answered."""


@dataclass
class _Pending:
    """One queued request: its prompt, and where the worker puts the answer."""

    prompt: str
    done: threading.Event = field(default_factory=threading.Event)
    text: str | None = None
    error: str | None = None
    batch_size: int = 0


def take_batch(
    pending: queue.Queue[T], *, max_batch: int, max_wait_s: float, poll_s: float = 0.1
) -> list[T]:
    """Wait for one item, then gather more for up to ``max_wait_s``; at most ``max_batch`` items.

    Returns an empty list when nothing arrived within ``poll_s`` (so the caller can check
    whether it should stop). The first request waits at most ``max_wait_s`` for company: the
    latency a server trades for bigger batches.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    try:
        batch = [pending.get(timeout=poll_s)]
    except queue.Empty:
        return []
    deadline = time.monotonic() + max_wait_s
    while len(batch) < max_batch:
        left = deadline - time.monotonic()
        try:
            batch.append(pending.get(timeout=left) if left > 0 else pending.get_nowait())
        except queue.Empty:
            break
    return batch


class BatchingServer:
    """An HTTP endpoint on 127.0.0.1 whose requests are answered in batches.

    ``POST /generate`` with ``{"prompt": "..."}`` answers ``{"text": ..., "batch_size": n}``;
    ``GET /health`` answers ``{"status": "ok"}``. Errors: 400 for a malformed request, 404 for
    another path, 500 when ``generate_batch`` fails, 503 when the server is stopping.
    """

    def __init__(
        self,
        generate_batch: BatchFn,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.01,
        port: int = 0,
        request_timeout_s: float = 120.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.generate_batch = generate_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.request_timeout_s = request_timeout_s
        self.batch_sizes: list[int] = []  # one entry per call of generate_batch
        self._port = port
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:41234 (only while running)."""
        if self._httpd is None:
            raise ServingError("the server is not running: call start() or use `with`")
        return f"http://{LOCALHOST}:{self._httpd.server_address[1]}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> BatchingServer:
        """Bind 127.0.0.1 (port 0: a free one) and start the HTTP and batching threads."""
        if self._httpd is not None:
            raise ServingError("the server is already running")
        try:
            httpd = ThreadingHTTPServer((LOCALHOST, self._port), _handler_for(self))
        except OSError as error:
            raise ServingError(f"cannot listen on {LOCALHOST}:{self._port}: {error}") from error
        httpd.daemon_threads = True  # a kernel restart must not wait for open connections
        self._httpd = httpd
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=httpd.serve_forever, name="aifkit-http", daemon=True),
            threading.Thread(target=self._work, name="aifkit-batcher", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, free the port, and fail every request still queued (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            item.error = "the server stopped before answering"
            item.done.set()

    def __enter__(self) -> BatchingServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def submit(self, prompt: str) -> _Pending:
        """Queue one prompt and wait for its answer (called by the HTTP handler threads)."""
        item = _Pending(prompt)
        if self._stopping.is_set():
            item.error = "the server is stopping"
            return item
        self._queue.put(item)
        if not item.done.wait(self.request_timeout_s):
            item.error = f"no answer within {self.request_timeout_s} s"
        return item

    def _work(self) -> None:
        """The batching loop: take a group of requests, run the model once, answer them all."""
        while not self._stopping.is_set():
            batch = take_batch(self._queue, max_batch=self.max_batch, max_wait_s=self.max_wait_s)
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                texts = self.generate_batch([item.prompt for item in batch])
                if len(texts) != len(batch):
                    raise ServingError(
                        f"generate_batch returned {len(texts)} texts for {len(batch)} prompts"
                    )
            except Exception as error:  # one bad batch must not kill the server
                for item in batch:
                    item.error = f"{type(error).__name__}: {error}"
                    item.done.set()
                continue
            for item, text in zip(batch, texts, strict=True):
                item.text, item.batch_size = str(text), len(batch)
                item.done.set()


def _handler_for(server: BatchingServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``server``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a notebook cell must not fill up with access logs."""

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"error": f"no such path {self.path}: use POST /generate"})

        def do_POST(self) -> None:
            if self.path != "/generate":
                self._reply(404, {"error": f"no such path {self.path}: use POST /generate"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"null")
                prompt = request["prompt"]
                if not isinstance(prompt, str):
                    raise TypeError("prompt must be a string")
            except (ValueError, KeyError, TypeError) as error:
                self._reply(400, {"error": f'send JSON {{"prompt": "..."}}: {error}'})
                return
            item = server.submit(prompt)
            if item.error is not None:
                status = 503 if "stop" in item.error else 500
                self._reply(status, {"error": item.error})
            else:
                self._reply(200, {"text": item.text, "batch_size": item.batch_size})

    return Handler


def _split_http_url(url: str) -> tuple[str, str]:
    """('host:port', '/path') of an http:// URL (plain HTTP only: the endpoint is local)."""
    if not url.startswith("http://"):
        raise ServingError(f"{url!r}: only http:// URLs of a local endpoint are supported")
    host, _, path = url.removeprefix("http://").partition("/")
    return host, "/" + path


def post_json(url: str, payload: dict[str, Any], *, timeout_s: float = 60.0) -> tuple[int, Any]:
    """POST ``payload`` as JSON to ``url``; return (HTTP status, decoded JSON body)."""
    host, path = _split_http_url(url)
    connection = http.client.HTTPConnection(host, timeout=timeout_s)
    try:
        body = json.dumps(payload).encode()
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


@dataclass(frozen=True)
class LoadResult:
    """What concurrent clients measured: per-request latencies and the overall rate."""

    latencies_s: tuple[float, ...]
    wall_s: float
    failures: int

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` in (0, 100], by the nearest-rank method."""
        if not self.latencies_s:
            raise ServingError("no request succeeded: there is no latency to report")
        ordered = sorted(self.latencies_s)
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1]

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.latencies_s) if self.latencies_s else 0.0


def load_test(
    url: str, prompts: Sequence[str], *, concurrency: int, timeout_s: float = 120.0
) -> LoadResult:
    """Send every prompt to ``url`` + /generate from ``concurrency`` client threads at once."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")

    def one(prompt: str) -> float | None:
        start = time.perf_counter()
        status, _ = post_json(f"{url}/generate", {"prompt": prompt}, timeout_s=timeout_s)
        return time.perf_counter() - start if status == 200 else None

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, prompts))
    wall = time.perf_counter() - start
    latencies = tuple(r for r in results if r is not None)
    return LoadResult(latencies, wall, failures=len(results) - len(latencies))
