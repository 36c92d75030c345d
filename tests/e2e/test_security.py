"""Gateway security on a real server: authentication in both dialects, SQL in the key header,
tenancy (404, not 403), roles, mass assignment, CORS, secrets kept out of logs, /metrics.

Projects and keys are made through the admin API; every secret this module sees is collected,
and the last test checks that none of them reached the server log.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL, SMALL_ENGINE, ServerProcess, start_server, stop_server
from tests.e2e.gateway_helpers import (
    AZURE_API_VERSION,
    PROJECTS,
    AdminApi,
    api_key,
    assert_azure_error,
    assert_openai_error,
    azure_chat,
    bearer,
    bogus_key,
    chat_body,
    unique,
    warm_up,
)

pytestmark = pytest.mark.slow

CREATED_SECRETS: list[str] = []  # every key secret the admin API handed this module
PRESENTED_BOGUS: list[str] = []  # every made-up key this module presented

NO_SUCH_PROJECT = "proj_000000000000000000000000"
NO_SUCH_KEY = "key_000000000000000000000000"


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[AdminApi]:
    warm_up(server)  # a key below expires 2 s after it is made: no slow first request
    api = AdminApi(server.base_url, server.admin_key, CREATED_SECRETS)
    yield api
    api.close()


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """No credentials of its own: every call says who it is."""
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


@dataclass
class Tenant:
    project_id: str
    owner: dict[str, Any]
    member: dict[str, Any]
    reader: dict[str, Any]
    deployment: str

    @property
    def base(self) -> str:
        return f"{PROJECTS}/{self.project_id}"


def make_tenant(admin: AdminApi) -> Tenant:
    project_id = admin.project("sec")
    return Tenant(
        project_id=project_id,
        owner=admin.key(project_id, "owner"),
        member=admin.key(project_id, "member"),
        reader=admin.key(project_id, "reader"),
        deployment=admin.deployment(project_id),
    )


@pytest.fixture(scope="module")
def tenant_a(admin: AdminApi) -> Tenant:
    return make_tenant(admin)


@pytest.fixture(scope="module")
def tenant_b(admin: AdminApi) -> Tenant:
    return make_tenant(admin)


def as_key(key: dict[str, Any]) -> dict[str, str]:
    return bearer(key["secret"])


def assert_not_echoed(response: httpx.Response, *presented: str) -> None:
    """Neither the body nor any header carries what the caller presented as its key."""
    for value in presented:
        if not value.strip():
            continue
        assert value not in response.text, (value, response.text)
        for name, header in response.headers.items():
            assert value not in header, (value, name, header)


def sqlite_state(server: ServerProcess) -> tuple[set[str], int]:
    """(table names, rows in api_keys) read straight from the server's SQLite file, read-only."""
    path: Path = server.data_dir / "ceruleum.db"
    assert path.exists(), f"the session server should use SQLite at {path}"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        assert "api_keys" in tables, tables
        (count,) = connection.execute("SELECT count(*) FROM api_keys").fetchone()
    finally:
        connection.close()
    return tables, int(count)


# --- SQL and quote payloads in the key header ----------------------------------------------------

SQL_AUTHORIZATION: list[str | bytes] = [
    "Bearer ' OR '1'='1",
    "Bearer cer-aaaaaaaaaaaa.x' OR 1=1 --",
    '"; DROP TABLE api_keys; --',
    'Bearer "; DROP TABLE api_keys; --',
    "Bearer cer-aaaaaaaaaaaa' OR prefix LIKE '%",
    "Bearer x' UNION SELECT secret_hash FROM api_keys --",
    "Bearer cer-aaaaaaaaaaaa.%00' OR 1=1 --",
    "Bearer cer-%E2%80%AE%27%20OR%201%3D1%00",
    # Raw UTF-8 (httpx only encodes str headers as ASCII): a right-to-left override and a NBSP.
    "Bearer cér-\u202e' OR 1=1 --\u00a0".encode(),
]
SQL_API_KEY: list[str | bytes] = [
    "' OR '1'='1",
    "cer-aaaaaaaaaaaa.x'); DELETE FROM api_keys; --",
    "\u02bc OR 1=1 --".encode(),
]


