"""GET /admin/usage and GET /metrics in-process: who sees what, parameters, status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from ceruleum.gateway.usage import UsageEvent
from ceruleum.server import build_app
from ceruleum.settings import Settings
from ceruleum.store.api_keys import create_key
from ceruleum.store.projects import create_project
from tests.gateway.test_metrics import FakeChat, FakeEngine, FakePool

ADMIN_KEY = "test-admin-" + "x" * 32


@dataclass
class Gateway:
    client: httpx.AsyncClient
    keys: dict[str, str]  # role in project a, or "other" (owner of project b) -> secret
    projects: dict[str, str]  # "a" | "b" -> project id

    def as_(self, who: str) -> dict[str, str]:
        secret = ADMIN_KEY if who == "admin" else self.keys[who]
        return {"Authorization": f"Bearer {secret}"}


def usage_event(n: int, project_id: str, *, status: int = 200, day: int = 1) -> UsageEvent:
    return UsageEvent(
        request_id=f"chatcmpl-{project_id}-{n}",
        project_id=project_id,
        key_id=None,
        deployment=None,
        model="smol",
        prompt_tokens=10,
        completion_tokens=5,
        latency_ms=20,
        status=status,
        created_at=datetime(2024, 5, day, 12, tzinfo=UTC),
    )


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = Settings(data_dir=tmp_path, admin_key=SecretStr(ADMIN_KEY), embedding_model="")
    pool = FakePool({"smol": FakeChat(FakeEngine(running=2, used=100, capacity=400))})
    app = build_app(settings, pool)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        keys, projects = {}, {}
        async with app.state.db.session() as session:
            for name in ("a", "b"):
                projects[name] = (await create_project(session, name=f"project-{name}")).id
            for role in ("owner", "member", "reader"):
                _, new = await create_key(session, project_id=projects["a"], name=role, role=role)
                keys[role] = new.secret
            _, new = await create_key(session, project_id=projects["b"], name="o", role="owner")
            keys["other"] = new.secret
        for n in range(3):
            app.state.usage.record(usage_event(n, projects["a"], status=500 if n == 2 else 200))
        app.state.usage.record(usage_event(9, projects["b"], day=2))
        await app.state.usage.flush()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Gateway(client, keys, projects)


async def usage(gateway: Gateway, who: str, **params: Any) -> httpx.Response:
    return await gateway.client.get("/admin/usage", params=params, headers=gateway.as_(who))


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param


async def test_admin_sees_every_project_by_day(gateway: Gateway) -> None:
    response = await usage(gateway, "admin")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    a, b = gateway.projects["a"], gateway.projects["b"]
    expected = {
        (a, "2024-05-01"): (3, 1, 45),
        (b, "2024-05-02"): (1, 0, 15),
    }
    found = {
        (row["project_id"], row["day"]): (row["requests"], row["errors"], row["total_tokens"])
        for row in body["data"]
    }
    assert found == expected


async def test_admin_filters_by_project(gateway: Gateway) -> None:
    b = gateway.projects["b"]
    response = await usage(gateway, "admin", project_id=b, group_by="model")
    assert response.status_code == 200, response.text
    assert [(r["project_id"], r["model"]) for r in response.json()["data"]] == [(b, "smol")]


@pytest.mark.parametrize("role", ["owner", "member", "reader"])
async def test_a_project_key_sees_only_its_own_project(gateway: Gateway, role: str) -> None:
    a = gateway.projects["a"]
    for params in ({}, {"project_id": a}):
        response = await usage(gateway, role, group_by="project", **params)
        assert response.status_code == 200, response.text
        assert [r["project_id"] for r in response.json()["data"]] == [a]
    other = await usage(gateway, role, project_id=gateway.projects["b"])
    assert_error(other, 404, "project_id")


async def test_since_and_until_take_dates_and_unix_seconds(gateway: Gateway) -> None:
    day_two = await usage(gateway, "admin", since="2024-05-02", until="2024-05-02")
    assert [r["day"] for r in day_two.json()["data"]] == ["2024-05-02"]
    day_one = await usage(gateway, "admin", since="1714521600", until="1714608000")  # 1 May
    assert [r["day"] for r in day_one.json()["data"]] == ["2024-05-01"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-02-30"}, "until"),
        ({"group_by": "week"}, "group_by"),
    ],
)
async def test_invalid_parameters_are_400(
    gateway: Gateway, params: dict[str, str], param: str
) -> None:
    assert_error(await usage(gateway, "admin", **params), 400, param)


async def test_usage_needs_a_key(gateway: Gateway) -> None:
    assert_error(await gateway.client.get("/admin/usage"), 401)


async def test_metrics_only_for_the_admin(gateway: Gateway) -> None:
    assert_error(await gateway.client.get("/metrics"), 401)
    assert_error(await gateway.client.get("/metrics", headers=gateway.as_("owner")), 403)
    response = await gateway.client.get("/metrics", headers=gateway.as_("admin"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = {
        (sample.name, sample.labels.get("model")): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert values[("ceruleum_num_requests_running", "smol")] == 2
    assert values[("ceruleum_kv_cache_usage_ratio", "smol")] == 0.25
    assert values[("ceruleum_usage_events_dropped_total", None)] == 0
