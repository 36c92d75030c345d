"""/metrics and /admin/usage on a real server; a chat request shows up in both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.registry import resolve_chat_model
from tests.conftest import MODEL, ServerProcess

pytestmark = pytest.mark.slow

USAGE_WAIT_S = 10.0  # the recorder writes every second; leave room for a slow machine


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def model_usage(client: httpx.Client, server: ServerProcess, since: str) -> dict[str, Any] | None:
    response = client.get(
        "/admin/usage", params={"group_by": "model", "since": since}, headers=server.headers
    )
    assert response.status_code == 200, response.text
    rows = [row for row in response.json()["data"] if row["model"] == MODEL]
    return rows[0] if rows else None


def wait_for_usage(
    client: httpx.Client, server: ServerProcess, since: str, ready: Any
) -> dict[str, Any]:
    deadline = time.monotonic() + USAGE_WAIT_S
    while True:
        row = model_usage(client, server, since)
        if row is not None and ready(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"usage not recorded in time: {row}")
        time.sleep(0.1)


def end_of_generation_tokens() -> list[int]:
    model = LlamaModel(resolve_chat_model(MODEL).path)
    try:
        return model.end_of_generation_tokens()
    finally:
        model.close()


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_with_the_admin_key(client: httpx.Client, server: ServerProcess) -> None:
    response = client.get("/metrics", headers=server.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "ceruleum_num_requests_running" in response.text
    assert "ceruleum_kv_cache_usage_ratio" in response.text
    values = metric_values(response.text)
    assert ("ceruleum_kv_cache_usage_ratio", (("model", MODEL),)) in values


def test_metrics_without_a_key_is_401(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401, response.text
    assert response.json()["error"]["message"]


def test_admin_usage_lists(client: httpx.Client, server: ServerProcess) -> None:
    response = client.get("/admin/usage", headers=server.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert isinstance(body["data"], list)
    assert client.get("/admin/usage").status_code == 401
    bad = client.get("/admin/usage", params={"since": "soon"}, headers=server.headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "since"


def chat(client: httpx.Client, server: ServerProcess, body: dict[str, Any]) -> httpx.Response:
    """POST a chat request; a 429 (the session's server is shared with quota tests) is retried."""
    for _ in range(5):
        response = client.post("/v1/chat/completions", json=body, headers=server.headers)
        if response.status_code != 429:
            break
        time.sleep(min(float(response.headers.get("retry-after", "1")), 5.0))
    return response


def test_a_chat_request_is_metered_and_counted(client: httpx.Client, server: ServerProcess) -> None:
    since = f"{time.time():.3f}"  # not whole seconds: earlier requests stay out of the window
    response = chat(
        client,
        server,
        {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0

    def has_mine(row: dict[str, Any]) -> bool:
        # The admin key's usage is shared with other tests' requests: wait for at least ours.
        return (
            row["prompt_tokens"] >= usage["prompt_tokens"]
            and row["completion_tokens"] >= usage["completion_tokens"]
        )

    row = wait_for_usage(client, server, since, has_mine)
    assert row["project_id"] == "platform"  # the admin key's usage
    assert row["requests"] >= 1
    if row["requests"] == 1:  # nothing else finished meanwhile
        assert (row["prompt_tokens"], row["completion_tokens"], row["errors"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            0,
        )

    values = metric_values(client.get("/metrics", headers=server.headers).text)
    requests = [
        value
        for (name, labels), value in values.items()
        if name == "ceruleum_requests_total"
        and ("model", MODEL) in labels
        and ("status", "200") in labels
    ]
    assert sum(requests) >= 1
    assert values[("ceruleum_tokens_total", (("kind", "completion"), ("model", MODEL)))] > 0


def test_a_disconnected_stream_is_metered_with_its_tokens(
    client: httpx.Client, server: ServerProcess
) -> None:
    since = f"{time.time():.3f}"
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long story about the sea."}],
        "max_tokens": 400,
        "stream": True,
        # The model may not end on its own: a story that ended before the client left would
        # never be a disconnect (it happened once, after 26 tokens).
        "logit_bias": {str(token): -100 for token in end_of_generation_tokens()},
    }
    chunks = 0
    with client.stream("POST", "/v1/chat/completions", json=body, headers=server.headers) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                chunks += 1
            if chunks >= 3:
                break  # leaving the block closes the connection mid-stream
    row = wait_for_usage(client, server, since, lambda row: row["errors"] >= 1)
    assert row["completion_tokens"] >= 2  # the tokens produced before the client left
    assert row["completion_tokens"] < 400 * row["requests"]
    # Streams report their time to first token.
    values = metric_values(client.get("/metrics", headers=server.headers).text)
    assert values[("ceruleum_time_to_first_token_seconds_count", (("model", MODEL),))] >= 1