def presented_text(value: str | bytes) -> str:
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    return text.removeprefix("Bearer ").strip()


def test_sql_payloads_in_key_headers_are_401_and_change_nothing(
    server: ServerProcess, admin: AdminApi, http: httpx.Client, tenant_a: Tenant
) -> None:
    projects_before, keys_before = len(admin.project_ids()), admin.key_count()
    tables_before, rows_before = sqlite_state(server)
    attempts = [("authorization", value) for value in SQL_AUTHORIZATION]
    attempts += [("api-key", value) for value in SQL_API_KEY]
    for header, value in attempts:
        presented = presented_text(value)
        PRESENTED_BOGUS.append(presented)
        headers = {header: value}
        for path, dialect in (
            ("/v1/chat/completions", "openai"),
            ("/openai/v1/chat/completions", "azure"),
            (azure_chat(MODEL), "azure"),
        ):
            response = http.post(path, json=chat_body(), headers=headers)
            if dialect == "azure":
                assert_azure_error(response, 401, "401")
            else:
                assert_openai_error(response, 401, "invalid_api_key")
            assert_not_echoed(response, presented)
        for response in (
            http.get("/v1/models", headers=headers),
            http.get(PROJECTS, headers=headers),
            http.get(f"{tenant_a.base}/keys", headers=headers),
            http.get("/admin/usage", headers=headers),
        ):
            assert_openai_error(response, 401, "invalid_api_key")
            assert_not_echoed(response, presented)
    # The same payloads where ids and names go: nothing matches, nothing widens.
    member, platform = as_key(tenant_a.member), bearer(server.admin_key)
    for payload in ("' OR '1'='1", "x' OR 1=1 --", '"; DROP TABLE api_keys; --', "%' --"):
        response = http.post("/v1/chat/completions", json=chat_body(payload), headers=member)
        assert_openai_error(response, 404, "model_not_found")
        response = http.get(f"{PROJECTS}/{payload}", headers=platform)
        assert response.status_code == 404, response.text
        response = http.get(f"{tenant_a.base}/keys/{payload}", headers=platform)
        assert response.status_code == 404, response.text
        usage = http.get("/admin/usage", params={"project_id": payload}, headers=platform)
        assert usage.status_code == 200, usage.text
        assert usage.json()["data"] == [], usage.text  # no project has that id
        since = http.get("/admin/usage", params={"since": payload}, headers=platform)
        assert_openai_error(since, 400, "invalid_value")
    assert http.get("/health").status_code == 200
    assert len(admin.project_ids()) == projects_before
    assert admin.key_count() == keys_before
    tables_after, rows_after = sqlite_state(server)
    assert tables_after == tables_before
    assert rows_after == rows_before == keys_before
    # The tenant's keys still work: nothing was dropped, revoked or rewritten.
    ok = http.post("/v1/chat/completions", json=chat_body(), headers=as_key(tenant_a.member))
    assert ok.status_code == 200, ok.text


# --- missing, malformed, unknown, revoked and expired keys ----------------------------------------


def assert_rejected(
    http: httpx.Client, headers: dict[str, str], presented: str, *, missing: bool = False
) -> None:
    """401 on the OpenAI routes (OpenAI's shape) and on the Azure routes (Azure's shape)."""
    openai_code = None if missing else "invalid_api_key"
    for response in (
        http.post("/v1/chat/completions", json=chat_body(), headers=headers),
        http.get("/v1/models", headers=headers),
        http.get(PROJECTS, headers=headers),
    ):
        assert_openai_error(response, 401, openai_code)
        assert_not_echoed(response, presented)
    for response in (
        http.post(azure_chat(MODEL), json=chat_body(), headers=headers),
        http.post("/openai/v1/chat/completions", json=chat_body(), headers=headers),
    ):
        assert_azure_error(response, 401, "401")
        assert_not_echoed(response, presented)


def test_missing_key_is_401(http: httpx.Client) -> None:
    assert_rejected(http, {}, "", missing=True)


