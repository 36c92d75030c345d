"""Quotas Azure's way on real servers: RPM and TPM per deployment, key limits, the estimate
charged on arrival and corrected at the end, 429s in both dialects, atomic admission under
concurrency, and one quota shared by three processes through Redis.

Each test makes its own project and deployment, so its buckets start full.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import (
    EMBEDDING_MODEL,
    SMALL_ENGINE,
    ServerProcess,
    start_server,
    stop_server,
)
from tests.e2e.gateway_helpers import (
    AZURE_API_VERSION,
    LONG_STORY,
    AdminApi,
    assert_azure_error,
    assert_openai_error,
    assert_retry_after,
    azure_chat,
    bearer,
    chat_body,
    rate_limit_numbers,
    stored_usage,
    warm_up,
)

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
QUOTA_PREFIX = "ceruleum:quota:"  # gateway/redis_quota.py DEFAULT_PREFIX


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
class Setup:
    project_id: str
    deployment: str
    key: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key["secret"])


def setup(admin: AdminApi, key_limits: dict[str, Any] | None = None, **quota: Any) -> Setup:
    """A fresh project with one deployment (``quota`` given to it) and one member key."""
    project_id = admin.project("quota")
    deployment = admin.deployment(project_id, **quota)
    key = admin.key(project_id, "member", **(key_limits or {}))
    return Setup(project_id, deployment, key)


def headers_int(response: httpx.Response, name: str) -> int:
    return int(response.headers[name])


# --- requests per minute --------------------------------------------------------------------------


def test_rpm_derived_from_tpm_gives_429_with_headers_in_both_dialects(
    admin: AdminApi, http: httpx.Client
) -> None:
    s = setup(admin, tokens_per_minute=2000)  # RPM: 6 per 1,000 TPM = 12
    shown = admin.client.get(f"/admin/projects/{s.project_id}/deployments/{s.deployment}").json()
    assert shown["tokens_per_minute"] == 2000 and shown["requests_per_minute"] is None, shown

    # 12 requests a minute: one comes back every 5 s. Send until refused; however slow the
    # machine, no more may pass than 12 plus what the elapsed time refilled.
    started = time.monotonic()
    remaining = []
    refused = None
    for _ in range(48):
        response = http.post(
            "/v1/chat/completions", json=chat_body(s.deployment), headers=s.headers
        )
        if response.status_code == 429:
            refused = response
            break
        assert response.status_code == 200, response.text
        values = rate_limit_numbers(response)
        assert values["x-ratelimit-limit-requests"] == "12", values
        assert values["x-ratelimit-limit-tokens"] == "2000", values
        assert response.headers["x-request-id"].startswith("req_")
        remaining.append(int(values["x-ratelimit-remaining-requests"]))
        refilled = math.floor(12 / 60 * (time.monotonic() - started))
        assert len(remaining) <= 12 + refilled, (remaining, refilled)
    assert refused is not None, f"never refused: {remaining}"
    assert remaining[0] == 11, remaining
    assert len(remaining) >= 12, remaining
    assert remaining[-1] <= 1 + math.floor(12 / 60 * (time.monotonic() - started)), remaining
    if len(remaining) == 12:  # nothing refilled: each request took one from the bucket
        assert remaining == list(range(11, -1, -1)), remaining

    error = assert_openai_error(refused, 429, "rate_limit_exceeded")
    assert "requests per min" in error["message"].lower() or "rpm" in error["message"].lower()
    assert error["type"] == "requests"
    seconds, _ = assert_retry_after(refused)
    assert seconds <= 5, seconds  # one request refills in 60/12 = 5 s
    assert rate_limit_numbers(refused)["x-ratelimit-remaining-requests"] == "0"

    for path in (azure_chat(s.deployment), "/openai/v1/chat/completions"):
        azure = http.post(path, json=chat_body(s.deployment), headers=s.headers)
        error = assert_azure_error(azure, 429, "429")
        assert "ChatCompletions_Create" in error["message"], error
        assert "rate limit" in error["message"], error
        assert_retry_after(azure)
        rate_limit_numbers(azure)

    # Another deployment of the same project is a bucket of its own.
    other = admin.deployment(s.project_id, tokens_per_minute=2000)
    response = http.post("/v1/chat/completions", json=chat_body(other), headers=s.headers)
    assert response.status_code == 200, response.text


def test_every_inference_response_carries_the_rate_limit_headers(
    admin: AdminApi, http: httpx.Client
) -> None:
    s = setup(admin, tokens_per_minute=100_000)
    embedding = admin.deployment(s.project_id, model=EMBEDDING_MODEL, tokens_per_minute=100_000)
    version = {"api-version": AZURE_API_VERSION}
    completion = {"model": s.deployment, "prompt": "Hello", "max_tokens": 1}
    calls: list[tuple[str, dict[str, Any], dict[str, str] | None]] = [
        ("/v1/chat/completions", chat_body(s.deployment), None),
        ("/v1/completions", completion, None),
        ("/v1/embeddings", {"model": embedding, "input": "Hello"}, None),
        ("/openai/v1/chat/completions", chat_body(s.deployment), None),
        (f"/openai/deployments/{s.deployment}/chat/completions", chat_body(), version),
        (f"/openai/deployments/{s.deployment}/completions", completion, version),
        (f"/openai/deployments/{embedding}/embeddings", {"input": "Hello"}, version),
    ]
    for path, body, params in calls:
        response = http.post(path, json=body, params=params, headers=s.headers)
        assert response.status_code == 200, (path, response.text)
        rate_limit_numbers(response)
        assert response.headers["x-request-id"].startswith("req_"), path
    stream_body = chat_body(s.deployment, stream=True)
    with http.stream("POST", "/v1/chat/completions", json=stream_body, headers=s.headers) as r:
        assert r.status_code == 200
        rate_limit_numbers(r)
        r.read()


def test_estimate_is_prompt_plus_max_tokens_times_n(admin: AdminApi, http: httpx.Client) -> None:
    s = setup(admin, tokens_per_minute=100_000)  # a fresh, full bucket
    body = chat_body(s.deployment, max_tokens=20, n=3)
    response = http.post("/v1/chat/completions", json=body, headers=s.headers)
    assert response.status_code == 200, response.text
    prompt_tokens = response.json()["usage"]["prompt_tokens"]
    values = rate_limit_numbers(response)
    # The headers show the bucket right after the charge on arrival: prompt + 20 x 3.
    assert int(values["x-ratelimit-remaining-tokens"]) == 100_000 - (prompt_tokens + 60), values
    assert values["x-ratelimit-remaining-requests"] == "599", values  # 600 RPM, one taken


# --- tokens per minute: charged on arrival, corrected at the end ---------------------------------


def test_tpm_charges_max_tokens_on_arrival_and_corrects_it_at_the_end(
    admin: AdminApi, http: httpx.Client, server: ServerProcess
) -> None:
    s = setup(admin, tokens_per_minute=600, requests_per_minute=1000)
    big = {"model": s.deployment, **LONG_STORY, "max_tokens": 500}
    with (
        httpx.Client(base_url=http.base_url, timeout=120, headers=s.headers) as client,
        client.stream("POST", "/v1/chat/completions", json={**big, "stream": True}) as first,
    ):
        # Admitted: prompt + 500 tokens are charged now, while it is still generating.
        assert first.status_code == 200, first.read()
        admitted_at = time.monotonic()
        first_id = first.headers["x-request-id"]
        values = rate_limit_numbers(first)
        assert values["x-ratelimit-limit-tokens"] == "600", values
        left_after_first = int(values["x-ratelimit-remaining-tokens"])
        prompt_tokens = 600 - 500 - left_after_first  # up to a token of refill
        assert 10 < prompt_tokens < 100, values
        lines = first.iter_lines()
        chunks: list[str] = []
        for line in lines:
            if line.startswith("data: "):
                chunks.append(line)
            if len(chunks) >= 3:
                break
        assert "[DONE]" not in "".join(chunks), chunks

        # The identical request does not fit beside it: refused for tokens, in both dialects.
        second = client.post("/v1/chat/completions", json=big)
        error = assert_openai_error(second, 429, "rate_limit_exceeded")
        assert "tokens per min" in error["message"].lower(), error
        assert "600" in error["message"], error
        assert_retry_after(second)
        assert rate_limit_numbers(second)["x-ratelimit-limit-tokens"] == "600"
        azure = client.post(azure_chat(s.deployment), json=big)
        error = assert_azure_error(azure, 429, "429")
        assert "token rate limit" in error["message"], error
        assert_retry_after(azure)
        # Leaving the block disconnects mid-stream: the request ends with few real tokens.

    # The server notices the disconnect, records the request (status 499, the tokens so far) and
    # settles its charge to them at the same moment.
    deadline = time.monotonic() + 5
    while not (
        rows := [r for r in stored_usage(server, s.key["id"]) if r["request_id"] == first_id]
    ):
        assert time.monotonic() < deadline, "the disconnected request was not recorded"
        time.sleep(0.1)
    (row,) = rows
    assert row["status"] == 499, row
    real_first = row["prompt_tokens"] + row["completion_tokens"]
    assert real_first < prompt_tokens + 500, row

    small = http.post(
        "/v1/chat/completions", json=chat_body(s.deployment, max_tokens=5), headers=s.headers
    )
    assert small.status_code == 200, small.text
    charged_small = small.json()["usage"]["prompt_tokens"] + 5
    refill = math.ceil(600 / 60 * (time.monotonic() - admitted_at))
    # Had the first request kept its estimate, at most this much would be left now ...
    without_correction = left_after_first + refill - charged_small + 1
    remaining = headers_int(small, "x-ratelimit-remaining-tokens")
    assert remaining > without_correction + 100, (remaining, without_correction, row)
    # ... and with the correction, this much at least (the first counted at its real size).
    assert remaining >= 600 - real_first - charged_small - 1, (remaining, real_first, row)

    # With the estimate given back, a request for 300 tokens fits again (without the correction
    # fewer than 100 would be left); admission is all it needs to show.
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json={**big, "max_tokens": 300, "stream": True},
        headers=s.headers,
    ) as again:
        assert again.status_code == 200, again.read()


def test_request_larger_than_the_whole_tpm_never_fits(admin: AdminApi, http: httpx.Client) -> None:
    s = setup(admin, tokens_per_minute=600, requests_per_minute=1000)
    body = chat_body(s.deployment, max_tokens=1000)
    response = http.post("/v1/chat/completions", json=body, headers=s.headers)
    error = assert_openai_error(response, 429, "tokens_exceed_limit")
    assert "never" in error["message"] and "600" in error["message"], error
    assert "max_tokens" in error["message"], error
    assert_retry_after(response)
    rate_limit_numbers(response)
    azure = http.post(azure_chat(s.deployment), json=body, headers=s.headers)
    assert azure.status_code == 429, azure.text
    assert "never" in azure.json()["error"]["message"], azure.text
    # Nothing was charged: a request that fits still gets the whole bucket.
    ok = http.post("/v1/chat/completions", json=chat_body(s.deployment), headers=s.headers)
    assert ok.status_code == 200, ok.text
    assert headers_int(ok, "x-ratelimit-remaining-tokens") >= 600 - 100


# --- key limits -----------------------------------------------------------------------------------


def test_key_rpm_limit_applies_while_the_deployment_has_plenty(
    admin: AdminApi, http: httpx.Client
) -> None:
    s = setup(admin, key_limits={"requests_per_minute": 3}, tokens_per_minute=100_000)
    for expected_left in (2, 1, 0):
        response = http.post(
            "/v1/chat/completions", json=chat_body(s.deployment), headers=s.headers
        )
        assert response.status_code == 200, response.text
        values = rate_limit_numbers(response)
        assert values["x-ratelimit-limit-requests"] == "3", values  # the key is the tighter
        assert values["x-ratelimit-remaining-requests"] == str(expected_left), values
    refused = http.post("/v1/chat/completions", json=chat_body(s.deployment), headers=s.headers)
    error = assert_openai_error(refused, 429, "rate_limit_exceeded")
    assert "Limit 3" in error["message"], error
    assert_retry_after(refused)

    # The deployment itself has plenty: another key of the project is admitted at once.
    other = admin.key(s.project_id, "member")
    ok = http.post(
        "/v1/chat/completions", json=chat_body(s.deployment), headers=bearer(other["secret"])
    )
    assert ok.status_code == 200, ok.text
    values = rate_limit_numbers(ok)
    assert values["x-ratelimit-limit-requests"] == "600", values  # 6 per 1,000 of 100,000 TPM
    assert int(values["x-ratelimit-remaining-requests"]) >= 600 - 5, values


# --- atomic admission -----------------------------------------------------------------------------


async def burst(
    requests: list[tuple[str, dict[str, Any]]], headers: dict[str, str]
) -> tuple[list[httpx.Response], float]:
    """All at once on separate connections; the responses and the seconds the burst took."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.post(url, json=body) for url, body in requests))
        return list(responses), time.monotonic() - started


