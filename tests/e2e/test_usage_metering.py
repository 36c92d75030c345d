"""Usage metering on a real server: one row per request (also failed, refused and disconnected
ones), visible through GET /admin/usage to the admin and to the project's own keys only.

The per-row details (status, request id) are not in the summary API, so they are read from the
server's SQLite file, read-only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL, ServerProcess
from tests.e2e.gateway_helpers import (
    LONG_STORY,
    AdminApi,
    assert_openai_error,
    bearer,
    chat_body,
    stored_usage,
    warm_up,
)

pytestmark = pytest.mark.slow

USAGE_WAIT_S = 3.0  # the recorder writes behind every second


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[AdminApi]:
    warm_up(server)  # timings below must not include the server's start
    api = AdminApi(server.base_url, server.admin_key)
    yield api
    api.close()


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client


@dataclass
class Tenant:
    project_id: str
    deployment: str
    owner: dict[str, Any]


@pytest.fixture(scope="module")
def tenant(admin: AdminApi) -> Tenant:
    project_id = admin.project("usage")
    return Tenant(project_id, admin.deployment(project_id), admin.key(project_id, "owner"))


@pytest.fixture(scope="module")
def other_tenant(admin: AdminApi) -> Tenant:
    project_id = admin.project("usage-other")
    return Tenant(project_id, admin.deployment(project_id), admin.key(project_id, "owner"))


def summary(
    http: httpx.Client, headers: dict[str, str], group_by: str, project_id: str | None = None
) -> list[dict[str, Any]]:
    params = {"group_by": group_by}
    if project_id is not None:
        params["project_id"] = project_id
    response = http.get("/admin/usage", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    rows: list[dict[str, Any]] = body["data"]
    return rows


def wait_for(read: Callable[[], Any], ready: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + USAGE_WAIT_S
    while True:
        value = read()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not recorded within {USAGE_WAIT_S}s: {value}")
        time.sleep(0.1)


def key_row(
    http: httpx.Client, server: ServerProcess, tenant: Tenant, key_id: str, requests: int
) -> dict[str, Any]:
    """The key's summary row once it counts ``requests`` requests."""

    def read() -> dict[str, Any] | None:
        rows = summary(http, server.headers, "key", tenant.project_id)
        return next((row for row in rows if row["key_id"] == key_id), None)

    row: dict[str, Any] = wait_for(
        read, lambda row: row is not None and row["requests"] >= requests, f"usage of {key_id}"
    )
    assert row["requests"] == requests, row
    assert row["project_id"] == tenant.project_id, row
    return row


def test_request_is_metered_with_its_real_token_counts(
    admin: AdminApi, http: httpx.Client, server: ServerProcess, tenant: Tenant
) -> None:
    member = admin.key(tenant.project_id, "member")
    response = http.post(
        "/v1/chat/completions",
        json=chat_body(tenant.deployment, max_tokens=8),
        headers=bearer(member["secret"]),
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["completion_tokens"] >= 1

    row = key_row(http, server, tenant, member["id"], requests=1)
    assert row["prompt_tokens"] == usage["prompt_tokens"], (row, usage)
    assert row["completion_tokens"] == usage["completion_tokens"], (row, usage)
    assert row["total_tokens"] == usage["total_tokens"], (row, usage)
    assert row["errors"] == 0, row
    assert row["latency_ms_avg"] > 0, row

    by_model = summary(http, server.headers, "model", tenant.project_id)
    assert MODEL in [r["model"] for r in by_model], by_model
    by_deployment = summary(http, server.headers, "deployment", tenant.project_id)
    assert tenant.deployment in [r["deployment"] for r in by_deployment], by_deployment

    (stored,) = stored_usage(server, member["id"])
    assert stored["request_id"] == response.headers["x-request-id"], stored
    assert stored["status"] == 200, stored
    assert stored["project_id"] == tenant.project_id, stored
    assert stored["deployment"] == tenant.deployment and stored["model"] == MODEL, stored
    assert stored["latency_ms"] > 0, stored


def test_completed_stream_is_metered_like_its_final_usage_chunk(
    admin: AdminApi, http: httpx.Client, server: ServerProcess, tenant: Tenant
) -> None:
    member = admin.key(tenant.project_id, "member")
    body = chat_body(
        tenant.deployment, max_tokens=12, stream=True, stream_options={"include_usage": True}
    )
    with http.stream(
        "POST", "/v1/chat/completions", json=body, headers=bearer(member["secret"])
    ) as response:
        assert response.status_code == 200, response.read()
        request_id = response.headers["x-request-id"]
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events
    usage = json.loads(events[-2])["usage"]

    row = key_row(http, server, tenant, member["id"], requests=1)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    ), (row, usage)
    (stored,) = stored_usage(server, member["id"])
    assert stored["request_id"] == request_id and stored["status"] == 200, stored