def test_every_route_but_health_needs_a_key(http: httpx.Client, tenant_a: Tenant) -> None:
    version = {"api-version": AZURE_API_VERSION}
    base, key = tenant_a.base, f"{tenant_a.base}/keys/{tenant_a.member['id']}"
    deployment = f"{base}/deployments/{tenant_a.deployment}"
    inference = {"model": MODEL, "prompt": "Hi", "input": "Hi", "messages": [], "max_tokens": 1}
    routes: list[tuple[str, str]] = [
        ("GET", "/v1/models"),
        ("GET", f"/v1/models/{MODEL}"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/openai/v1/models"),
        ("POST", "/openai/v1/chat/completions"),
        ("POST", "/openai/v1/completions"),
        ("POST", "/openai/v1/embeddings"),
        ("GET", "/openai/models"),
        ("GET", f"/openai/models/{MODEL}"),
        ("GET", "/openai/deployments"),
        ("GET", f"/openai/deployments/{MODEL}"),
        ("POST", f"/openai/deployments/{MODEL}/chat/completions"),
        ("POST", f"/openai/deployments/{MODEL}/completions"),
        ("POST", f"/openai/deployments/{MODEL}/embeddings"),
        ("GET", PROJECTS),
        ("POST", PROJECTS),
        ("GET", base),
        ("DELETE", base),
        ("GET", f"{base}/keys"),
        ("POST", f"{base}/keys"),
        ("GET", key),
        ("PATCH", key),
        ("POST", f"{key}/revoke"),
        ("GET", f"{base}/deployments"),
        ("POST", f"{base}/deployments"),
        ("GET", deployment),
        ("PATCH", deployment),
        ("DELETE", deployment),
        ("GET", "/admin/audit"),
        ("GET", "/admin/audit/1"),
        ("GET", "/admin/usage"),
        ("GET", "/metrics"),
    ]
    for method, path in routes:
        body = inference if method in ("POST", "PATCH") else None
        params = version if path.startswith("/openai/") else None
        response = http.request(method, path, json=body, params=params)
        if path.startswith("/openai/"):
            assert_azure_error(response, 401, "401")
        else:
            assert_openai_error(response, 401, None)
    # Nothing was changed by any of them.
    assert http.get(base, headers=as_key(tenant_a.owner)).status_code == 200
    health = http.get("/health")
    assert health.status_code == 200, health.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-key-at-all-4f1c"},
        {"Authorization": "Basic dXNlcjpwYXNzd29yZC00ZjFj"},
        {"Authorization": "Bearer"},
        {"Authorization": ""},
        {"Authorization": "Token cer-abcdefabcdef.0123456789012345678901234567890123456789"},
        {"Authorization": "Bearer cer-ABCDEFABCDEF.0123456789012345678901234567890123456789"},
        {"Authorization": "Bearer cer-abcdefabcdef.short"},
        {"api-key": "not-a-key-at-all-77aa"},
        {"api-key": ""},
    ],
    ids=lambda h: repr(h)[:40],
)
def test_malformed_key_is_401(http: httpx.Client, headers: dict[str, str]) -> None:
    presented = next(iter(headers.values())).partition(" ")[2] or next(iter(headers.values()))
    PRESENTED_BOGUS.append(presented.strip())
    assert_rejected(http, headers, presented.strip())


def test_unknown_well_formed_key_is_401(http: httpx.Client) -> None:
    for make_headers in (bearer, api_key):
        key = bogus_key()
        PRESENTED_BOGUS.append(key)
        assert_rejected(http, make_headers(key), key)


