"""The admin API on a real server: projects, keys, permissions, tenancy and the audit log.

Projects and keys are created through the API; the tests then act with the returned secrets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL, ServerProcess

pytestmark = pytest.mark.slow

PROJECTS = "/admin/projects"


@dataclass
class Tenant:
    project_id: str
    owner_id: str
    owner_secret: str

    @property
    def base(self) -> str:
        return f"{PROJECTS}/{self.project_id}"


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """No credentials of its own: each call says who it is."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30, headers=server.headers) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_project(admin: httpx.Client) -> str:
    response = admin.post(PROJECTS, json={"name": unique("proj")})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_key(
    client: httpx.Client,
    project_id: str,
    role: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    response = client.post(
        f"{PROJECTS}/{project_id}/keys",
        json={"name": unique(role), "role": role, **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_tenant(admin: httpx.Client) -> Tenant:
    project_id = make_project(admin)
    owner = make_key(admin, project_id, "owner")
    return Tenant(project_id, owner["id"], owner["secret"])


@pytest.fixture
def tenant(admin: httpx.Client) -> Tenant:
    return make_tenant(admin)


@pytest.fixture
def other(admin: httpx.Client) -> Tenant:
    return make_tenant(admin)


def assert_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code, error
    assert error["message"]
    return dict(error)


def models_status(http: httpx.Client, secret: str) -> int:
    return http.get("/v1/models", headers=bearer(secret)).status_code


def audit(admin: httpx.Client, project_id: str) -> list[dict[str, Any]]:
    """The project's events, oldest first."""
    response = admin.get("/admin/audit", params={"project_id": project_id, "limit": 1000})
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["data"]))


# --- projects --------------------------------------------------------------------------------


def test_admin_creates_lists_gets_and_deletes_projects(admin: httpx.Client) -> None:
    name = unique("proj")
    created = admin.post(PROJECTS, json={"name": name})
    assert created.status_code == 201, created.text
    project = created.json()
    assert set(project) == {"id", "object", "name", "created_at"}
    assert project["object"] == "project" and project["name"] == name
    assert project["id"].startswith("proj_")
    assert created.headers["location"] == f"{PROJECTS}/{project['id']}"
    assert admin.get(f"{PROJECTS}/{project['id']}").json() == project
    listed = admin.get(PROJECTS).json()
    assert listed["object"] == "list" and project in listed["data"]

    assert_error(admin.post(PROJECTS, json={"name": name}), 409, "conflict")
    assert_error(admin.post(PROJECTS, json={"name": "no spaces"}), 400, "invalid_value")

    deleted = admin.delete(f"{PROJECTS}/{project['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": project["id"], "object": "project.deleted", "deleted": True}
    assert_error(admin.get(f"{PROJECTS}/{project['id']}"), 404, "ProjectNotFound")
    assert_error(admin.delete(f"{PROJECTS}/{project['id']}"), 404, "ProjectNotFound")

    events = audit(admin, project["id"])
    assert [(e["action"], e["actor"]) for e in events] == [
        ("project.create", "admin"),
        ("project.delete", "admin"),
    ]
    assert events[0]["before"] is None and events[0]["after"] == project
    assert events[1]["before"] == project and events[1]["after"] is None


def test_a_key_sees_only_its_own_project(http: httpx.Client, tenant: Tenant, other: Tenant) -> None:
    owner = bearer(tenant.owner_secret)
    listed = http.get(PROJECTS, headers=owner)
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["data"]] == [tenant.project_id]
    assert http.get(tenant.base, headers=owner).json()["id"] == tenant.project_id
    assert_error(http.get(other.base, headers=owner), 404, "ProjectNotFound")


def test_only_the_admin_creates_or_deletes_projects(
    http: httpx.Client, admin: httpx.Client, tenant: Tenant, other: Tenant
) -> None:
    owner = bearer(tenant.owner_secret)
    assert_error(
        http.post(PROJECTS, json={"name": unique("x")}, headers=owner), 403, "permission_denied"
    )
    assert_error(http.delete(tenant.base, headers=owner), 403, "permission_denied")
    assert_error(http.delete(other.base, headers=owner), 404, "ProjectNotFound")
    assert admin.get(tenant.base).status_code == 200
    assert admin.get(other.base).status_code == 200


def test_deleting_a_project_ends_its_keys(
    http: httpx.Client, admin: httpx.Client, tenant: Tenant
) -> None:
    assert models_status(http, tenant.owner_secret) == 200
    assert admin.delete(tenant.base).status_code == 200
    assert models_status(http, tenant.owner_secret) == 401


