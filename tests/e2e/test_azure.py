"""Azure OpenAI compatibility on the real server: the official AzureOpenAI client on the dated
/openai/deployments routes, the /openai/v1 base, api-version handling, Azure-shaped errors, and
explicit deployments (created through the admin API) used by path and as `model`."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from openai import AzureOpenAI, OpenAI

from tests.conftest import ANNOTATE_ONLY_POLICY, EMBEDDING_MODEL, MODEL, ServerProcess

pytestmark = pytest.mark.slow

API_VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "Say hello."}]
CHAT_PATH = f"/openai/deployments/{MODEL}/chat/completions"


@pytest.fixture(scope="module")
def azure(server: ServerProcess) -> AzureOpenAI:
    return AzureOpenAI(
        azure_endpoint=server.base_url,
        api_key=server.api_key,
        api_version=API_VERSION,
        max_retries=0,
        timeout=60,
    )


@pytest.fixture(scope="module")
def azure_v1(server: ServerProcess) -> OpenAI:
    return OpenAI(
        base_url=server.base_url + "/openai/v1", api_key=server.api_key, max_retries=0, timeout=60
    )


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as client:
        yield client


def assert_azure_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "code"}, error
    assert error["code"] == code, error
    assert error["message"]
    return dict(error)


# --- the AzureOpenAI client ------------------------------------------------------------------


def test_chat(azure: AzureOpenAI) -> None:
    reply = azure.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == MODEL
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_streaming(azure: AzureOpenAI) -> None:
    stream = azure.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text
    assert finish in {"stop", "length"}
    assert usage is not None and 1 <= usage.completion_tokens <= 8


def test_completions(azure: AzureOpenAI) -> None:
    reply = azure.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert reply.object == "text_completion"
    assert isinstance(reply.choices[0].text, str) and reply.choices[0].text
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None and reply.usage.completion_tokens <= 5


def test_embeddings(azure: AzureOpenAI) -> None:
    reply = azure.embeddings.create(model=EMBEDDING_MODEL, input=["hello", "the sea at night"])
    assert reply.object == "list"
    assert [d.index for d in reply.data] == [0, 1]
    dims = {len(d.embedding) for d in reply.data}
    assert dims == {384}
    for item in reply.data:
        assert all(math.isfinite(x) for x in item.embedding)
    assert reply.data[0].embedding != reply.data[1].embedding
    assert reply.usage.prompt_tokens > 0


def test_embeddings_as_floats(azure: AzureOpenAI) -> None:
    reply = azure.embeddings.create(model=EMBEDDING_MODEL, input="hi", encoding_format="float")
    assert len(reply.data[0].embedding) == 384


def test_unknown_deployment_is_deployment_not_found(azure: AzureOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        azure.chat.completions.create(model="no-such-deployment", messages=HELLO, max_tokens=2)
    assert caught.value.status_code == 404
    assert caught.value.code == "DeploymentNotFound"
    with pytest.raises(openai.NotFoundError) as caught:
        azure.embeddings.create(model="no-such-deployment", input="x")
    assert caught.value.code == "DeploymentNotFound"
    with pytest.raises(openai.NotFoundError) as caught:
        azure.completions.create(model="no-such-deployment", prompt="x", max_tokens=2)
    assert caught.value.code == "DeploymentNotFound"


def test_chat_deployment_on_the_embeddings_route_is_an_error(azure: AzureOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        azure.embeddings.create(model=MODEL, input="x")
    assert caught.value.status_code in {400, 404}
    assert caught.value.code  # Azure errors always name a code


# --- raw HTTP: keys, api-version, error shape ------------------------------------------------


def auth_headers(kind: str, key: str) -> dict[str, str]:
    return {"api-key": key} if kind == "api-key" else {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("kind", ["api-key", "bearer"])
def test_both_auth_headers_are_accepted(server: ServerProcess, kind: str) -> None:
    response = httpx.post(
        server.base_url + CHAT_PATH,
        params={"api-version": API_VERSION},
        headers=auth_headers(kind, server.api_key),
        json={"messages": HELLO, "max_tokens": 2},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"


@pytest.mark.parametrize("kind", ["api-key", "bearer"])
def test_a_wrong_key_is_refused_in_azure_shape(server: ServerProcess, kind: str) -> None:
    response = httpx.post(
        server.base_url + CHAT_PATH,
        params={"api-version": API_VERSION},
        headers=auth_headers(kind, "not-the-key"),
        json={"messages": HELLO, "max_tokens": 2},
        timeout=60,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"]
    assert "not-the-key" not in response.text


def test_model_in_the_body_is_ignored_for_the_path(http: httpx.Client) -> None:
    response = http.post(
        CHAT_PATH,
        params={"api-version": API_VERSION},
        json={"model": "whatever-else", "messages": HELLO, "max_tokens": 2},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", CHAT_PATH),
        ("POST", f"/openai/deployments/{MODEL}/completions"),
        ("POST", f"/openai/deployments/{EMBEDDING_MODEL}/embeddings"),
        ("GET", "/openai/deployments"),
        ("GET", f"/openai/deployments/{MODEL}"),
        ("GET", "/openai/models"),
        ("GET", f"/openai/models/{MODEL}"),
    ],
)
def test_missing_api_version(http: httpx.Client, method: str, path: str) -> None:
    body = {"messages": HELLO, "prompt": "x", "input": "x", "max_tokens": 2}
    response = http.request(method, path, json=body if method == "POST" else None)
    error = assert_azure_error(response, 400, "MissingApiVersionParameter")
    assert error["param"] == "api-version"
    assert "2024-06-01" in error["message"]
    assert "2024-10-21" in error["message"]


@pytest.mark.parametrize("version", ["2099-01-01", "latest", "2024-10-21x"])
def test_unsupported_api_version(http: httpx.Client, version: str) -> None:
    response = http.post(
        CHAT_PATH, params={"api-version": version}, json={"messages": HELLO, "max_tokens": 2}
    )
    error = assert_azure_error(response, 400, "InvalidApiVersionParameter")
    assert version in error["message"]
    assert "2024-06-01" in error["message"]
    assert "2024-10-21" in error["message"]
    response = http.get("/openai/models", params={"api-version": version})
    assert_azure_error(response, 400, "InvalidApiVersionParameter")


@pytest.mark.parametrize("version", ["2024-06-01", "2024-10-21", "2025-01-01-preview"])
def test_supported_api_versions(http: httpx.Client, version: str) -> None:
    response = http.get("/openai/models", params={"api-version": version})
    assert response.status_code == 200, response.text


def test_azure_errors_always_have_a_code(http: httpx.Client) -> None:
    params = {"api-version": API_VERSION}
    # A validation error: OpenAI's shape leaves code null, Azure's never does.
    response = http.post(CHAT_PATH, params=params, json={"messages": []})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"]
    # Unknown route under /openai
    response = http.get("/openai/nothing-here", params=params)
    assert response.status_code == 404
    assert response.json()["error"]["code"]
    # Not JSON
    response = http.post(
        CHAT_PATH, params=params, content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"]
    # The same validation error on /openai/v1 is Azure-shaped too.
    response = http.post("/openai/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"]


def test_unknown_deployment_http(http: httpx.Client) -> None:
    params = {"api-version": API_VERSION}
    response = http.post(
        "/openai/deployments/nope/chat/completions",
        params=params,
        json={"messages": HELLO, "max_tokens": 2},
    )
    assert_azure_error(response, 404, "DeploymentNotFound")
    assert_azure_error(
        http.get("/openai/deployments/nope", params=params), 404, "DeploymentNotFound"
    )
    assert_azure_error(http.get("/openai/models/nope", params=params), 404, "ModelNotFound")


# --- listings --------------------------------------------------------------------------------


def test_list_deployments(http: httpx.Client) -> None:
    response = http.get("/openai/deployments", params={"api-version": API_VERSION})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    by_id = {item["id"]: item for item in body["data"]}
    assert {MODEL, EMBEDDING_MODEL} <= set(by_id)
    for item in body["data"]:
        assert item["object"] == "deployment"
        assert isinstance(item["model"], str) and item["model"]
        assert item["status"] == "succeeded"
    assert by_id[MODEL]["model"] == MODEL
    one = http.get(f"/openai/deployments/{MODEL}", params={"api-version": API_VERSION})
    assert one.status_code == 200
    assert one.json() == by_id[MODEL]


def test_list_models(http: httpx.Client) -> None:
    response = http.get("/openai/models", params={"api-version": API_VERSION})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    by_id = {item["id"]: item for item in body["data"]}
    assert {MODEL, EMBEDDING_MODEL} <= set(by_id)
    for item in body["data"]:
        assert item["object"] == "model"
        assert isinstance(item["capabilities"], dict)
        assert item["lifecycle_status"]
    assert by_id[MODEL]["capabilities"]["chat_completion"] is True
    assert by_id[EMBEDDING_MODEL]["capabilities"]["embeddings"] is True
    assert by_id[EMBEDDING_MODEL]["capabilities"]["chat_completion"] is False
    one = http.get(f"/openai/models/{MODEL}", params={"api-version": API_VERSION})
    assert one.status_code == 200
    assert one.json() == by_id[MODEL]


# --- /openai/v1 ------------------------------------------------------------------------------


def test_openai_v1_chat(azure_v1: OpenAI) -> None:
    reply = azure_v1.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=6)
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens <= 6


def test_openai_v1_chat_streaming(azure_v1: OpenAI) -> None:
    stream = azure_v1.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=6, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


def test_openai_v1_models_and_embeddings(azure_v1: OpenAI) -> None:
    ids = [m.id for m in azure_v1.models.list()]
    assert MODEL in ids and EMBEDDING_MODEL in ids
    assert azure_v1.models.retrieve(MODEL).id == MODEL
    reply = azure_v1.embeddings.create(model=EMBEDDING_MODEL, input="x")
    assert len(reply.data[0].embedding) == 384


def test_openai_v1_needs_no_api_version_and_unknown_model_is_azure_shaped(
    azure_v1: OpenAI, http: httpx.Client
) -> None:
    response = http.post(
        "/openai/v1/chat/completions",
        json={"model": MODEL, "messages": HELLO, "max_tokens": 2},
    )
    assert response.status_code == 200, response.text
    with pytest.raises(openai.NotFoundError) as caught:
        azure_v1.chat.completions.create(model="no-such-thing", messages=HELLO, max_tokens=2)
    assert caught.value.code == "DeploymentNotFound"


# --- explicit deployments --------------------------------------------------------------------
# Deployments belong to projects and are seen only by their project's keys (the platform admin
# belongs to no project): each test gets a fresh project with a member key and a deployment.


@dataclass(frozen=True)
class Tenant:
    project_id: str
    key: str
    deployment: str  # chat, defaults max_tokens 5 and temperature 0, max_tokens_limit 10


@pytest.fixture
def tenant(http: httpx.Client) -> Iterator[Tenant]:
    suffix = uuid.uuid4().hex[:10]
    project = http.post("/admin/projects", json={"name": f"azure-tests-{suffix}"})
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    try:
        key = http.post(
            f"/admin/projects/{project_id}/keys", json={"name": "azure-tests", "role": "member"}
        )
        assert key.status_code == 201, key.text
        name = f"az-{suffix}"
        created = http.post(
            f"/admin/projects/{project_id}/deployments",
            json={
                "name": name,
                "model": MODEL,
                "defaults": {"temperature": 0.0, "max_tokens": 5},
                "max_tokens_limit": 10,
                "content_filter": ANNOTATE_ONLY_POLICY,  # filtering is tested elsewhere
            },
        )
        assert created.status_code == 201, created.text
        yield Tenant(project_id, key.json()["secret"], name)
    finally:
        http.delete(f"/admin/projects/{project_id}")


def azure_for(server: ServerProcess, key: str) -> AzureOpenAI:
    return AzureOpenAI(
        azure_endpoint=server.base_url,
        api_key=key,
        api_version=API_VERSION,
        max_retries=0,
        timeout=60,
    )


def openai_for(server: ServerProcess, key: str, base: str) -> OpenAI:
    return OpenAI(base_url=server.base_url + base, api_key=key, max_retries=0, timeout=60)


def tenant_http(server: ServerProcess, tenant: Tenant) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"api-key": tenant.key}, timeout=60)


LONG_STORY = [{"role": "user", "content": "Write a long story."}]


def test_deployment_by_path_uses_its_default_max_tokens(
    server: ServerProcess, tenant: Tenant
) -> None:
    azure = azure_for(server, tenant.key)
    reply = azure.chat.completions.create(model=tenant.deployment, messages=LONG_STORY)
    assert reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 5
    assert reply.choices[0].finish_reason == "length"


def streamed_completion_pieces(
    server: ServerProcess, key: str, deployment: str, stop_after: int
) -> int:
    """Text pieces of a streamed legacy completion on the Azure route (each is at least one
    token), reading at most `stop_after` + 1 of them: a runaway generation fails fast instead
    of timing out."""
    pieces = 0
    with httpx.stream(
        "POST",
        f"{server.base_url}/openai/deployments/{deployment}/completions",
        params={"api-version": API_VERSION},
        headers={"api-key": key},
        json={"prompt": "Once upon a time", "stream": True, "temperature": 0},
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            assert "error" not in chunk, chunk
            pieces += sum(1 for choice in chunk["choices"] if choice["text"])
            if pieces > stop_after:
                break
    return pieces


def test_deployment_default_max_tokens_on_completions(
    server: ServerProcess, tenant: Tenant
) -> None:
    pieces = streamed_completion_pieces(server, tenant.key, tenant.deployment, stop_after=5)
    assert 1 <= pieces <= 5, "the deployment's default max_tokens (5) was not applied"


def test_completions_default_max_tokens_is_16(server: ServerProcess) -> None:
    """Without max_tokens (and no deployment default) legacy completions stop at 16 tokens,
    as OpenAI's do (see CompletionRequest.max_tokens)."""
    pieces = streamed_completion_pieces(server, server.api_key, MODEL, stop_after=16)
    assert 1 <= pieces <= 16, "more than 16 tokens without max_tokens"


