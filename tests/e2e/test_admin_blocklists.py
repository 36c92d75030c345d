"""A project's blocklists through the admin API on a real server: every route, bad input,
permissions and tenancy, and deployments' content-filter policies that attach blocklists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL, ServerProcess
from tests.e2e.gateway_helpers import PROJECTS, AdminApi, assert_openai_error, bearer, unique

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[AdminApi]:
    admin_api = AdminApi(server.base_url, server.admin_key)
    yield admin_api
    admin_api.close()


@pytest.fixture(scope="module")
def admin(api: AdminApi) -> httpx.Client:
    return api.client


@pytest.fixture
def project(api: AdminApi) -> str:
    return api.project("blocklists")


@pytest.fixture
def lists(project: str) -> str:
    return f"{PROJECTS}/{project}/blocklists"


def audit(admin: httpx.Client, project_id: str) -> list[dict[str, Any]]:
    """The project's events, oldest first."""
    response = admin.get("/admin/audit", params={"project_id": project_id, "limit": 1000})
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["data"]))


def make(admin: httpx.Client, lists: str, name: str = "words", **extra: Any) -> dict[str, Any]:
    response = admin.post(lists, json={"name": name, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_route(admin: httpx.Client, project: str, lists: str) -> None:
    created = admin.post(
        lists,
        json={
            "name": "words",
            "description": "Rivals",
            "items": [{"pattern": "Acme Corp"}, {"pattern": r"rival-\d+", "is_regex": True}],
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{lists}/words"
    body = created.json()
    items = body["items"]
    assert body == {
        "id": "words",
        "object": "blocklist",
        "blocklist_id": body["blocklist_id"],
        "project_id": project,
        "description": "Rivals",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "item_count": 2,
        "items": items,
    }
    assert body["blocklist_id"].startswith("bl_") and isinstance(body["created_at"], int)
    assert [set(i) for i in items] == [{"id", "object", "pattern", "is_regex", "created_at"}] * 2
    assert [(i["object"], i["pattern"], i["is_regex"]) for i in items] == [
        ("blocklist_item", "Acme Corp", False),
        ("blocklist_item", r"rival-\d+", True),
    ]
    assert all(i["id"].startswith("bli_") for i in items)
    assert admin.get(f"{lists}/words").json() == body

    listed = admin.get(lists)
    assert listed.status_code == 200
    summary = {k: v for k, v in body.items() if k != "items"}
    assert listed.json() == {"object": "list", "data": [summary]}

    patched = admin.patch(f"{lists}/words", json={"description": "Competitors"})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {
        **summary,
        "description": "Competitors",
        "updated_at": patched.json()["updated_at"],
    }
    assert admin.patch(f"{lists}/words", json={}).json() == patched.json()  # nothing to change

    added = admin.post(
        f"{lists}/words/items", json={"items": [{"pattern": "third"}, {"pattern": "fourth"}]}
    )
    assert added.status_code == 201, added.text
    new = added.json()["data"]
    assert added.json()["object"] == "list"
    assert [(i["pattern"], i["is_regex"]) for i in new] == [("third", False), ("fourth", False)]
    all_items = admin.get(f"{lists}/words/items")
    assert all_items.status_code == 200
    assert all_items.json() == {"object": "list", "data": [*items, *new]}

    removed = admin.delete(f"{lists}/words/items/{items[0]['id']}")
    assert removed.status_code == 200, removed.text
    assert removed.json() == {
        "id": items[0]["id"],
        "object": "blocklist_item.deleted",
        "deleted": True,
    }
    assert_openai_error(
        admin.delete(f"{lists}/words/items/{items[0]['id']}"), 404, "BlocklistItemNotFound"
    )
    assert admin.get(f"{lists}/words").json()["item_count"] == 3

    deleted = admin.delete(f"{lists}/words")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": "words", "object": "blocklist.deleted", "deleted": True}
    assert_openai_error(admin.get(f"{lists}/words"), 404, "BlocklistNotFound")
    assert admin.get(lists).json()["data"] == []

    events = [e for e in audit(admin, project) if e["target_type"] == "blocklist"]
    assert [(e["action"], e["actor"], e["target_id"]) for e in events] == [
        ("blocklist.create", "admin", "words"),
        ("blocklist.item.add", "admin", "words"),
        ("blocklist.update", "admin", "words"),
        ("blocklist.item.add", "admin", "words"),
        ("blocklist.item.remove", "admin", "words"),
        ("blocklist.delete", "admin", "words"),
    ]
    assert events[2]["after"] == patched.json()
    assert events[4]["before"] == {"blocklist": "words", "items": [items[0]]}


@pytest.mark.parametrize(
    ("body", "param", "text"),
    [
        ({"name": "words", "items": [{"pattern": "(", "is_regex": True}]}, "items.0.pattern",
         "Invalid regular expression"),
        ({"name": "words", "items": [{"pattern": "ok"}, {"pattern": "x" * 129}]},
         "items.1.pattern", "at most 128 characters"),
        ({"name": "words", "items": [{"pattern": "x" * 1001, "is_regex": True}]},
         "items.0.pattern", "at most 1000 characters"),
        ({"name": "words", "items": [{"pattern": ""}]}, "items.0.pattern", "non-empty"),
        ({"name": "words", "items": [{"pattern": "a\u0000b"}]}, "items.0.pattern", "NUL"),
        ({"name": "words", "items": [{"pattern": 5}]}, "items.0.pattern", ""),
        ({"name": "words", "items": [{"pattern": "x", "is_regex": "yes"}]}, "items.0.is_regex", ""),
        ({"name": "words", "items": [{"pattern": "x", "regex": True}]}, "items.0.regex", ""),
        ({"name": "words", "items": "x"}, "items", ""),
        ({"name": "words", "description": "d" * 513}, "description", "512"),
        ({"name": "words", "description": 5}, "description", ""),
        ({"name": "-words"}, "name", "A blocklist name"),
        ({"name": "x" * 65}, "name", "A blocklist name"),
        ({"name": "a/b"}, "name", "A blocklist name"),
        ({}, "name", ""),
        ({"name": "words", "project_id": "proj_x"}, "project_id", ""),
    ],
)  # fmt: skip
def test_bad_create_is_400_and_creates_nothing(
    admin: httpx.Client, project: str, lists: str, body: dict[str, Any], param: str, text: str
) -> None:
    error = assert_openai_error(admin.post(lists, json=body), 400, "invalid_value")
    assert error["param"] == param and text in error["message"], error
    assert admin.get(lists).json()["data"] == []
    assert [e["action"] for e in audit(admin, project)] == ["project.create"]


def test_bad_changes_are_400_and_change_nothing(admin: httpx.Client, lists: str) -> None:
    before = make(admin, lists, items=[{"pattern": "kept"}])
    for body, param in [
        ({"items": []}, "items"),
        ({"items": [{"pattern": "[", "is_regex": True}]}, "items.0.pattern"),
        ({"items": [{"pattern": "ok"}, {"pattern": "   "}]}, "items.1.pattern"),
        ({}, "items"),
    ]:
        error = assert_openai_error(
            admin.post(f"{lists}/words/items", json=body), 400, "invalid_value"
        )
        assert error["param"] == param, error
    for body, param in [({"description": "d" * 513}, "description"), ({"name": "x"}, "name")]:
        error = assert_openai_error(admin.patch(f"{lists}/words", json=body), 400, "invalid_value")
        assert error["param"] == param, error
    assert admin.get(f"{lists}/words").json() == before
    response = admin.post(lists, content=b"name=x", headers={"content-type": "text/plain"})
    assert_openai_error(response, 415, "unsupported_media_type")


def test_limits_and_duplicates(admin: httpx.Client, lists: str) -> None:
    too_many = [{"pattern": f"term{i}"} for i in range(10_001)]
    error = assert_openai_error(
        admin.post(lists, json={"name": "big", "items": too_many}), 400, "limit_exceeded"
    )
    assert error["param"] == "items" and "10000" in error["message"]
    make(admin, lists, items=too_many[:9_999])
    assert admin.post(f"{lists}/words/items", json={"items": too_many[:1]}).status_code == 201
    error = assert_openai_error(
        admin.post(f"{lists}/words/items", json={"items": too_many[:1]}), 400, "limit_exceeded"
    )
    assert "at most 0 more" in error["message"]
    error = assert_openai_error(admin.post(lists, json={"name": "words"}), 409, "conflict")
    assert error["param"] == "name"
    assert admin.get(f"{lists}/words").json()["item_count"] == 10_000


def test_unknown_names_and_items_are_404(admin: httpx.Client, lists: str) -> None:
    make(admin, lists, items=[{"pattern": "x"}])
    make(admin, lists, "other", items=[{"pattern": "y"}])
    other_item = admin.get(f"{lists}/other/items").json()["data"][0]["id"]
    for method, path in [
        ("GET", "/nope"),
        ("PATCH", "/nope"),
        ("DELETE", "/nope"),
        ("GET", "/nope/items"),
        ("POST", "/nope/items"),
        ("DELETE", f"/nope/items/{other_item}"),
        ("GET", "/%00"),
    ]:
        body = (
            {"items": [{"pattern": "z"}]} if method == "POST" else {} if method == "PATCH" else None
        )
        response = admin.request(method, f"{lists}{path}", json=body)
        assert_openai_error(response, 404, "BlocklistNotFound")
    # Another list's item, or no item at all, under this list.
    for item_id in (other_item, "bli_" + "0" * 24, "x" * 100):
        assert_openai_error(
            admin.delete(f"{lists}/words/items/{item_id}"), 404, "BlocklistItemNotFound"
        )
    assert admin.get(f"{lists}/other").json()["item_count"] == 1


@pytest.mark.parametrize("role", ["member", "reader"])
def test_members_and_readers_cannot_manage(
    api: AdminApi, admin: httpx.Client, project: str, lists: str, role: str
) -> None:
    before = make(admin, lists, items=[{"pattern": "x"}])
    item = before["items"][0]["id"]
    headers = bearer(api.key(project, role)["secret"])
    attempts = [
        ("GET", lists, None),
        ("POST", lists, {"name": "mine"}),
        ("GET", f"{lists}/words", None),
        ("PATCH", f"{lists}/words", {"description": "pwned"}),
        ("DELETE", f"{lists}/words", None),
        ("GET", f"{lists}/words/items", None),
        ("POST", f"{lists}/words/items", {"items": [{"pattern": "y"}]}),
        ("DELETE", f"{lists}/words/items/{item}", None),
        # Bad input reveals nothing either: the role is checked first.
        ("POST", lists, {"name": "-bad"}),
    ]
    for method, url, body in attempts:
        response = admin.request(method, url, json=body, headers=headers)
        assert_openai_error(response, 403, "permission_denied")
    assert admin.get(f"{lists}/words").json() == before


def test_owners_manage_and_other_projects_are_404(
    api: AdminApi, admin: httpx.Client, lists: str
) -> None:
    other_project = api.project("other")
    other = f"{PROJECTS}/{other_project}/blocklists"
    theirs = make(admin, other, "theirs", items=[{"pattern": "x"}])
    owner = bearer(api.key(lists.split("/")[3], "owner")["secret"])

    mine = admin.post(lists, json={"name": "mine"}, headers=owner)
    assert mine.status_code == 201, mine.text
    item = theirs["items"][0]["id"]
    for method, path, body in [
        ("GET", "", None),
        ("POST", "", {"name": "x"}),
        ("GET", "/theirs", None),
        ("PATCH", "/theirs", {"description": "pwned"}),
        ("DELETE", "/theirs", None),
        ("GET", "/theirs/items", None),
        ("POST", "/theirs/items", {"items": [{"pattern": "y"}]}),
        ("DELETE", f"/theirs/items/{item}", None),
    ]:
        response = admin.request(method, f"{other}{path}", json=body, headers=owner)
        error = assert_openai_error(response, 404, "ProjectNotFound")
        assert error["message"] == f"The project '{other_project}' does not exist."
    # Their blocklist under one's own project: simply not there.
    assert_openai_error(admin.get(f"{lists}/theirs", headers=owner), 404, "BlocklistNotFound")
    assert admin.get(f"{other}/theirs").json() == theirs
    events = audit(admin, lists.split("/")[3])
    assert events[-1]["action"] == "blocklist.create" and events[-1]["actor"].startswith("key_")


# --- deployments' policies -------------------------------------------------------------------


def deployment_body(name: str, policy: Any) -> dict[str, Any]:
    return {"name": name, "model": MODEL, "content_filter": policy}


def test_policies_attach_blocklists(admin: httpx.Client, project: str, lists: str) -> None:
    deployments = f"{PROJECTS}/{project}/deployments"
    make(admin, lists)
    name = unique("dep")
    policy = {"prompt": {"hate": "low", "blocklists": ["words"]}, "completion": {"sexual": "off"}}
    created = admin.post(deployments, json=deployment_body(name, policy))
    assert created.status_code == 201, created.text
    content_filter = created.json()["content_filter"]
    assert content_filter["prompt"] == {
        "hate": "low",
        "sexual": "medium",
        "violence": "medium",
        "self_harm": "medium",
        "jailbreak": True,
        "indirect_attack": False,
        "profanity": False,
        "blocklists": ["words"],
    }
    assert content_filter["completion"]["sexual"] == "off"
    assert content_filter["completion"]["blocklists"] == []

    error = assert_openai_error(admin.delete(f"{lists}/words"), 409, "conflict")
    assert f"'{name}'" in error["message"]
    assert admin.get(f"{lists}/words").status_code == 200

    # PATCH replaces the whole policy; null resets it to the default.
    patched = admin.patch(
        f"{deployments}/{name}", json={"content_filter": {"completion": {"blocklists": ["words"]}}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["content_filter"]["prompt"]["hate"] == "medium"
    assert patched.json()["content_filter"]["completion"]["blocklists"] == ["words"]
    assert_openai_error(admin.delete(f"{lists}/words"), 409, "conflict")
    reset = admin.patch(f"{deployments}/{name}", json={"content_filter": None})
    assert reset.status_code == 200, reset.text
    default = admin.post(deployments, json={"name": unique("dep"), "model": MODEL}).json()
    assert reset.json()["content_filter"] == default["content_filter"]
    assert admin.delete(f"{lists}/words").status_code == 200

    updates = [e for e in audit(admin, project) if e["action"] == "deployment.update"]
    assert updates[0]["before"]["content_filter"] == content_filter
    assert updates[0]["after"]["content_filter"] == patched.json()["content_filter"]
    assert updates[1]["after"]["content_filter"] == default["content_filter"]


@pytest.mark.parametrize(
    ("policy", "param"),
    [
        ({"prompt": {"colour": "low"}}, "content_filter.prompt.colour"),
        ({"strictness": "high"}, "content_filter.strictness"),
        ({"prompt": {"hate": "severe"}}, "content_filter.prompt.hate"),
        ({"completion": {"violence": 2}}, "content_filter.completion.violence"),
        ({"completion": {"jailbreak": True}}, "content_filter.completion.jailbreak"),
        ({"prompt": {"profanity": "yes"}}, "content_filter.prompt.profanity"),
        ({"prompt": {"blocklists": ["missing"]}}, "content_filter.prompt.blocklists"),
        ({"completion": {"blocklists": ["missing"]}}, "content_filter.completion.blocklists"),
        ({"prompt": {"blocklists": ["bad name"]}}, "content_filter.prompt.blocklists"),
        ({"prompt": {"blocklists": "words"}}, "content_filter.prompt.blocklists"),
        ("strict", "content_filter"),
        ([], "content_filter"),
    ],
)
def test_invalid_policies_are_400(
    admin: httpx.Client, project: str, policy: Any, param: str
) -> None:
    deployments = f"{PROJECTS}/{project}/deployments"
    name = unique("dep")
    error = assert_openai_error(
        admin.post(deployments, json=deployment_body(name, policy)), 400, "invalid_value"
    )
    assert error["param"] == param, error
    assert_openai_error(admin.get(f"{deployments}/{name}"), 404, "DeploymentNotFound")
    created = admin.post(deployments, json={"name": name, "model": MODEL})
    assert created.status_code == 201
    error = assert_openai_error(
        admin.patch(f"{deployments}/{name}", json={"content_filter": policy}), 400, "invalid_value"
    )
    assert error["param"] == param, error
    assert admin.get(f"{deployments}/{name}").json() == created.json()


def test_a_policy_cannot_name_another_projects_blocklist(
    api: AdminApi, admin: httpx.Client, project: str
) -> None:
    other = api.project("other")
    make(admin, f"{PROJECTS}/{other}/blocklists", "theirs")
    policy = {"prompt": {"blocklists": ["theirs"]}}
    response = admin.post(
        f"{PROJECTS}/{project}/deployments", json=deployment_body(unique("dep"), policy)
    )
    error = assert_openai_error(response, 400, "invalid_value")
    assert error["param"] == "content_filter.prompt.blocklists"
    assert json.dumps(policy) and "'theirs' does not exist" in error["message"]