# --- keys ------------------------------------------------------------------------------------

KEY_FIELDS = {
    "id", "object", "project_id", "name", "role", "prefix", "created_at", "expires_at",
    "revoked_at", "allowed_deployments", "tokens_per_minute", "requests_per_minute",
}  # fmt: skip


def test_the_secret_is_returned_once_and_never_again(
    http: httpx.Client, admin: httpx.Client, tenant: Tenant
) -> None:
    owner = bearer(tenant.owner_secret)
    response = http.post(
        f"{tenant.base}/keys",
        json={
            "name": "ci",
            "role": "member",
            "expires_at": int(time.time()) + 3600,
            "allowed_deployments": ["chat"],
            "tokens_per_minute": 1000,
            "requests_per_minute": 10,
        },
        headers=owner,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created.pop("secret")
    assert set(created) == KEY_FIELDS
    assert secret.startswith(created["prefix"] + ".")
    assert response.headers["location"] == f"{tenant.base}/keys/{created['id']}"
    assert (created["role"], created["allowed_deployments"], created["tokens_per_minute"]) == (
        "member",
        ["chat"],
        1000,
    )
    assert models_status(http, secret) == 200

    url = f"{tenant.base}/keys/{created['id']}"
    replies = [
        http.get(f"{tenant.base}/keys", headers=owner),
        http.get(url, headers=owner),
        http.patch(url, json={"name": "renamed"}, headers=owner),
        http.post(f"{url}/revoke", headers=owner),
        admin.get("/admin/audit", params={"project_id": tenant.project_id}),
        admin.get(PROJECTS),
    ]
    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert secret not in reply.text
        assert "secret" not in reply.text  # neither the field nor secret_hash
    assert set(replies[1].json()) == KEY_FIELDS
    assert {k["id"] for k in replies[0].json()["data"]} == {tenant.owner_id, created["id"]}


def test_owner_manages_its_projects_keys(http: httpx.Client, tenant: Tenant) -> None:
    owner = bearer(tenant.owner_secret)
    # Any role, owner included.
    keys = {role: make_key(http, tenant.project_id, role, owner) for role in ("owner", "member")}
    url = f"{tenant.base}/keys/{keys['member']['id']}"
    patched = http.patch(
        url,
        json={
            "name": "batch",
            "role": "reader",
            "expires_at": 4_000_000_000,
            "allowed_deployments": ["a", "b"],
            "tokens_per_minute": 50,
            "requests_per_minute": 2,
        },
        headers=owner,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["role"], body["expires_at"]) == ("batch", "reader", 4_000_000_000)
    assert (body["allowed_deployments"], body["tokens_per_minute"]) == (["a", "b"], 50)
    cleared = http.patch(
        url,
        json={"expires_at": None, "allowed_deployments": None, "tokens_per_minute": None},
        headers=owner,
    ).json()
    assert (
        cleared["expires_at"],
        cleared["allowed_deployments"],
        cleared["tokens_per_minute"],
    ) == (
        None,
        None,
        None,
    )
    assert cleared["requests_per_minute"] == 2  # untouched
    assert http.get(url, headers=owner).json() == cleared
    # The second owner key acts as an owner too.
    second = bearer(keys["owner"]["secret"])
    assert http.get(f"{tenant.base}/keys", headers=second).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "role": "admin"}, "role"),
        ({"name": "x"}, "role"),
        ({"role": "owner"}, "name"),
        ({"name": "", "role": "owner"}, "name"),
        ({"name": "x" * 65, "role": "owner"}, "name"),
        ({"name": 5, "role": "owner"}, "name"),
        ({"name": "x", "role": "owner", "expires_at": -1}, "expires_at"),
        ({"name": "x", "role": "owner", "expires_at": 10**13}, "expires_at"),
        ({"name": "x", "role": "owner", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "x", "role": "owner", "tokens_per_minute": 0}, "tokens_per_minute"),
        ({"name": "x", "role": "owner", "requests_per_minute": True}, "requests_per_minute"),
        ({"name": "x", "role": "owner", "allowed_deployments": "chat"}, "allowed_deployments"),
    ],
)
def test_invalid_key_bodies_are_400_naming_the_field(
    admin: httpx.Client, tenant: Tenant, body: dict[str, Any], param: str
) -> None:
    error = assert_error(admin.post(f"{tenant.base}/keys", json=body), 400, "invalid_value")
    assert error["param"].split(".")[0] == param
    assert [k["id"] for k in admin.get(f"{tenant.base}/keys").json()["data"]] == [tenant.owner_id]