def test_deployment_by_path_streaming_default_max_tokens(
    server: ServerProcess, tenant: Tenant
) -> None:
    stream = azure_for(server, tenant.key).chat.completions.create(
        model=tenant.deployment,
        messages=LONG_STORY,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage is not None]
    assert len(usage) == 1 and 1 <= usage[0].completion_tokens <= 5


def test_deployment_request_within_the_limit(server: ServerProcess, tenant: Tenant) -> None:
    reply = azure_for(server, tenant.key).chat.completions.create(
        model=tenant.deployment, messages=LONG_STORY, max_tokens=8
    )
    assert reply.usage is not None and reply.usage.completion_tokens <= 8


def test_deployment_over_its_limit_is_400(server: ServerProcess, tenant: Tenant) -> None:
    azure = azure_for(server, tenant.key)
    with pytest.raises(openai.BadRequestError) as caught:
        azure.chat.completions.create(model=tenant.deployment, messages=HELLO, max_tokens=50)
    assert caught.value.status_code == 400
    assert caught.value.code  # Azure-shaped: never null
    assert "10" in str(caught.value.message)
    with pytest.raises(openai.BadRequestError):
        azure.chat.completions.create(
            model=tenant.deployment, messages=HELLO, max_completion_tokens=50
        )
    with pytest.raises(openai.BadRequestError):
        azure.completions.create(model=tenant.deployment, prompt="x", max_tokens=50)