def test_revoked_key_is_401_on_the_very_next_request(
    admin: AdminApi, http: httpx.Client, tenant_a: Tenant
) -> None:
    key = admin.key(tenant_a.project_id, "member")
    ok = http.post("/v1/chat/completions", json=chat_body(), headers=bearer(key["secret"]))
    assert ok.status_code == 200, ok.text
    revoked = admin.client.post(f"{tenant_a.base}/keys/{key['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_rejected(http, bearer(key["secret"]), key["secret"])
    assert_rejected(http, api_key(key["secret"]), key["secret"])


def test_expired_key_is_401(admin: AdminApi, http: httpx.Client, tenant_a: Tenant) -> None:
    past = admin.key(tenant_a.project_id, "owner", expires_at=int(time.time()) - 60)
    assert_rejected(http, bearer(past["secret"]), past["secret"])

    # A key that expires mid-session works until then and not a moment after.
    expires_at = int(time.time()) + 2
    soon = admin.key(tenant_a.project_id, "member", expires_at=expires_at)
    ok = http.post("/v1/chat/completions", json=chat_body(), headers=bearer(soon["secret"]))
    assert ok.status_code == 200, ok.text
    time.sleep(max(0.0, expires_at - time.time()) + 0.2)
    assert_rejected(http, bearer(soon["secret"]), soon["secret"])


def test_api_key_header_works_like_bearer(http: httpx.Client, tenant_a: Tenant) -> None:
    headers = api_key(tenant_a.member["secret"])
    for path in ("/v1/chat/completions", azure_chat(tenant_a.deployment)):
        body = chat_body(tenant_a.deployment)
        response = http.post(path, json=body, headers=headers)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["choices"], response.text
    models = http.get("/v1/models", headers=headers)
    assert models.status_code == 200, models.text
    # The same key as Bearer, and the owner's key in api-key on the admin API.
    response = http.post(
        "/v1/chat/completions", json=chat_body(MODEL), headers=bearer(tenant_a.member["secret"])
    )
    assert response.status_code == 200, response.text
    mine = http.get(tenant_a.base, headers=api_key(tenant_a.owner["secret"]))
    assert mine.status_code == 200, mine.text
    # The scheme is case-insensitive (RFC 7235).
    lower = {"Authorization": f"bearer {tenant_a.member['secret']}"}
    response = http.post("/v1/chat/completions", json=chat_body(MODEL), headers=lower)
    assert response.status_code == 200, response.text


# --- tenancy: another project's objects do not exist ----------------------------------------------


def same_error(response: httpx.Response, reference: httpx.Response) -> str:
    """Both 404 with the same code: another project's id reads like one that does not exist."""
    assert reference.status_code == 404, reference.text
    assert response.status_code == 404, response.text
    code = reference.json()["error"]["code"]
    assert response.json()["error"]["code"] == code, (response.text, reference.text)
    return str(code)


def test_another_projects_objects_are_404(
    admin: AdminApi, http: httpx.Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    a = as_key(tenant_a.owner)
    b_key_id = tenant_b.member["id"]
    b, nowhere = tenant_b.base, f"{PROJECTS}/{NO_SUCH_PROJECT}"
    patch_key = {"role": "owner", "requests_per_minute": 100_000}
    new_key = {"name": unique("stolen"), "role": "owner"}
    new_dep = {"name": unique("stolen"), "model": MODEL}

    def both(method: str, suffix: str, **kwargs: Any) -> None:
        theirs = http.request(method, b + suffix, headers=a, **kwargs)
        missing = http.request(method, nowhere + suffix, headers=a, **kwargs)
        assert same_error(theirs, missing) == "ProjectNotFound"

    both("GET", "")
    both("DELETE", "")
    both("GET", "/keys")
    both("POST", "/keys", json=new_key)
    both("GET", f"/keys/{b_key_id}")
    both("PATCH", f"/keys/{b_key_id}", json=patch_key)
    both("POST", f"/keys/{b_key_id}/revoke")
    both("GET", "/deployments")
    both("POST", "/deployments", json=new_dep)
    both("GET", f"/deployments/{tenant_b.deployment}")
    both("PATCH", f"/deployments/{tenant_b.deployment}", json={"tokens_per_minute": 1})
    both("DELETE", f"/deployments/{tenant_b.deployment}")

    # B's key and deployment named under A's own project: just as missing.
    own = tenant_a.base
    for method, suffix, kwargs in (
        ("GET", f"/keys/{b_key_id}", {}),
        ("PATCH", f"/keys/{b_key_id}", {"json": patch_key}),
        ("POST", f"/keys/{b_key_id}/revoke", {}),
    ):
        theirs = http.request(method, own + suffix, headers=a, **kwargs)
        nowhere_key = own + suffix.replace(b_key_id, NO_SUCH_KEY)
        missing = http.request(method, nowhere_key, headers=a, **kwargs)
        assert same_error(theirs, missing) == "ApiKeyNotFound"
    theirs = http.get(f"{own}/deployments/{tenant_b.deployment}", headers=a)
    missing = http.get(f"{own}/deployments/{unique('none')}", headers=a)
    assert same_error(theirs, missing) == "DeploymentNotFound"

    # Usage of another project, and the project list.
    theirs = http.get("/admin/usage", params={"project_id": tenant_b.project_id}, headers=a)
    missing = http.get("/admin/usage", params={"project_id": NO_SUCH_PROJECT}, headers=a)
    same_error(theirs, missing)
    listed = http.get(PROJECTS, headers=a)
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["data"]] == [tenant_a.project_id]

    # Nothing of B's changed.
    key = admin.client.get(f"{b}/keys/{b_key_id}").json()
    assert key["revoked_at"] is None and key["role"] == "member", key
    assert key["requests_per_minute"] is None, key
    assert admin.client.get(f"{b}/deployments/{tenant_b.deployment}").status_code == 200
    assert not [k for k in admin.listed(f"{b}/keys") if k["name"] == new_key["name"]], (
        "a key was created in another project"
    )


def test_another_projects_deployment_is_404_for_inference(
    http: httpx.Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    # B's own key may use it (so it exists) ...
    mine = http.post(
        "/v1/chat/completions", json=chat_body(tenant_b.deployment), headers=as_key(tenant_b.member)
    )
    assert mine.status_code == 200, mine.text
    # ... but for A it does not exist: 404, not 403, in both dialects.
    a = as_key(tenant_a.member)
    body = chat_body(tenant_b.deployment)
    error = assert_openai_error(
        http.post("/v1/chat/completions", json=body, headers=a), 404, "model_not_found"
    )
    assert error["param"] == "model"
    assert_azure_error(
        http.post(azure_chat(tenant_b.deployment), json=body, headers=a), 404, "DeploymentNotFound"
    )
    assert_azure_error(
        http.post("/openai/v1/chat/completions", json=body, headers=a), 404, "DeploymentNotFound"
    )
    # The same answer as for a deployment that exists nowhere.
    nowhere = chat_body(unique("nowhere"))
    assert_openai_error(
        http.post("/v1/chat/completions", json=nowhere, headers=a), 404, "model_not_found"
    )
    # Azure's deployment list and lookup show a key its own project's deployments only.
    version = {"api-version": AZURE_API_VERSION}
    listed = http.get("/openai/deployments", params=version, headers=a)
    assert listed.status_code == 200, listed.text
    names = [d["id"] for d in listed.json()["data"]]
    assert tenant_a.deployment in names and tenant_b.deployment not in names, names
    theirs = http.get(f"/openai/deployments/{tenant_b.deployment}", params=version, headers=a)
    assert_azure_error(theirs, 404, "DeploymentNotFound")


# --- roles ----------------------------------------------------------------------------------------


def test_member_cannot_raise_its_own_role_or_limits(
    admin: AdminApi, http: httpx.Client, tenant_a: Tenant
) -> None:
    for who in ("member", "reader"):
        key = admin.key(tenant_a.project_id, who, requests_per_minute=5)
        own = f"{tenant_a.base}/keys/{key['id']}"
        for change in (
            {"role": "owner"},
            {"requests_per_minute": 1_000_000},
            {"tokens_per_minute": 10_000_000},
            {"requests_per_minute": None},
            {"allowed_deployments": None},
            {"expires_at": None},
        ):
            response = http.patch(own, json=change, headers=bearer(key["secret"]))
            assert_openai_error(response, 403, "permission_denied")
        revoke_other = http.post(
            f"{tenant_a.base}/keys/{tenant_a.owner['id']}/revoke", headers=bearer(key["secret"])
        )
        assert_openai_error(revoke_other, 403, "permission_denied")
        after = admin.client.get(own).json()
        assert after["role"] == who and after["requests_per_minute"] == 5, after
        assert after["tokens_per_minute"] is None, after
    owner = admin.client.get(f"{tenant_a.base}/keys/{tenant_a.owner['id']}").json()
    assert owner["revoked_at"] is None, owner


def test_member_and_reader_keys_on_admin_routes_are_403(
    http: httpx.Client, tenant_a: Tenant
) -> None:
    base = tenant_a.base
    for key in (tenant_a.member, tenant_a.reader):
        headers = as_key(key)
        for method, path, body in (
            ("POST", PROJECTS, {"name": unique("mine")}),
            ("GET", f"{base}/keys", None),
            ("POST", f"{base}/keys", {"name": unique("k"), "role": "owner"}),
            ("GET", f"{base}/deployments", None),
            ("POST", f"{base}/deployments", {"name": unique("d"), "model": MODEL}),
            ("PATCH", f"{base}/deployments/{tenant_a.deployment}", {"tokens_per_minute": 10**7}),
            ("DELETE", f"{base}/deployments/{tenant_a.deployment}", None),
            ("DELETE", base, None),
            ("GET", "/admin/audit", None),
        ):
            response = http.request(method, path, json=body, headers=headers)
            assert_openai_error(response, 403, "permission_denied")
        # Its own project is visible, no other: the list holds exactly one.
        listed = http.get(PROJECTS, headers=headers)
        assert listed.status_code == 200, listed.text
        assert [p["id"] for p in listed.json()["data"]] == [tenant_a.project_id]
        assert http.get(base, headers=headers).status_code == 200
    # Even an owner may not read the platform's audit log, make or delete projects.
    owner = as_key(tenant_a.owner)
    assert_openai_error(http.get("/admin/audit", headers=owner), 403, "permission_denied")
    assert_openai_error(http.delete(base, headers=owner), 403, "permission_denied")
    made = http.post(PROJECTS, json={"name": unique("mine")}, headers=owner)
    assert_openai_error(made, 403, "permission_denied")
    assert http.get(base, headers=owner).status_code == 200


def test_reader_may_not_call_inference(http: httpx.Client, tenant_a: Tenant) -> None:
    reader = as_key(tenant_a.reader)
    for model in (tenant_a.deployment, MODEL):
        response = http.post("/v1/chat/completions", json=chat_body(model), headers=reader)
        assert_openai_error(response, 403, "permission_denied")
        response = http.post(azure_chat(model), json=chat_body(model), headers=reader)
        assert_azure_error(response, 403, "PermissionDenied")
    completions = http.post(
        "/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 1}, headers=reader
    )
    assert_openai_error(completions, 403, "permission_denied")


def test_allowed_deployments_restricts_the_key(
    admin: AdminApi, http: httpx.Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    other = admin.deployment(tenant_a.project_id)
    key = admin.key(tenant_a.project_id, "member", allowed_deployments=[tenant_a.deployment])
    headers = bearer(key["secret"])
    ok = http.post("/v1/chat/completions", json=chat_body(tenant_a.deployment), headers=headers)
    assert ok.status_code == 200, ok.text
    for model in (other, MODEL):
        response = http.post("/v1/chat/completions", json=chat_body(model), headers=headers)
        error = assert_openai_error(response, 403, "permission_denied")
        assert key["secret"] not in error["message"]
        response = http.post(azure_chat(model), json=chat_body(model), headers=headers)
        assert_azure_error(response, 403, "PermissionDenied")
    # Naming another project's deployment in allowed_deployments gives no access to it: 404.
    theirs = admin.key(tenant_a.project_id, "member", allowed_deployments=[tenant_b.deployment])
    response = http.post(
        "/v1/chat/completions", json=chat_body(tenant_b.deployment), headers=as_key(theirs)
    )
    assert_openai_error(response, 404, "model_not_found")


# --- mass assignment ------------------------------------------------------------------------------


def test_unknown_fields_in_admin_bodies_are_400(
    server: ServerProcess, admin: AdminApi, http: httpx.Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    platform = server.headers
    owner = as_key(tenant_a.owner)
    key_id = tenant_a.member["id"]
    base = tenant_a.base
    projects_before = admin.project_ids()
    keys_before = admin.listed(f"{base}/keys")
    b_project = tenant_b.project_id
    keys, key = f"{base}/keys", f"{base}/keys/{key_id}"
    deployments, deployment = f"{base}/deployments", f"{base}/deployments/{tenant_a.deployment}"
    new_project = {"name": unique("mass")}
    new_key = {"name": unique("mass"), "role": "member"}
    new_deployment = {"name": unique("mass"), "model": MODEL}
    # (method, path, the valid part of the body, the field that may not be set, its value)
    attempts: list[tuple[str, str, dict[str, Any], str, Any]] = [
        ("POST", keys, new_key, "project_id", b_project),
        ("POST", keys, new_key, "secret_hash", "0" * 64),
        ("POST", keys, new_key, "secret", "cer-aaaaaaaaaaaa.x"),
        ("POST", keys, new_key, "prefix", "cer-aaaaaaaaaaaa"),
        ("POST", keys, new_key, "user_role", "admin"),
        ("PATCH", key, {}, "project_id", b_project),
        ("PATCH", key, {}, "secret_hash", "0" * 64),
        ("PATCH", key, {}, "revoked_at", None),
        ("PATCH", key, {}, "max_budget", 10**9),
        ("POST", deployments, new_deployment, "api_base", "http://169.254.169.254/"),
        ("POST", deployments, new_deployment, "base_url", "http://127.0.0.1:1/"),
        ("POST", deployments, new_deployment, "project_id", b_project),
        ("PATCH", deployment, {}, "api_base", "http://10.0.0.1/"),
        ("PATCH", deployment, {}, "base_url", "file:///etc/passwd"),
        ("PATCH", deployment, {}, "project_id", b_project),
        ("PATCH", deployment, {}, "model", "other"),
    ]
    cases = [(platform, *attempt) for attempt in attempts]
    cases += [(owner, *attempt) for attempt in attempts]
    cases += [
        (platform, "POST", PROJECTS, new_project, "project_id", "proj_x"),
        (platform, "POST", PROJECTS, new_project, "role", "owner"),
        (platform, "POST", PROJECTS, new_project, "id", "proj_mine"),
    ]
    for headers, method, path, valid, field, value in cases:
        response = http.request(method, path, json={**valid, field: value}, headers=headers)
        error = assert_openai_error(response, 400, "invalid_value")
        assert error["param"] == field, (method, path, field, error)

    assert admin.project_ids() == projects_before
    assert admin.listed(keys) == keys_before
    listed = [d["id"] for d in admin.listed(deployments)]
    assert new_deployment["name"] not in listed
    current = admin.client.get(deployment).json()
    assert current["project_id"] == tenant_a.project_id and current["model"] == MODEL, current
    assert tenant_b.deployment not in listed


# --- CORS -----------------------------------------------------------------------------------------


def preflight(
    client: httpx.Client, origin: str, path: str = "/v1/chat/completions"
) -> httpx.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def assert_no_wildcard_with_credentials(response: httpx.Response) -> None:
    origin = response.headers.get("access-control-allow-origin")
    credentials = response.headers.get("access-control-allow-credentials", "").lower()
    assert not (origin == "*" and credentials == "true"), dict(response.headers)
    assert credentials != "true", dict(response.headers)  # keys travel in headers, not cookies


def test_cors_without_configured_origins(http: httpx.Client) -> None:
    for path in ("/v1/chat/completions", "/admin/projects", "/health"):
        response = preflight(http, "https://evil.example", path)
        assert response.status_code < 500, response.text
        assert_no_wildcard_with_credentials(response)
        assert "access-control-allow-origin" not in response.headers, dict(response.headers)


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("cors"),
        env={**SMALL_ENGINE, "CERULEUM_CORS_ORIGINS": '["https://app.example"]'},
    )
    yield proc
    stop_server(proc)


def test_cors_echoes_only_configured_origins(cors_server: ServerProcess) -> None:
    with httpx.Client(base_url=cors_server.base_url, timeout=30) as client:
        allowed = preflight(client, "https://app.example")
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
        assert "POST" in allowed.headers.get("access-control-allow-methods", "")
        assert_no_wildcard_with_credentials(allowed)

        for path in ("/v1/chat/completions", "/admin/projects", "/metrics"):
            evil = preflight(client, "https://evil.example", path)
            assert evil.status_code < 500, evil.text
            assert "access-control-allow-origin" not in evil.headers, dict(evil.headers)
            assert_no_wildcard_with_credentials(evil)

        # Simple (non-preflighted) requests: the allowed origin is echoed, the other is not.
        headers = bearer(cors_server.admin_key)
        app = client.get("/v1/models", headers={**headers, "Origin": "https://app.example"})
        assert app.status_code == 200, app.text
        assert app.headers.get("access-control-allow-origin") == "https://app.example"
        assert_no_wildcard_with_credentials(app)
        evil = client.get("/v1/models", headers={**headers, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers, dict(evil.headers)
        assert_no_wildcard_with_credentials(evil)
        # An origin that merely contains the allowed one is not it.
        tricky = preflight(client, "https://app.example.evil.example")
        assert "access-control-allow-origin" not in tricky.headers, dict(tricky.headers)


# --- /metrics and /health -------------------------------------------------------------------------


def test_metrics_need_the_admin_key(
    server: ServerProcess, http: httpx.Client, tenant_a: Tenant
) -> None:
    admin_read = http.get("/metrics", headers=server.headers)
    assert admin_read.status_code == 200, admin_read.text
    assert admin_read.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in admin_read.text and "ceruleum_" in admin_read.text
    for key in (tenant_a.owner, tenant_a.member, tenant_a.reader):
        assert_openai_error(http.get("/metrics", headers=as_key(key)), 403, "permission_denied")
    assert_openai_error(http.get("/metrics"), 401, None)
    wrong = bogus_key()
    PRESENTED_BOGUS.append(wrong)
    assert_openai_error(http.get("/metrics", headers=bearer(wrong)), 401, "invalid_api_key")
    health = http.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"


# --- last: no secret anywhere in the log ----------------------------------------------------------


def test_no_key_in_logs_audit_or_metrics(
    server: ServerProcess, admin: AdminApi, http: httpx.Client, tenant_a: Tenant
) -> None:
    # One more success with a real key and one more 401 with a wrong one, then look.
    ok = http.post("/v1/chat/completions", json=chat_body(), headers=as_key(tenant_a.member))
    assert ok.status_code == 200, ok.text
    wrong = bogus_key()
    PRESENTED_BOGUS.append(wrong)
    assert_openai_error(
        http.post("/v1/chat/completions", json=chat_body(), headers=bearer(wrong)),
        401,
        "invalid_api_key",
    )
    canary = "canary-prompt-" + uuid.uuid4().hex  # a tenant's prompt is no log material
    prompt = {**chat_body(), "messages": [{"role": "user", "content": canary}]}
    response = http.post("/v1/chat/completions", json=prompt, headers=as_key(tenant_a.member))
    assert response.status_code == 200, response.text
    too_long = {**prompt, "max_tokens": 10**6}  # an error that quotes the request
    response = http.post("/v1/chat/completions", json=too_long, headers=as_key(tenant_a.member))
    assert response.status_code == 400 and canary not in response.text, response.text
    time.sleep(0.5)  # let the server write its log lines for those
    assert len(CREATED_SECRETS) >= 6, CREATED_SECRETS  # the module did create keys
    log = server.log()
    assert log, "the server log is empty"
    audit = admin.client.get("/admin/audit", params={"limit": 1000}).text
    metrics = admin.client.get("/metrics").text
    listings = "".join(admin.client.get(f"{PROJECTS}/{p}/keys").text for p in admin.project_ids())
    leaks = []
    for secret in [*CREATED_SECRETS, server.admin_key]:
        for where, text in (
            ("log", log),
            ("audit", audit),
            ("metrics", metrics),
            ("keys", listings),
        ):
            if secret in text:
                leaks.append((where, secret[:8] + "..."))
        # The part after the prefix is the secret proper: not even that alone.
        tail = secret.partition(".")[2]
        if tail and tail in log:
            leaks.append(("log", "secret part of " + secret[:8]))
    for presented in PRESENTED_BOGUS:
        if len(presented) >= 8 and presented in log:
            leaks.append(("log", "presented " + presented[:12]))
    assert not leaks, leaks
    assert canary not in log, "a prompt was written to the log"
    assert " object at 0x" not in log, "an object repr (heap address) was written to the log"