def test_revoked_key_fails_on_its_next_request(http: httpx.Client, tenant: Tenant) -> None:
    owner = bearer(tenant.owner_secret)
    member = make_key(http, tenant.project_id, "member", owner)
    assert models_status(http, member["secret"]) == 200
    revoked = http.post(f"{tenant.base}/keys/{member['id']}/revoke", headers=owner)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    failed = http.get("/v1/models", headers=bearer(member["secret"]))
    assert_error(failed, 401, "invalid_api_key")
    assert member["secret"] not in failed.text
    again = http.post(f"{tenant.base}/keys/{member['id']}/revoke", headers=owner)
    assert again.status_code == 200
    assert again.json() == revoked.json()  # idempotent: the first revocation time stays
    # An owner key can revoke itself, and is then refused like any other.
    http.post(f"{tenant.base}/keys/{tenant.owner_id}/revoke", headers=owner)
    assert models_status(http, tenant.owner_secret) == 401


def test_expired_keys_are_refused(http: httpx.Client, admin: httpx.Client, tenant: Tenant) -> None:
    past = make_key(admin, tenant.project_id, "member", expires_at=int(time.time()) - 60)
    assert models_status(http, past["secret"]) == 401

    soon = make_key(admin, tenant.project_id, "member", expires_at=int(time.time()) + 3)
    assert models_status(http, soon["secret"]) == 200
    time.sleep(4)
    assert models_status(http, soon["secret"]) == 401

    later = make_key(admin, tenant.project_id, "member")
    assert models_status(http, later["secret"]) == 200
    url = f"{tenant.base}/keys/{later['id']}"
    assert admin.patch(url, json={"expires_at": int(time.time()) - 1}).status_code == 200
    assert models_status(http, later["secret"]) == 401


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["member", "reader"])
def test_members_and_readers_cannot_manage(
    http: httpx.Client, admin: httpx.Client, tenant: Tenant, role: str
) -> None:
    deployment = unique("dep")
    created = admin.post(f"{tenant.base}/deployments", json={"name": deployment, "model": MODEL})
    assert created.status_code == 201, created.text
    key = make_key(admin, tenant.project_id, role)
    headers = bearer(key["secret"])
    own = f"{tenant.base}/keys/{key['id']}"
    dep = f"{tenant.base}/deployments/{deployment}"
    attempts = [
        ("GET", f"{tenant.base}/keys", None),
        ("POST", f"{tenant.base}/keys", {"name": "x", "role": "owner"}),
        ("GET", own, None),
        ("PATCH", own, {"role": "owner"}),  # raising itself: the mass-assignment check
        ("PATCH", own, {"tokens_per_minute": 10**9}),
        ("PATCH", own, {"allowed_deployments": None}),
        ("POST", f"{own}/revoke", None),
        ("GET", f"{tenant.base}/keys/{tenant.owner_id}", None),
        ("GET", f"{tenant.base}/deployments", None),
        ("POST", f"{tenant.base}/deployments", {"name": "x", "model": MODEL}),
        ("GET", dep, None),
        ("PATCH", dep, {"max_tokens_limit": 1}),
        ("DELETE", dep, None),
        ("DELETE", tenant.base, None),
        ("POST", PROJECTS, {"name": unique("x")}),
        ("GET", "/admin/audit", None),
    ]
    for method, url, body in attempts:
        response = http.request(method, url, json=body, headers=headers)
        assert_error(response, 403, "permission_denied")
    # Nothing changed.
    assert admin.get(own).json() == {k: v for k, v in key.items() if k != "secret"}
    assert admin.get(dep).json() == created.json()
    # What the role may do: read its own project (and, for a member, infer).
    assert http.get(tenant.base, headers=headers).status_code == 200
    assert models_status(http, key["secret"]) == 200


# --- tenancy ---------------------------------------------------------------------------------