def test_concurrent_requests_never_overshoot(admin: AdminApi, server: ServerProcess) -> None:
    s = setup(admin, tokens_per_minute=1_000_000, requests_per_minute=20)
    url = server.v1 + "/chat/completions"
    responses, elapsed = asyncio.run(burst([(url, chat_body(s.deployment))] * 50, s.headers))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, [
        r.text for r in responses if r.status_code not in (200, 429)
    ]
    admitted = statuses.count(200)
    # Exactly 20, unless the burst ran long enough for the bucket to refill (20/60 per second).
    assert 20 <= admitted <= 20 + math.floor(20 / 60 * elapsed), (admitted, elapsed)
    assert statuses.count(429) == 50 - admitted
    for response in responses:
        if response.status_code == 429:
            assert_openai_error(response, 429, "rate_limit_exceeded")
            assert_retry_after(response)
        else:
            rate_limit_numbers(response)


# --- three processes, one Redis -------------------------------------------------------------------


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


async def postgres(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def shared_database() -> Iterator[str]:
    """A fresh Postgres database for the three servers, dropped afterwards."""
    try:
        redis_client().ping()
    except Exception as exc:
        pytest.skip(f"Redis is unreachable at {REDIS_URL}: {exc!r}")
    name = "ceruleum_quota_" + uuid.uuid4().hex[:12]
    try:
        asyncio.run(postgres(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        pytest.skip(f"Postgres is unreachable at {POSTGRES_DSN}: {exc!r}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def redis_servers(
    shared_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    env = {
        **SMALL_ENGINE,
        "CERULEUM_REDIS_URL": REDIS_URL,
        "CERULEUM_DATABASE_URL": shared_database,
        "CERULEUM_ADMIN_KEY": "test-admin-" + secrets.token_hex(16),
    }
    # The first one migrates the new database; the other two find it at the newest revision.
    servers = [start_server(tmp_path_factory.mktemp("redis-0"), env=env)]
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(start_server, tmp_path_factory.mktemp(f"redis-{i}"), env=env)
                for i in (1, 2)
            ]
        failures = []
        for future in futures:  # keep every server that started, so that all are stopped
            try:
                servers.append(future.result())
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]
        yield servers
    finally:
        for proc in servers:
            stop_server(proc)


# Its fixture starts three servers, each loading the model and the content classifier: on a
# loaded 2-core machine that alone can pass the suite's 300 s limit for a hang.
@pytest.mark.timeout(900)
def test_three_processes_share_one_quota_through_redis(redis_servers: list[ServerProcess]) -> None:
    first = redis_servers[0]
    admin = AdminApi(first.base_url, first.admin_key)
    scopes: list[str] = []
    try:
        s = setup(admin, tokens_per_minute=10_000_000, requests_per_minute=15)
        scopes = [f"{QUOTA_PREFIX}deployment:{s.project_id}:{s.deployment}"]
        path = f"/admin/projects/{s.project_id}/deployments/{s.deployment}"
        for proc in redis_servers[1:]:  # one database: what one server made, all see
            seen = httpx.get(proc.base_url + path, headers=bearer(proc.admin_key), timeout=30)
            assert seen.status_code == 200, seen.text
            assert seen.json()["requests_per_minute"] == 15

        requests = [
            (redis_servers[i % 3].v1 + "/chat/completions", chat_body(s.deployment))
            for i in range(45)
        ]
        responses, elapsed = asyncio.run(burst(requests, s.headers))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}, [r.text for r in responses if r.status_code != 200]
        admitted = statuses.count(200)
        per_server = [statuses[i::3].count(200) for i in range(3)]  # request i went to i % 3
        assert 15 <= admitted <= 15 + math.floor(15 / 60 * elapsed), (admitted, per_server, elapsed)
        for response in responses:
            if response.status_code == 429:
                assert_openai_error(response, 429, "rate_limit_exceeded")
                assert_retry_after(response)
            else:
                assert rate_limit_numbers(response)["x-ratelimit-limit-requests"] == "15"
        # The counters live in Redis under the deployment's scope.
        assert redis_client().exists(*scopes) == 1, scopes
    finally:
        admin.close()
        if scopes:
            redis_client().delete(*scopes)