@pytest.mark.parametrize("base", ["/v1", "/openai/v1"])
def test_deployment_as_model(server: ServerProcess, tenant: Tenant, base: str) -> None:
    client = openai_for(server, tenant.key, base)
    reply = client.chat.completions.create(model=tenant.deployment, messages=HELLO)
    assert reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 5
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=tenant.deployment, messages=HELLO, max_tokens=50)


def test_deployment_is_listed_and_gone_after_delete(
    server: ServerProcess, http: httpx.Client, tenant: Tenant
) -> None:
    params = {"api-version": API_VERSION}
    with tenant_http(server, tenant) as mine:
        listed = mine.get("/openai/deployments", params=params)
        assert listed.status_code == 200, listed.text
        by_id = {item["id"]: item for item in listed.json()["data"]}
        assert by_id[tenant.deployment]["model"] == MODEL
        assert {MODEL, EMBEDDING_MODEL} <= set(by_id)  # served models stay implicit ones
        one = mine.get(f"/openai/deployments/{tenant.deployment}", params=params)
        assert one.status_code == 200, one.text
        assert one.json()["model"] == MODEL
        gone = http.delete(f"/admin/projects/{tenant.project_id}/deployments/{tenant.deployment}")
        assert gone.status_code == 200, gone.text
        assert_azure_error(
            mine.get(f"/openai/deployments/{tenant.deployment}", params=params),
            404,
            "DeploymentNotFound",
        )
    with pytest.raises(openai.NotFoundError) as caught:
        azure_for(server, tenant.key).chat.completions.create(
            model=tenant.deployment, messages=HELLO, max_tokens=2
        )
    assert caught.value.code == "DeploymentNotFound"


def test_other_callers_do_not_see_a_projects_deployment(
    azure: AzureOpenAI, http: httpx.Client, tenant: Tenant
) -> None:
    """The platform admin key belongs to no project: a project's deployment does not exist
    for it."""
    with pytest.raises(openai.NotFoundError) as caught:
        azure.chat.completions.create(model=tenant.deployment, messages=HELLO, max_tokens=2)
    assert caught.value.code == "DeploymentNotFound"
    listed = http.get("/openai/deployments", params={"api-version": API_VERSION}).json()
    assert tenant.deployment not in {item["id"] for item in listed["data"]}


def test_embedding_deployment_by_path(
    server: ServerProcess, http: httpx.Client, tenant: Tenant
) -> None:
    name = f"{tenant.deployment}-emb"
    created = http.post(
        f"/admin/projects/{tenant.project_id}/deployments",
        json={"name": name, "model": EMBEDDING_MODEL},
    )
    assert created.status_code == 201, created.text
    reply = azure_for(server, tenant.key).embeddings.create(model=name, input=["a", "b"])
    assert [len(d.embedding) for d in reply.data] == [384, 384]
