"""What the gateway end-to-end tests share: tenants made through the admin API, request bodies,
and checks of the two error dialects and the rate-limit headers.

Everything is created through the real admin API of a real server; nothing touches the store
directly.
"""

from __future__ import annotations

import secrets
import sqlite3
import string
import uuid
from typing import Any

import httpx

from tests.conftest import ANNOTATE_ONLY_POLICY, EMBEDDING_MODEL, MODEL, ServerProcess

AZURE_API_VERSION = "2024-10-21"
PROJECTS = "/admin/projects"
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)
SHORT_MESSAGES = [{"role": "user", "content": "Say hi."}]
# A prompt and seed that give a long story (no early end of text): see test_disconnect.py.
LONG_STORY = {
    "messages": [
        {
            "role": "user",
            "content": "Write a very long, detailed story about a dragon who learns to bake "
            "bread. Make it at least five thousand words long, with many chapters.",
        }
    ],
    "temperature": 1.0,
    "seed": 7,
}
USAGE_FIELDS = (
    "request_id",
    "project_id",
    "key_id",
    "deployment",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "status",
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def api_key(secret: str) -> dict[str, str]:
    return {"api-key": secret}


def bogus_key() -> str:
    """A well-formed key (``cer-<12>.<40>``) that no server ever issued."""
    prefix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
    return f"cer-{prefix}.{secrets.token_urlsafe(30)}"


def chat_body(model: str = MODEL, max_tokens: int = 1, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": SHORT_MESSAGES, "max_tokens": max_tokens, **extra}


def azure_chat(deployment: str) -> str:
    return f"/openai/deployments/{deployment}/chat/completions?api-version={AZURE_API_VERSION}"


class AdminApi:
    """The platform admin's view of a server; every secret it creates goes into ``secrets``."""

    def __init__(self, base_url: str, admin_key: str, created: list[str] | None = None) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=60, headers=bearer(admin_key))
        self.secrets = created if created is not None else []

    def close(self) -> None:
        self.client.close()

    def project(self, prefix: str = "proj") -> str:
        response = self.client.post(PROJECTS, json={"name": unique(prefix)})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def key(self, project_id: str, role: str = "member", **extra: Any) -> dict[str, Any]:
        """The created key, with its ``secret``."""
        response = self.client.post(
            f"{PROJECTS}/{project_id}/keys", json={"name": unique(role), "role": role, **extra}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        self.secrets.append(body["secret"])
        return body

    def deployment(self, project_id: str, model: str = MODEL, **extra: Any) -> str:
        """A new deployment of ``model`` in the project; its name. It annotates without
        filtering unless a ``content_filter`` is given (see ANNOTATE_ONLY in conftest.py)."""
        extra.setdefault("content_filter", ANNOTATE_ONLY_POLICY)
        name = unique("dep")
        response = self.client.post(
            f"{PROJECTS}/{project_id}/deployments", json={"name": name, "model": model, **extra}
        )
        assert response.status_code == 201, response.text
        return name

    def key_count(self) -> int:
        """Every key of every project, as the admin API lists them."""
        return sum(
            len(self.listed(f"{PROJECTS}/{project_id}/keys")) for project_id in self.project_ids()
        )

    def project_ids(self) -> list[str]:
        return [str(item["id"]) for item in self.listed(PROJECTS)]

    def listed(self, path: str) -> list[dict[str, Any]]:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def assert_openai_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    """OpenAI's shape: ``{"error": {message, type, param, code}}``, code a name or null."""
    error = error_of(response, status)
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code, error
    return error


def assert_azure_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Azure's shape: always a code (the status itself where OpenAI has none)."""
    error = error_of(response, status)
    assert error["code"] == code, error
    return error


def rate_limit_numbers(response: httpx.Response) -> dict[str, str]:
    """The six x-ratelimit-* headers, all present, the counts non-negative integers."""
    missing = [name for name in RATE_LIMIT_HEADERS if name not in response.headers]
    assert not missing, (missing, dict(response.headers))
    values = {name: response.headers[name] for name in RATE_LIMIT_HEADERS}
    for name in RATE_LIMIT_HEADERS[:4]:
        assert values[name].isdigit(), values
    for name in RATE_LIMIT_HEADERS[4:]:
        assert values[name].endswith("s"), values  # a duration: "0s", "84ms", "1.5s", "1m2s"
    return values


def assert_retry_after(response: httpx.Response) -> tuple[int, int]:
    """Azure's retry-after (whole seconds, at least 1) and retry-after-ms, consistent."""
    assert "retry-after" in response.headers, dict(response.headers)
    assert "retry-after-ms" in response.headers, dict(response.headers)
    seconds, ms = response.headers["retry-after"], response.headers["retry-after-ms"]
    assert seconds.isdigit() and int(seconds) >= 1, seconds
    assert ms.isdigit() and int(ms) >= 1, ms
    assert int(ms) <= int(seconds) * 1000, (seconds, ms)  # retry-after is rounded up
    return int(seconds), int(ms)


def stored_usage(server: ServerProcess, key_id: str) -> list[dict[str, Any]]:
    """A key's usage records straight from the server's SQLite file (read-only), oldest first.

    The summary API has no per-request status or request id; the table does.
    """
    path = server.data_dir / "ceruleum.db"
    assert path.exists(), f"the server should keep its store in SQLite at {path}"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        cursor = connection.execute(
            f"SELECT {', '.join(USAGE_FIELDS)} FROM usage_records WHERE key_id = ? ORDER BY id",
            (key_id,),
        )
        return [dict(zip(USAGE_FIELDS, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def warm_up(server: ServerProcess) -> None:
    """Wait until the server is done starting: the embedding model loads in a background thread
    after /health turns 200 and takes the CPU for seconds, which would skew timed bursts."""
    with httpx.Client(base_url=server.base_url, timeout=120, headers=server.headers) as client:
        embedded = client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "warm"})
        assert embedded.status_code in (200, 404), embedded.text  # 404: no embedding model
        chat = client.post("/v1/chat/completions", json=chat_body(MODEL))
        assert chat.status_code == 200, chat.text