def test_other_projects_read_exactly_like_missing_ones(
    http: httpx.Client, admin: httpx.Client, tenant: Tenant, other: Tenant
) -> None:
    owner = bearer(tenant.owner_secret)
    missing = "proj_" + "0" * 24
    theirs_dep = unique("dep")
    assert (
        admin.post(
            f"{other.base}/deployments", json={"name": theirs_dep, "model": MODEL}
        ).status_code
        == 201
    )
    for suffix, method, body in [
        ("", "GET", None),
        ("", "DELETE", None),
        ("/keys", "GET", None),
        ("/keys", "POST", {"name": "x", "role": "owner"}),
        (f"/keys/{other.owner_id}", "GET", None),
        (f"/keys/{other.owner_id}", "PATCH", {"name": "pwned"}),
        (f"/keys/{other.owner_id}/revoke", "POST", None),
        ("/deployments", "GET", None),
        ("/deployments", "POST", {"name": "x", "model": MODEL}),
        (f"/deployments/{theirs_dep}", "GET", None),
        (f"/deployments/{theirs_dep}", "PATCH", {"max_tokens_limit": 1}),
        (f"/deployments/{theirs_dep}", "DELETE", None),
    ]:
        theirs = http.request(method, f"{other.base}{suffix}", json=body, headers=owner)
        nowhere = http.request(method, f"{PROJECTS}/{missing}{suffix}", json=body, headers=owner)
        error = assert_error(theirs, 404, "ProjectNotFound")
        assert_error(nowhere, 404, "ProjectNotFound")
        assert theirs.json() == json.loads(nowhere.text.replace(missing, other.project_id))
        assert error["message"] == f"The project '{other.project_id}' does not exist."

    # Another project's key or deployment under one's own project id: not found either.
    for path, code in [
        (f"/keys/{other.owner_id}", "ApiKeyNotFound"),
        (f"/keys/{other.owner_id}/revoke", "ApiKeyNotFound"),
        (f"/deployments/{theirs_dep}", "DeploymentNotFound"),
    ]:
        method = "POST" if path.endswith("revoke") else "GET"
        theirs = http.request(method, f"{tenant.base}{path}", headers=owner)
        assert_error(theirs, 404, code)
    # Still intact, still working.
    assert admin.get(f"{other.base}/keys/{other.owner_id}").json()["revoked_at"] is None
    assert admin.get(f"{other.base}/deployments/{theirs_dep}").json()["max_tokens_limit"] is None
    assert models_status(http, other.owner_secret) == 200


# --- strict bodies ---------------------------------------------------------------------------


def test_fields_nobody_may_set_are_400(
    admin: httpx.Client, http: httpx.Client, tenant: Tenant
) -> None:
    owner = bearer(tenant.owner_secret)
    key_url = f"{tenant.base}/keys/{tenant.owner_id}"
    keys = f"{tenant.base}/keys"
    deployments = f"{tenant.base}/deployments"
    new_key = {"name": "x", "role": "member"}
    new_deployment = {"name": "x", "model": MODEL}
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", PROJECTS, {"name": unique("p"), "id": "proj_mine"}, "id"),
        ("POST", keys, {**new_key, "project_id": tenant.project_id}, "project_id"),
        ("POST", keys, {**new_key, "secret_hash": "0" * 64}, "secret_hash"),
        ("POST", keys, {**new_key, "prefix": "cer-x"}, "prefix"),
        ("POST", keys, {**new_key, "revoked_at": None}, "revoked_at"),
        ("PATCH", key_url, {"project_id": "proj_other"}, "project_id"),
        ("PATCH", key_url, {"revoked_at": None}, "revoked_at"),
        ("PATCH", key_url, {"user_role": "admin"}, "user_role"),
        ("PATCH", key_url, {"secret": "cer-mine.x"}, "secret"),
        ("POST", deployments, {**new_deployment, "api_base": "http://169.254.169.254"}, "api_base"),
        ("POST", deployments, {**new_deployment, "project_id": "proj_other"}, "project_id"),
    ]
    for method, url, body, param in cases:
        for client, headers in ((admin, None), (http, owner)):
            if url == PROJECTS and headers is not None:
                continue  # an owner is refused project creation before its body is read
            response = client.request(method, url, json=body, headers=headers)
            error = assert_error(response, 400, "invalid_value")
            assert error["param"] == param, (url, body, error)
    assert [k["id"] for k in admin.get(f"{tenant.base}/keys").json()["data"]] == [tenant.owner_id]
    assert admin.get(deployments).json()["data"] == []
    assert admin.get(key_url).json()["project_id"] == tenant.project_id