def test_failed_and_refused_requests_are_recorded_with_their_status(
    admin: AdminApi, http: httpx.Client, server: ServerProcess, tenant: Tenant
) -> None:
    member = admin.key(tenant.project_id, "member", requests_per_minute=1)
    headers = bearer(member["secret"])
    too_long = http.post(
        "/v1/chat/completions", json=chat_body(tenant.deployment, max_tokens=10**6), headers=headers
    )
    assert_openai_error(too_long, 400, "context_length_exceeded")
    ok = http.post("/v1/chat/completions", json=chat_body(tenant.deployment), headers=headers)
    assert ok.status_code == 200, ok.text
    refused = http.post("/v1/chat/completions", json=chat_body(tenant.deployment), headers=headers)
    assert_openai_error(refused, 429, "rate_limit_exceeded")

    row = key_row(http, server, tenant, member["id"], requests=3)
    assert row["errors"] == 2, row
    assert row["prompt_tokens"] == ok.json()["usage"]["prompt_tokens"], row
    assert row["completion_tokens"] == ok.json()["usage"]["completion_tokens"], row

    stored = stored_usage(server, member["id"])
    assert [r["status"] for r in stored] == [400, 200, 429], stored
    for r in stored:
        assert r["project_id"] == tenant.project_id and r["deployment"] == tenant.deployment, r
    failed = stored[0]
    assert failed["completion_tokens"] == 0, failed
    assert stored[1]["request_id"] == ok.headers["x-request-id"], stored
    assert len({r["request_id"] for r in stored}) == 3, stored


def test_disconnected_stream_is_recorded_with_the_tokens_so_far(
    admin: AdminApi, http: httpx.Client, server: ServerProcess, tenant: Tenant
) -> None:
    member = admin.key(tenant.project_id, "member")
    body = {"model": tenant.deployment, **LONG_STORY, "max_tokens": 500, "stream": True}
    content_chunks = 0
    with (
        httpx.Client(base_url=server.base_url, timeout=60) as client,
        client.stream(
            "POST", "/v1/chat/completions", json=body, headers=bearer(member["secret"])
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            assert line != "data: [DONE]", "the stream ended before the client left"
            choices = json.loads(line[6:])["choices"]
            if not choices:
                continue  # the prompt's content-filter annotation
            delta = choices[0]["delta"]
            content_chunks += 1 if delta.get("content") else 0
            if content_chunks >= 3:
                break
    # Leaving both blocks closes the connection mid-stream.

    row = key_row(http, server, tenant, member["id"], requests=1)
    assert row["errors"] == 1, row
    assert row["completion_tokens"] >= content_chunks, row
    assert row["prompt_tokens"] > 0, row
    (stored,) = stored_usage(server, member["id"])
    assert stored["status"] == 499, stored
    assert stored["request_id"] == request_id, stored
    assert content_chunks <= stored["completion_tokens"] < 500, stored


def test_keys_see_their_own_projects_usage_only(
    admin: AdminApi,
    http: httpx.Client,
    server: ServerProcess,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    for t in (tenant, other_tenant):
        response = http.post(
            "/v1/chat/completions", json=chat_body(t.deployment), headers=bearer(t.owner["secret"])
        )
        assert response.status_code == 200, response.text
        key_row(http, server, t, t.owner["id"], requests=1)

    reader = admin.key(tenant.project_id, "reader")
    member = admin.key(tenant.project_id, "member")
    for key in (tenant.owner, member, reader):
        headers = bearer(key["secret"])
        for params in ({}, {"project_id": tenant.project_id}):
            rows = summary(http, headers, "project", **params)
            assert [r["project_id"] for r in rows] == [tenant.project_id], rows
        by_key = summary(http, headers, "key")
        assert tenant.owner["id"] in [r["key_id"] for r in by_key], by_key
        assert {r["project_id"] for r in by_key} == {tenant.project_id}, by_key
        theirs = http.get(
            "/admin/usage", params={"project_id": other_tenant.project_id}, headers=headers
        )
        nowhere = http.get("/admin/usage", params={"project_id": "proj_nowhere"}, headers=headers)
        assert_openai_error(theirs, 404, nowhere.json()["error"]["code"])
        assert nowhere.status_code == 404, nowhere.text

    everything = {r["project_id"] for r in summary(http, server.headers, "project")}
    assert {tenant.project_id, other_tenant.project_id} <= everything
    assert summary(http, server.headers, "project", other_tenant.project_id)[0]["requests"] >= 1
