"""The admin deployments API on a real server, and the CLI writing beside it."""

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

DEPLOYMENTS = "/admin/deployments"


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def name(admin: httpx.Client) -> Iterator[str]:
    """A fresh deployment name, deleted after the test (the server is shared by the session)."""
    fresh = f"dep-{uuid.uuid4().hex[:12]}"
    yield fresh
    admin.delete(f"{DEPLOYMENTS}/{fresh}")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code, error
    assert error["message"]
    return dict(error)


def listed_ids(admin: httpx.Client) -> list[str]:
    response = admin.get(DEPLOYMENTS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return [item["id"] for item in body["data"]]


def test_create_get_list_patch_delete(admin: httpx.Client, name: str) -> None:
    created = admin.post(
        DEPLOYMENTS,
        json={
            "name": name,
            "model": MODEL,
            "defaults": {"temperature": 0.2, "max_tokens": 50},
            "max_tokens_limit": 100,
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/admin/deployments/{name}"
    body = created.json()
    assert body == {
        "id": name,
        "object": "deployment",
        "model": MODEL,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "status": "succeeded",
        "defaults": {"temperature": 0.2, "top_p": None, "max_tokens": 50},
        "max_tokens_limit": 100,
    }
    assert isinstance(body["created_at"], int)

    assert admin.get(f"{DEPLOYMENTS}/{name}").json() == body
    assert name in listed_ids(admin)

    # Merge patch: given default fields change, others stay; null clears.
    patched = admin.patch(
        f"{DEPLOYMENTS}/{name}", json={"defaults": {"top_p": 0.9, "max_tokens": None}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["defaults"] == {"temperature": 0.2, "top_p": 0.9, "max_tokens": None}
    assert patched.json()["max_tokens_limit"] == 100
    assert patched.json()["updated_at"] >= body["created_at"]

    patched = admin.patch(f"{DEPLOYMENTS}/{name}", json={"max_tokens_limit": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["max_tokens_limit"] is None
    assert admin.get(f"{DEPLOYMENTS}/{name}").json() == patched.json()

    deleted = admin.delete(f"{DEPLOYMENTS}/{name}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": name, "object": "deployment.deleted", "deleted": True}
    assert_error(admin.get(f"{DEPLOYMENTS}/{name}"), 404, "DeploymentNotFound")
    assert name not in listed_ids(admin)


def test_embedding_model_can_be_deployed(admin: httpx.Client, name: str) -> None:
    response = admin.post(DEPLOYMENTS, json={"name": name, "model": EMBEDDING_MODEL})
    assert response.status_code == 201, response.text
    assert response.json()["defaults"] == {"temperature": None, "top_p": None, "max_tokens": None}


def test_unknown_deployment_is_404(admin: httpx.Client) -> None:
    assert_error(admin.get(f"{DEPLOYMENTS}/no-such-deployment"), 404, "DeploymentNotFound")
    assert_error(
        admin.patch(f"{DEPLOYMENTS}/no-such-deployment", json={}), 404, "DeploymentNotFound"
    )
    assert_error(admin.delete(f"{DEPLOYMENTS}/no-such-deployment"), 404, "DeploymentNotFound")


def test_duplicate_is_409(admin: httpx.Client, name: str) -> None:
    assert admin.post(DEPLOYMENTS, json={"name": name, "model": MODEL}).status_code == 201
    error = assert_error(
        admin.post(DEPLOYMENTS, json={"name": name, "model": MODEL, "max_tokens_limit": 5}),
        409,
        "conflict",
    )
    assert error["param"] == "name"
    assert admin.get(f"{DEPLOYMENTS}/{name}").json()["max_tokens_limit"] is None


def test_unknown_model_is_400(admin: httpx.Client, name: str) -> None:
    error = assert_error(
        admin.post(DEPLOYMENTS, json={"name": name, "model": "gpt-5"}), 400, "invalid_value"
    )
    assert error["param"] == "model"
    assert MODEL in error["message"]
    assert_error(admin.get(f"{DEPLOYMENTS}/{name}"), 404, "DeploymentNotFound")


@pytest.mark.parametrize("bad", ["-dash", ".dot", "has space", "ü", "x" * 65, ""])
def test_bad_name_is_400(admin: httpx.Client, bad: str) -> None:
    error = assert_error(
        admin.post(DEPLOYMENTS, json={"name": bad, "model": MODEL}), 400, "invalid_value"
    )
    assert error["param"] == "name"


def test_name_equal_to_a_model_id_is_400(admin: httpx.Client) -> None:
    for model_id in (MODEL, EMBEDDING_MODEL):
        error = assert_error(
            admin.post(DEPLOYMENTS, json={"name": model_id, "model": MODEL}), 400, "invalid_value"
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
    admin: httpx.Client, body: dict[str, Any], param: str
) -> None:
    error = assert_error(admin.post(DEPLOYMENTS, json=body), 400, "invalid_value")
    assert error["param"] == param
    assert "ok-name" not in listed_ids(admin)


def test_invalid_patch_is_400_and_changes_nothing(admin: httpx.Client, name: str) -> None:
    created = admin.post(
        DEPLOYMENTS, json={"name": name, "model": MODEL, "defaults": {"max_tokens": 50}}
    )
    assert created.status_code == 201
    error = assert_error(
        admin.patch(f"{DEPLOYMENTS}/{name}", json={"max_tokens_limit": 10}), 400, "invalid_value"
    )
    assert error["param"] == "defaults.max_tokens"
    error = assert_error(
        admin.patch(f"{DEPLOYMENTS}/{name}", json={"model": EMBEDDING_MODEL}), 400, "invalid_value"
    )
    assert error["param"] == "model"
    assert admin.get(f"{DEPLOYMENTS}/{name}").json() == created.json()


def test_body_must_be_json(admin: httpx.Client) -> None:
    response = admin.post(DEPLOYMENTS, content=b"name=x", headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")


def run_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CERULEUM_DATA_DIR": str(server.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "ceruleum", "deployments", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_and_server_share_deployments_without_restart(
    server: ServerProcess, admin: httpx.Client, name: str
) -> None:
    created = run_cli(server, "create", name, "--model", MODEL, "--max-tokens-limit", "64")
    assert created.returncode == 0, created.stderr
    assert name in listed_ids(admin)
    assert admin.get(f"{DEPLOYMENTS}/{name}").json()["max_tokens_limit"] == 64

    # And the other way: the server's change is what the CLI reads next.
    assert (
        admin.patch(f"{DEPLOYMENTS}/{name}", json={"defaults": {"temperature": 0.5}}).status_code
        == 200
    )
    shown = run_cli(server, "show", name)
    assert shown.returncode == 0, shown.stderr
    assert '"temperature": 0.5' in shown.stdout

    deleted = run_cli(server, "delete", name)
    assert deleted.returncode == 0, deleted.stderr
    assert_error(admin.get(f"{DEPLOYMENTS}/{name}"), 404, "DeploymentNotFound")


def test_cli_duplicate_of_a_server_deployment_fails(
    server: ServerProcess, admin: httpx.Client, name: str
) -> None:
    assert admin.post(DEPLOYMENTS, json={"name": name, "model": MODEL}).status_code == 201
    result = run_cli(server, "create", name, "--model", MODEL)
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_store_is_a_clear_500_and_the_server_recovers(
    server: ServerProcess, admin: httpx.Client
) -> None:
    path = server.data_dir / "deployments.json"
    saved = path.read_bytes() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{broken")
    try:
        for response in (admin.get(DEPLOYMENTS), admin.get(f"{DEPLOYMENTS}/anything")):
            error = assert_error(response, 500, "deployment_store_unreadable")
            assert error["type"] == "server_error"
            assert str(path) not in error["message"]  # the path is for the operator's log
        assert str(path) in server.log()
        assert path.read_text() == "{broken"
    finally:
        if saved is None:
            path.unlink()
        else:
            path.write_bytes(saved)
    assert admin.get(DEPLOYMENTS).status_code == 200