def test_no_key_or_a_bad_key_is_401(http: httpx.Client, tenant: Tenant) -> None:
    assert_error(http.get(PROJECTS), 401, None)
    assert_error(http.get(tenant.base, headers=bearer("cer-nope")), 401, "invalid_api_key")
    assert_error(http.get("/admin/audit", headers=bearer("' OR 1=1 --")), 401, "invalid_api_key")


# --- audit -----------------------------------------------------------------------------------


def test_every_action_is_audited_with_actor_before_and_after(
    http: httpx.Client, admin: httpx.Client
) -> None:
    tenant = make_tenant(admin)
    owner = bearer(tenant.owner_secret)
    member = make_key(http, tenant.project_id, "member", owner)
    member_url = f"{tenant.base}/keys/{member['id']}"
    http.patch(member_url, json={"tokens_per_minute": 99}, headers=owner)
    http.post(f"{member_url}/revoke", headers=owner)
    name = unique("dep")
    deployments = f"{tenant.base}/deployments"
    http.post(deployments, json={"name": name, "model": MODEL}, headers=owner)
    http.patch(f"{deployments}/{name}", json={"tokens_per_minute": 5000}, headers=owner)
    http.delete(f"{deployments}/{name}", headers=owner)

    events = audit(admin, tenant.project_id)
    assert [(e["action"], e["actor"], e["target_type"]) for e in events] == [
        ("project.create", "admin", "project"),
        ("key.create", "admin", "api_key"),
        ("key.create", tenant.owner_id, "api_key"),
        ("key.update", tenant.owner_id, "api_key"),
        ("key.revoke", tenant.owner_id, "api_key"),
        ("deployment.create", tenant.owner_id, "deployment"),
        ("deployment.update", tenant.owner_id, "deployment"),
        ("deployment.delete", tenant.owner_id, "deployment"),
    ]
    assert all(e["project_id"] == tenant.project_id for e in events)
    assert all(isinstance(e["at"], int) and e["at"] > 0 for e in events)
    key_update, key_revoke = events[3], events[4]
    assert key_update["target_id"] == member["id"]
    assert key_update["before"]["tokens_per_minute"] is None
    assert key_update["after"]["tokens_per_minute"] == 99
    assert key_revoke["before"]["revoked_at"] is None
    assert key_revoke["after"]["revoked_at"] is not None
    dep_create, dep_update, dep_delete = events[5:]
    assert dep_create["before"] is None and dep_create["after"]["id"] == name
    assert dep_update["before"]["tokens_per_minute"] != 5000
    assert dep_update["after"]["tokens_per_minute"] == 5000
    assert dep_delete["before"] == dep_update["after"] and dep_delete["after"] is None
    assert member["secret"] not in json.dumps(events)


def test_audit_pages_newest_first(admin: httpx.Client) -> None:
    tenant = make_tenant(admin)
    for role in ("member", "reader", "member"):
        make_key(admin, tenant.project_id, role)
    params = {"project_id": tenant.project_id, "limit": 2}
    first = admin.get("/admin/audit", params=params).json()
    assert first["has_more"] is True
    ids = [e["id"] for e in first["data"]]
    assert ids == sorted(ids, reverse=True) and first["last_id"] == ids[-1]
    second = admin.get("/admin/audit", params={**params, "before_id": first["last_id"]}).json()
    third = admin.get("/admin/audit", params={**params, "before_id": second["last_id"]}).json()
    assert third["has_more"] is False
    everything = first["data"] + second["data"] + third["data"]
    assert len(everything) == 5  # project, owner key, three keys
    assert everything[-1]["action"] == "project.create"
    one = admin.get(f"/admin/audit/{ids[0]}")
    assert one.status_code == 200 and one.json() == first["data"][0]
    for bad in (
        {"limit": 0},
        {"limit": 1001},
        {"before_id": "x"},
        {"before_id": 2**40},
        {"project_id": "proj\x00"},
        {"project_id": "x" * 41},
    ):
        assert_error(admin.get("/admin/audit", params=bad), 400, None)
    assert_error(admin.get("/admin/audit/2147483647"), 404, "not_found")


def test_the_audit_log_cannot_be_changed(admin: httpx.Client, tenant: Tenant) -> None:
    [event] = [e for e in audit(admin, tenant.project_id) if e["action"] == "project.create"]
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        for url in ("/admin/audit", f"/admin/audit/{event['id']}"):
            response = admin.request(method, url, json={"actor": "nobody"})
            assert_error(response, 405, "method_not_allowed")
    assert admin.get(f"/admin/audit/{event['id']}").json() == event
