"""Structured outputs on the real server: response_format json_object and json_schema are
enforced by a grammar per sequence, also in a continuous batch shared with free requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import MODEL, ServerProcess

pytestmark = pytest.mark.slow

# Nested, with every kind of value; strings are bounded so that replies stay short.
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "active": {"type": "boolean"},
        "color": {"type": "string", "enum": ["red", "green", "blue"]},
        "pets": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "maxLength": 12},
                    "legs": {"type": "integer"},
                },
                "required": ["kind", "legs"],
                "additionalProperties": False,
            },
        },
        "nickname": {"anyOf": [{"type": "string", "maxLength": 15}, {"type": "null"}]},
    },
    "required": ["name", "age", "active", "color", "pets", "nickname"],
    "additionalProperties": False,
}
SMALL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 20},
        "confidence": {"type": "string", "enum": ["low", "high"]},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}


def schema_format(schema: dict[str, Any], name: str = "reply") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=120)


@pytest.fixture
async def aclient(server: ServerProcess) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=180)
    yield client
    await client.close()


def parse_valid(content: str | None, schema: dict[str, Any]) -> Any:
    assert isinstance(content, str), content
    value = json.loads(content)
    jsonschema.validate(value, schema)
    return value


@pytest.mark.parametrize(
    "prompt",
    [
        "Describe a person named Alice who has pets.",
        "Invent a farmer and the animals on the farm.",
        "Tell me about your favourite colour.",
    ],
)
def test_json_schema_nested(client: OpenAI, prompt: str) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        response_format=schema_format(PERSON, "person"),  # type: ignore[arg-type]
        max_tokens=300,
        temperature=0.8,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    value = parse_valid(choice.message.content, PERSON)
    assert 1 <= len(value["pets"]) <= 3
    assert choice.message.tool_calls is None


def test_json_schema_with_n_2(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Is the sky blue?"}],
        response_format=schema_format(SMALL),  # type: ignore[arg-type]
        max_tokens=100,
        temperature=1.0,
        n=2,
    )
    assert len(reply.choices) == 2
    for choice in reply.choices:
        assert choice.finish_reason == "stop", choice.message.content
        parse_valid(choice.message.content, SMALL)


def test_json_object(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": 'Reply with a JSON object with one key "name" whose value is "Bob".',
            }
        ],
        response_format={"type": "json_object"},
        max_tokens=200,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(choice.message.content, str)
    assert isinstance(json.loads(choice.message.content), dict)


def test_json_object_prefix_is_an_object_even_when_cut_short(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long poem."}],
        response_format={"type": "json_object"},
        max_tokens=5,
        temperature=0.8,
    )
    content = reply.choices[0].message.content
    assert isinstance(content, str)
    assert content.lstrip().startswith("{")


def test_text_format_is_unconstrained(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        response_format={"type": "text"},
        max_tokens=10,
        temperature=0,
    )
    assert reply.choices[0].message.content


def test_streamed_json_schema(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a person named Bob."}],
        response_format=schema_format(PERSON, "person"),  # type: ignore[arg-type]
        max_tokens=300,
        temperature=0.8,
        stream=True,
    )
    content, finish = "", []
    for chunk in stream:
        for choice in chunk.choices:
            assert not choice.delta.tool_calls
            content += choice.delta.content or ""
            if choice.finish_reason is not None:
                finish.append(choice.finish_reason)
    assert finish == ["stop"], content
    parse_valid(content, PERSON)


async def test_constrained_and_free_requests_share_the_batch(aclient: AsyncOpenAI) -> None:
    prompts = ["Describe a person named Carol.", "Invent a sailor.", "Describe a young child."]
    constrained = [
        aclient.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            response_format=schema_format(PERSON, "person"),  # type: ignore[arg-type]
            max_tokens=300,
            temperature=0.8,
        )
        for prompt in prompts
    ]
    free = [
        aclient.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=40,
            temperature=0.8,
        )
        for prompt in ["Write a poem about {braces}.", "Tell me a story.", "List three fruits."]
    ]
    replies = await asyncio.gather(*constrained, *free)
    for reply in replies[:3]:
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        parse_valid(choice.message.content, PERSON)
    for reply in replies[3:]:
        choice = reply.choices[0]
        assert isinstance(choice.message.content, str) and choice.message.content
        assert choice.finish_reason in {"stop", "length"}


@pytest.mark.parametrize(
    ("keyword", "schema"),
    [
        ("minimum", {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}),
        ("not", {"type": "object", "properties": {"n": {"not": {"type": "string"}}}}),
        ("email", {"type": "object", "properties": {"e": {"type": "string", "format": "email"}}}),
        ("patternProperties", {"type": "object", "patternProperties": {"^x": {"type": "string"}}}),
    ],
)
def test_unsupported_schema_is_400(client: OpenAI, keyword: str, schema: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            response_format=schema_format(schema),  # type: ignore[arg-type]
            max_tokens=5,
        )
    assert caught.value.status_code == 400
    assert caught.value.code == "unsupported_schema"
    assert keyword in caught.value.message


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "x"}},
        {"type": "json_schema"},
    ],
    ids=["no-schema", "no-json_schema"],
)
def test_json_schema_without_a_schema_is_400(
    client: OpenAI, response_format: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            response_format=response_format,  # type: ignore[arg-type]
            max_tokens=5,
        )
    assert caught.value.status_code == 400


def test_unknown_response_format_type_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            response_format={"type": "yaml"},  # type: ignore[arg-type,typeddict-item]
            max_tokens=5,
        )


CODE: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}\\d{3}$"}},
    "required": ["code"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_pattern_schema_is_enforced_or_refused(server: ServerProcess, stream: bool) -> None:
    """A schema either comes back enforced or is refused up front with a 400; it never fails
    later as a server error (nor as an error event after a 200)."""
    response = httpx.post(
        server.v1 + "/chat/completions",
        headers=server.headers,
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "Give me a product code."}],
            "response_format": schema_format(CODE),
            "max_tokens": 30,
            "temperature": 0,
            "stream": stream,
        },
        timeout=120,
    )
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "unsupported_schema", response.text
        return
    assert response.status_code == 200, response.text
    if not stream:
        parse_valid(response.json()["choices"][0]["message"]["content"], CODE)
        return
    content = ""
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line.removeprefix("data: "))
            assert "error" not in chunk, chunk
            for choice in chunk["choices"]:
                content += choice["delta"].get("content") or ""
    parse_valid(content, CODE)
