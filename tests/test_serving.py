"""The batching HTTP endpoint of e04 (aifkit.course.serving), against a real socket on 127.0.0.1."""

from __future__ import annotations

import http.client
import queue
import socket
import threading
import time

import pytest

from aifkit.course import serving


def upper_slowly(prompts: list[str]) -> list[str]:
    """A stand-in model: one batched 'forward pass' costs 50 ms whatever the batch size."""
    time.sleep(0.05)
    return [p.upper() for p in prompts]


def test_take_batch_groups_what_arrives_together_and_caps_the_size() -> None:
    """Does take_batch return every waiting item up to max_batch, and nothing when idle?"""
    pending: queue.Queue[int] = queue.Queue()
    assert serving.take_batch(pending, max_batch=4, max_wait_s=0.01, poll_s=0.01) == []
    for i in range(6):
        pending.put(i)
    assert serving.take_batch(pending, max_batch=4, max_wait_s=0.01) == [0, 1, 2, 3]
    assert serving.take_batch(pending, max_batch=4, max_wait_s=0.01) == [4, 5]
    with pytest.raises(ValueError, match="max_batch"):
        serving.take_batch(pending, max_batch=0, max_wait_s=0.01)


def test_take_batch_waits_for_late_company_only_until_the_deadline() -> None:
    """Does an item arriving within max_wait_s join the batch, and one arriving later not?"""
    pending: queue.Queue[str] = queue.Queue()
    pending.put("first")
    threading.Timer(0.02, pending.put, args=("soon",)).start()
    threading.Timer(0.4, pending.put, args=("late",)).start()
    start = time.monotonic()
    assert serving.take_batch(pending, max_batch=8, max_wait_s=0.15) == ["first", "soon"]
    assert time.monotonic() - start < 0.35
    assert serving.take_batch(pending, max_batch=8, max_wait_s=0.0, poll_s=1.0) == ["late"]


def test_serves_generates_and_frees_the_port_on_stop() -> None:
    """Does the server answer on a free port of 127.0.0.1, and release it when stopped?"""
    with serving.BatchingServer(upper_slowly, max_batch=4) as server:
        assert server.url.startswith("http://127.0.0.1:")
        port = int(server.url.rsplit(":", 1)[1])
        status, body = serving.post_json(f"{server.url}/generate", {"prompt": "hello"})
        assert (status, body["text"], body["batch_size"]) == (200, "HELLO", 1)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
        connection.close()
    assert not server.running
    with pytest.raises(serving.ServingError, match="not running"):
        _ = server.url
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", port))
    server.stop()  # stopping twice is harmless


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer() -> None:
    """Do 16 concurrent clients share forward passes (batches > 1, never over max_batch)?"""
    prompts = [f"prompt {i}" for i in range(16)]
    with serving.BatchingServer(upper_slowly, max_batch=4, max_wait_s=0.02) as server:
        result = serving.load_test(server.url, prompts, concurrency=16)
        answers = [
            serving.post_json(f"{server.url}/generate", {"prompt": p})[1] for p in prompts[:2]
        ]
    assert result.failures == 0 and len(result.latencies_s) == 16
    assert max(server.batch_sizes) == 4 and sum(server.batch_sizes) == 18
    assert len(server.batch_sizes) < 16, "concurrent requests must share batches"
    assert [a["text"] for a in answers] == ["PROMPT 0", "PROMPT 1"]
    assert result.requests_per_s > 0
    assert result.percentile(50) <= result.percentile(99) <= max(result.latencies_s)


def test_errors_are_reported_and_the_server_keeps_serving() -> None:
    """Bad JSON -> 400, wrong path -> 404, a failing model -> 500, then a good request works."""
    calls = []

    def flaky(prompts: list[str]) -> list[str]:
        calls.append(prompts)
        if "boom" in prompts:
            raise RuntimeError("model crashed")
        if "short" in prompts:
            return []
        return prompts

    with pytest.raises(serving.ServingError, match="only http://"):
        serving.post_json("https://127.0.0.1:1/generate", {"prompt": "x"})
    with serving.BatchingServer(flaky, max_batch=1) as server:
        status, body = serving.post_json(f"{server.url}/generate", {"text": "no prompt key"})
        assert status == 400 and "prompt" in body["error"]
        assert serving.post_json(f"{server.url}/nowhere", {"prompt": "x"})[0] == 404
        status, body = serving.post_json(f"{server.url}/generate", {"prompt": "boom"})
        assert status == 500 and "model crashed" in body["error"]
        status, body = serving.post_json(f"{server.url}/generate", {"prompt": "short"})
        assert status == 500 and "returned 0 texts for 1 prompts" in body["error"]
        assert serving.post_json(f"{server.url}/generate", {"prompt": "fine"}) == (
            200,
            {"text": "fine", "batch_size": 1},
        )


def test_an_exception_inside_with_still_stops_the_server() -> None:
    """Does a failing cell (an exception in the with block) leave no server and no taken port?"""
    with pytest.raises(ZeroDivisionError), serving.BatchingServer(upper_slowly) as server:
        port = int(server.url.rsplit(":", 1)[1])
        raise ZeroDivisionError("a failing cell")
    assert not server.running
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_start_twice_or_on_a_taken_port_fails_clearly() -> None:
    """Does starting twice, or on a port already in use, raise ServingError with the reason?"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(serving.ServingError, match="cannot listen"):
            serving.BatchingServer(upper_slowly, port=port).start()
    with (
        serving.BatchingServer(upper_slowly) as server,
        pytest.raises(serving.ServingError, match="already running"),
    ):
        server.start()
    with pytest.raises(ValueError, match="max_batch"):
        serving.BatchingServer(upper_slowly, max_batch=0)


def test_stop_fails_requests_still_waiting() -> None:
    """Does a request in flight when the server stops get an answer (an error), not hang?"""
    started = threading.Event()

    def slow(prompts: list[str]) -> list[str]:
        started.set()
        time.sleep(0.3)
        return prompts

    server = serving.BatchingServer(slow, max_batch=1).start()
    url = server.url
    replies: list[object] = []

    def client() -> None:
        try:
            replies.append(serving.post_json(f"{url}/generate", {"prompt": "x"}, timeout_s=10)[0])
        except OSError as error:  # not yet accepted when the socket closed
            replies.append(type(error).__name__)

    clients = [threading.Thread(target=client) for _ in range(3)]
    for thread in clients:
        thread.start()
    assert started.wait(5)
    time.sleep(0.05)  # let the other two queue up behind the first
    server.stop()
    for thread in clients:
        thread.join(timeout=10)
    assert all(not thread.is_alive() for thread in clients), "a client hung after stop()"
    assert sorted(replies, key=str) == [200, 503, 503], replies
