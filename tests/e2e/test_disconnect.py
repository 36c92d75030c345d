"""A client that goes away mid-request frees its engine slot and KV cache promptly."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.conftest import EMBEDDING_MODEL, MODEL, ServerProcess

pytestmark = pytest.mark.slow

LONG_STORY = [
    {
        "role": "user",
        "content": "Write a very long, detailed story about a dragon who learns to bake bread. "
        "Make it at least five thousand words long, with many chapters.",
    }
]
LONG_REQUEST = {
    "model": MODEL,
    "messages": LONG_STORY,
    "max_tokens": 2000,
    "temperature": 1.0,
    "seed": 7,  # reproducible, and this seed gives a long story (no early end of text)
}


def engine_stats(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(server.base_url + "/health", timeout=5)
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()["engines"][MODEL]
    return stats


def is_idle(stats: dict[str, Any]) -> bool:
    return stats["running"] == 0 and stats["waiting"] == 0 and stats["kv_cache_used_tokens"] == 0


def wait_idle(server: ServerProcess, within_s: float) -> float:
    """Poll /health until the engine is idle; return how long it took, or fail."""
    started = time.monotonic()
    stats = engine_stats(server)
    trace = []
    while not is_idle(stats):
        elapsed = time.monotonic() - started
        trace.append((round(elapsed, 2), stats["running"], stats["kv_cache_used_tokens"]))
        assert elapsed < within_s, f"engine still busy after {elapsed:.2f}s: {stats}; {trace}"
        time.sleep(0.05)
        stats = engine_stats(server)
    return time.monotonic() - started


def wait_busy(server: ServerProcess, within_s: float = 10.0) -> dict[str, Any]:
    """Poll until the engine has a running sequence with KV cache in use."""
    deadline = time.monotonic() + within_s
    while True:
        stats = engine_stats(server)
        if stats["running"] >= 1 and stats["kv_cache_used_tokens"] > 0:
            return stats
        assert time.monotonic() < deadline, f"request never started running: {stats}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def warm_server(server: ServerProcess) -> ServerProcess:
    """The embedding model loads in a background thread after startup, competing for the CPU
    and the GIL for a few seconds; wait for it so that timings below measure the engine only."""
    response = httpx.post(
        server.v1 + "/embeddings",
        json={"model": EMBEDDING_MODEL, "input": "warm up"},
        headers=server.headers,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return server


@pytest.fixture(autouse=True)
def idle_engine(warm_server: ServerProcess) -> None:
    # Other modules share the server: start from an idle engine.
    wait_idle(warm_server, within_s=60)


def test_streaming_disconnect_frees_slot(server: ServerProcess) -> None:
    body = {**LONG_REQUEST, "stream": True}
    with (
        httpx.Client(timeout=30, headers=server.headers) as client,
        client.stream("POST", server.v1 + "/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                events.append(line)
            if len(events) >= 3:
                break
        assert all(e != "data: [DONE]" for e in events)
        stats = engine_stats(server)
        if stats["running"] != 1:
            rest = [line for line in lines if line]
            raise AssertionError((stats, events, rest))
        assert stats["kv_cache_used_tokens"] > 0, stats
    # Leaving both blocks closes the response and its connection mid-stream.
    took = wait_idle(server, within_s=2.0)
    assert took < 2.0


def test_abandoned_non_streaming_request_frees_slot(server: ServerProcess) -> None:
    with (
        httpx.Client(timeout=0.5, headers=server.headers) as client,
        pytest.raises(httpx.TimeoutException),
    ):
        client.post(server.v1 + "/chat/completions", json=LONG_REQUEST)
    # The client gave up after 0.5 s; the 2000-token generation must not run on.
    took = wait_idle(server, within_s=3.0)
    assert took < 3.0


def test_abandoned_request_that_was_running(server: ServerProcess) -> None:
    """Like above, but make sure the sequence really is decoding when the client leaves."""
    body = json.dumps(LONG_REQUEST).encode()
    url = httpx.URL(server.v1)
    head = (
        f"POST {url.path}/chat/completions HTTP/1.1\r\n"
        f"Host: {url.host}:{url.port}\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: Bearer {server.admin_key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    assert url.host is not None and url.port is not None
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(head + body)
        wait_busy(server)
        # Leaving the block closes the connection before any reply was sent.
    wait_idle(server, within_s=3.0)


def test_server_still_serves_after_disconnects(server: ServerProcess) -> None:
    response = httpx.post(
        server.v1 + "/chat/completions",
        json={**LONG_REQUEST, "max_tokens": 5},
        headers=server.headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] <= 5
    wait_idle(server, within_s=2.0)


def test_disconnect_is_not_logged_as_a_server_error(server: ServerProcess) -> None:
    """A client going away is routine: no 'unhandled error' traceback in the server log."""
    start = len(server.log())
    with (
        httpx.Client(timeout=0.5, headers=server.headers) as client,
        pytest.raises(httpx.TimeoutException),
    ):
        client.post(server.v1 + "/chat/completions", json=LONG_REQUEST)
    wait_idle(server, within_s=3.0)
    time.sleep(0.3)  # let the server finish writing its log for that request
    log = server.log()[start:]
    assert "unhandled error" not in log, log
    assert "Traceback" not in log, log
