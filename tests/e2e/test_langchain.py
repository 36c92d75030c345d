"""LangChain's OpenAI integrations against the real server: ChatOpenAI on /v1 and
AzureChatOpenAI on the Azure routes. Forced tool calls and structured outputs are grammar
enforced, so their shape is asserted; free text only exists."""

from __future__ import annotations

from typing import Any, Literal

import jsonschema
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import AzureChatOpenAI, ChatOpenAI
from pydantic import BaseModel, Field

from tests.conftest import MODEL, ServerProcess

pytestmark = pytest.mark.slow

API_VERSION = "2024-10-21"
# Room for a whole forced call or a small structured object (max_tokens=20 cuts them short).
LONG_TOKENS = 100


def get_weather(city: str, unit: Literal["c", "f"]) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city.
        unit: The temperature unit, c or f.
    """
    return f"sunny in {city}"


WEATHER_PARAMS = convert_to_openai_tool(get_weather)["function"]["parameters"]


class Person(BaseModel):
    """A person."""

    name: str = Field(max_length=20)
    age: int


def chat_openai(server: ServerProcess, max_tokens: int) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.v1,
        api_key=server.api_key,  # type: ignore[arg-type]
        model=MODEL,
        temperature=0,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        max_retries=0,
        timeout=120,
    )


def azure_chat_openai(server: ServerProcess, max_tokens: int) -> AzureChatOpenAI:
    return AzureChatOpenAI(
        azure_endpoint=server.base_url,
        api_key=server.api_key,  # type: ignore[arg-type]
        api_version=API_VERSION,
        azure_deployment=MODEL,
        temperature=0,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        max_retries=0,
        timeout=120,
    )


@pytest.fixture(scope="module", params=["openai", "azure"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def llm(server: ServerProcess, flavour: str) -> ChatOpenAI:
    make = chat_openai if flavour == "openai" else azure_chat_openai
    return make(server, 20)


@pytest.fixture(scope="module")
def llm_long(server: ServerProcess, flavour: str) -> ChatOpenAI:
    make = chat_openai if flavour == "openai" else azure_chat_openai
    return make(server, LONG_TOKENS)


def test_invoke(llm: ChatOpenAI) -> None:
    reply = llm.invoke("Say hello.")
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str) and reply.content
    assert reply.response_metadata["finish_reason"] in {"stop", "length"}
    assert reply.usage_metadata is not None
    assert 1 <= reply.usage_metadata["output_tokens"] <= 20


def test_stream(llm: ChatOpenAI) -> None:
    chunks = list(llm.stream("Say hello."))
    assert len(chunks) > 1
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    text = "".join(str(c.content) for c in chunks)
    assert text


def check_weather_call(reply: Any) -> None:
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls, (reply.content, reply.response_metadata)
    call = reply.tool_calls[0]
    assert call["name"] == "get_weather"
    assert call["id"] and call["id"].startswith("call_")
    jsonschema.validate(call["args"], WEATHER_PARAMS)
    assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_bind_tools_named(llm_long: ChatOpenAI) -> None:
    bound = llm_long.bind_tools([get_weather], tool_choice="get_weather")
    check_weather_call(bound.invoke("What is the weather in Paris?"))


@pytest.mark.parametrize("tool_choice", ["any", "required"])
def test_bind_tools_any_or_required(llm_long: ChatOpenAI, tool_choice: str) -> None:
    bound = llm_long.bind_tools([get_weather], tool_choice=tool_choice)
    check_weather_call(bound.invoke("What is the weather in Rome?"))


def test_bind_tools_forced_streaming(llm_long: ChatOpenAI) -> None:
    bound = llm_long.bind_tools([get_weather], tool_choice="get_weather")
    merged: Any = None
    for chunk in bound.stream("What is the weather in Oslo?"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    assert merged.tool_calls, merged
    call = merged.tool_calls[0]
    assert call["name"] == "get_weather"
    jsonschema.validate(call["args"], WEATHER_PARAMS)


def test_structured_output_json_schema(llm_long: ChatOpenAI) -> None:
    structured = llm_long.with_structured_output(Person, method="json_schema")
    person = structured.invoke("Alice is 30 years old.")
    assert isinstance(person, Person)
    assert len(person.name) <= 20


def test_structured_output_function_calling(llm_long: ChatOpenAI) -> None:
    structured = llm_long.with_structured_output(Person, method="function_calling")
    person = structured.invoke("Bob is 41 years old.")
    assert isinstance(person, Person)
    assert len(person.name) <= 20


def test_structured_output_json_mode(llm_long: ChatOpenAI) -> None:
    structured = llm_long.with_structured_output(method="json_mode", include_raw=True)
    result = structured.invoke('Reply with the JSON object {"ok": true} and nothing else.')
    raw = result["raw"]
    if raw.response_metadata["finish_reason"] == "stop":
        assert isinstance(result["parsed"], dict)
    assert str(raw.content).lstrip().startswith("{")
