"""A project's deployments through the admin API on a real server, and the CLI beside it.

Permissions and tenancy of these routes are tested in test_admin.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import EMBEDDING_MODEL, MODEL, ServerProcess

pytestmark = pytest.mark.slow

DEFAULT_TPM = 120_000  # the server's default_tokens_per_minute
# Azure's default policy: medium and above filtered, jailbreak attacks blocked, no blocklists.
DEFAULT_CONTENT_FILTER = {
    "prompt": {
        "hate": "medium",
        "sexual": "medium",
        "violence": "medium",
        "self_harm": "medium",
        "jailbreak": True,
        "indirect_attack": False,
        "profanity": False,
        "blocklists": [],
    },
    "completion": {
        "hate": "medium",
        "sexual": "medium",
        "violence": "medium",
        "self_harm": "medium",
        "profanity": False,
        "blocklists": [],
    },
}


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30, headers=server.headers) as client:
        yield client


@pytest.fixture(scope="module")
def project_id(admin: httpx.Client) -> str:
    created = admin.post("/admin/projects", json={"name": f"deployments-{uuid.uuid4().hex[:8]}"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.fixture(scope="module")
def deployments(project_id: str) -> str:
    return f"/admin/projects/{project_id}/deployments"


@pytest.fixture
def name(admin: httpx.Client, deployments: str) -> Iterator[str]:
    """A fresh deployment name, deleted after the test (the server is shared by the session)."""
    fresh = f"dep-{uuid.uuid4().hex[:12]}"
    yield fresh
    admin.delete(f"{deployments}/{fresh}")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code, error
    assert error["message"]
    return dict(error)


def listed_ids(admin: httpx.Client, deployments: str) -> list[str]:
    response = admin.get(deployments)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return [item["id"] for item in body["data"]]


def test_create_get_list_patch_delete(admin: httpx.Client, deployments: str, name: str) -> None:
    created = admin.post(
        deployments,
        json={
            "name": name,
            "model": MODEL,
            "defaults": {"temperature": 0.2, "max_tokens": 50},
            "max_tokens_limit": 100,
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{deployments}/{name}"
    body = created.json()
    assert body == {
        "id": name,
        "object": "deployment",
        "project_id": deployments.split("/")[3],
        "model": MODEL,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "status": "succeeded",
        "defaults": {"temperature": 0.2, "top_p": None, "max_tokens": 50},
        "max_tokens_limit": 100,
        "tokens_per_minute": DEFAULT_TPM,  # omitted: the server's default, written down
        "requests_per_minute": None,  # derived: 6 per 1,000 tokens per minute
        "content_filter": DEFAULT_CONTENT_FILTER,
    }
    assert isinstance(body["created_at"], int)

    assert admin.get(f"{deployments}/{name}").json() == body
    assert name in listed_ids(admin, deployments)

    # Merge patch: given default fields change, others stay; null clears.
    patched = admin.patch(
        f"{deployments}/{name}", json={"defaults": {"top_p": 0.9, "max_tokens": None}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["defaults"] == {"temperature": 0.2, "top_p": 0.9, "max_tokens": None}
    assert patched.json()["max_tokens_limit"] == 100
    assert patched.json()["updated_at"] >= body["created_at"]

    patched = admin.patch(f"{deployments}/{name}", json={"max_tokens_limit": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["max_tokens_limit"] is None
    assert admin.get(f"{deployments}/{name}").json() == patched.json()

    deleted = admin.delete(f"{deployments}/{name}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": name, "object": "deployment.deleted", "deleted": True}
    assert_error(admin.get(f"{deployments}/{name}"), 404, "DeploymentNotFound")
    assert name not in listed_ids(admin, deployments)


def test_embedding_model_can_be_deployed(admin: httpx.Client, deployments: str, name: str) -> None:
    response = admin.post(deployments, json={"name": name, "model": EMBEDDING_MODEL})
    assert response.status_code == 201, response.text
    assert response.json()["defaults"] == {"temperature": None, "top_p": None, "max_tokens": None}


def test_unknown_deployment_is_404(admin: httpx.Client, deployments: str) -> None:
    assert_error(admin.get(f"{deployments}/no-such-deployment"), 404, "DeploymentNotFound")
    assert_error(
        admin.patch(f"{deployments}/no-such-deployment", json={}), 404, "DeploymentNotFound"
    )
    assert_error(admin.delete(f"{deployments}/no-such-deployment"), 404, "DeploymentNotFound")


def test_duplicate_is_409(admin: httpx.Client, deployments: str, name: str) -> None:
    assert admin.post(deployments, json={"name": name, "model": MODEL}).status_code == 201
    error = assert_error(
        admin.post(deployments, json={"name": name, "model": MODEL, "max_tokens_limit": 5}),
        409,
        "conflict",
    )
    assert error["param"] == "name"
    assert admin.get(f"{deployments}/{name}").json()["max_tokens_limit"] is None


def test_unknown_model_is_400(admin: httpx.Client, deployments: str, name: str) -> None:
    error = assert_error(
        admin.post(deployments, json={"name": name, "model": "gpt-5"}), 400, "invalid_value"
    )
    assert error["param"] == "model"
    assert MODEL in error["message"]
    assert_error(admin.get(f"{deployments}/{name}"), 404, "DeploymentNotFound")


@pytest.mark.parametrize("bad", ["-dash", ".dot", "has space", "ü", "x" * 65, ""])
def test_bad_name_is_400(admin: httpx.Client, deployments: str, bad: str) -> None:
    error = assert_error(
        admin.post(deployments, json={"name": bad, "model": MODEL}), 400, "invalid_value"
    )
    assert error["param"] == "name"


def test_name_equal_to_a_model_id_is_400(admin: httpx.Client, deployments: str) -> None:
    for model_id in (MODEL, EMBEDDING_MODEL):
        error = assert_error(
            admin.post(deployments, json={"name": model_id, "model": MODEL}), 400, "invalid_value"
        )
        assert error["param"] == "name"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "name"),
        ({"name": "ok-name"}, "model"),
        ({"name": 5, "model": MODEL}, "name"),
        (
            {"name": "ok-name", "model": MODEL, "defaults": {"temperature": 3}},
            "defaults.temperature",
        ),
        ({"name": "ok-name", "model": MODEL, "defaults": {"top_p": "0.5"}}, "defaults.top_p"),
        ({"name": "ok-name", "model": MODEL, "defaults": {"max_tokens": 0}}, "defaults.max_tokens"),
        ({"name": "ok-name", "model": MODEL, "max_tokens_limit": True}, "max_tokens_limit"),
        ({"name": "ok-name", "model": MODEL, "max_token_limit": 5}, "max_token_limit"),
        ({"name": "ok-name", "model": MODEL, "tokens_per_minute": 0}, "tokens_per_minute"),
        ({"name": "ok-name", "model": MODEL, "tokens_per_minute": 1.5}, "tokens_per_minute"),
        ({"name": "ok-name", "model": MODEL, "requests_per_minute": "5"}, "requests_per_minute"),
        ({"name": "ok-name", "model": MODEL, "requests_per_minute": -1}, "requests_per_minute"),
        ({"name": "ok-name", "model": MODEL, "project_id": "proj_x"}, "project_id"),
        ({"name": "ok-name", "model": MODEL, "api_base": "http://127.0.0.1"}, "api_base"),
        (
            {
                "name": "ok-name",
                "model": MODEL,
                "defaults": {"max_tokens": 9},
                "max_tokens_limit": 5,
            },
            "defaults.max_tokens",
        ),
    ],
)
def test_invalid_create_body_is_400_naming_the_field(
    admin: httpx.Client, deployments: str, body: dict[str, Any], param: str
) -> None:
    error = assert_error(admin.post(deployments, json=body), 400, "invalid_value")
    assert error["param"] == param
    assert "ok-name" not in listed_ids(admin, deployments)


def test_invalid_patch_is_400_and_changes_nothing(
    admin: httpx.Client, deployments: str, name: str
) -> None:
    created = admin.post(
        deployments, json={"name": name, "model": MODEL, "defaults": {"max_tokens": 50}}
    )
    assert created.status_code == 201
    error = assert_error(
        admin.patch(f"{deployments}/{name}", json={"max_tokens_limit": 10}), 400, "invalid_value"
    )
    assert error["param"] == "defaults.max_tokens"
    for field, value in [
        ("model", EMBEDDING_MODEL),
        ("name", "renamed"),
        ("project_id", "proj_other"),
        ("tokens_per_minute", 0),
        ("requests_per_minute", True),
        ("content_filter", "strict"),
    ]:
        response = admin.patch(f"{deployments}/{name}", json={field: value})
        assert assert_error(response, 400, "invalid_value")["param"] == field
    assert admin.get(f"{deployments}/{name}").json() == created.json()


def test_quota_fields(admin: httpx.Client, deployments: str, name: str) -> None:
    body = {"name": name, "model": MODEL, "tokens_per_minute": 1000, "requests_per_minute": 3}
    created = admin.post(deployments, json=body)
    assert created.status_code == 201, created.text
    assert (created.json()["tokens_per_minute"], created.json()["requests_per_minute"]) == (1000, 3)
    patched = admin.patch(
        f"{deployments}/{name}", json={"tokens_per_minute": 50_000, "requests_per_minute": None}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["tokens_per_minute"], patched.json()["requests_per_minute"]) == (
        50_000,
        None,
    )
    assert admin.get(f"{deployments}/{name}").json() == patched.json()


def test_body_must_be_json(admin: httpx.Client, deployments: str) -> None:
    response = admin.post(deployments, content=b"name=x", headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")


def run_cli(server: ServerProcess, project_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CERULEUM_DATA_DIR": str(server.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "ceruleum", "deployments", *args, "--project", project_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_and_server_share_deployments_without_restart(
    server: ServerProcess, admin: httpx.Client, project_id: str, deployments: str, name: str
) -> None:
    created = run_cli(
        server, project_id, "create", name, "--model", MODEL, "--max-tokens-limit", "64"
    )
    assert created.returncode == 0, created.stderr
    assert name in listed_ids(admin, deployments)
    assert admin.get(f"{deployments}/{name}").json()["max_tokens_limit"] == 64

    # And the other way: the server's change is what the CLI reads next.
    assert (
        admin.patch(f"{deployments}/{name}", json={"defaults": {"temperature": 0.5}}).status_code
        == 200
    )
    shown = run_cli(server, project_id, "show", name)
    assert shown.returncode == 0, shown.stderr
    assert '"temperature": 0.5' in shown.stdout

    deleted = run_cli(server, project_id, "delete", name)
    assert deleted.returncode == 0, deleted.stderr
    assert_error(admin.get(f"{deployments}/{name}"), 404, "DeploymentNotFound")

    actions = [
        (e["action"], e["actor"])
        for e in admin.get("/admin/audit", params={"project_id": project_id}).json()["data"]
        if e["target_id"] == name
    ]
    assert actions == [
        ("deployment.delete", "cli"),
        ("deployment.update", "admin"),
        ("deployment.create", "cli"),
    ]


def test_cli_duplicate_of_a_server_deployment_fails(
    server: ServerProcess, admin: httpx.Client, project_id: str, deployments: str, name: str
) -> None:
    assert admin.post(deployments, json={"name": name, "model": MODEL}).status_code == 201
    result = run_cli(server, project_id, "create", name, "--model", MODEL)
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert "Traceback" not in result.stderr
