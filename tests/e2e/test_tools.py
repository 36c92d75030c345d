"""Tool calling on the real server through the OpenAI SDK.

The model is tiny, so only what grammars guarantee is asserted: a forced call (tool_choice
"required" or a named function) is a call to an offered function whose arguments validate
against its parameters schema. What the model chooses under "auto" is not asserted.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field, create_model

from tests.conftest import MODEL, ServerProcess

pytestmark = pytest.mark.slow

WEATHER_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city name."},
        "unit": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": WEATHER_PARAMS,
    },
}
TIME_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "enum": ["UTC", "CET", "PST"]}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a time zone.",
        "parameters": TIME_PARAMS,
    },
}
SCHEMAS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
ASK_WEATHER = [{"role": "user", "content": "What is the weather like in Paris?"}]
# Forced calls are short, but `city` is an unbounded string: leave room and sample greedily.
CALL_TOKENS = 100


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=120)


def assert_valid_call(call: Any, names: set[str]) -> dict[str, Any]:
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name in names
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    return dict(arguments)


def test_required_call(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=CALL_TOKENS,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    arguments = assert_valid_call(calls[0], {"get_weather"})
    assert set(arguments) == {"city", "unit"}


def test_named_call_picks_the_named_function(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,  # asks for the weather, but the time is forced
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=CALL_TOKENS,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_time"
    assert_valid_call(call, {"get_time"})


def test_required_with_two_tools_picks_one_of_them(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What time is it in London?"}],
        tools=[WEATHER, TIME],
        tool_choice="required",
        max_tokens=CALL_TOKENS,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    assert_valid_call(choice.message.tool_calls[0], {"get_weather", "get_time"})


def test_streamed_forced_call(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=CALL_TOKENS,
        temperature=0,
        stream=True,
    )
    deltas = []
    finish_reasons = []
    content = ""
    for chunk in stream:
        for choice in chunk.choices:
            assert choice.index == 0
            content += choice.delta.content or ""
            deltas.extend(choice.delta.tool_calls or [])
            if choice.finish_reason is not None:
                finish_reasons.append(choice.finish_reason)
    assert finish_reasons == ["tool_calls"]
    assert content == ""
    assert deltas, "no tool_calls deltas"
    first = deltas[0]
    assert first.index == 0
    assert first.id is not None and first.id.startswith("call_")
    assert first.type == "function"
    assert first.function is not None
    assert first.function.name == "get_weather"
    assert first.function.arguments == ""
    for delta in deltas[1:]:
        assert delta.index == 0
        assert delta.id is None
        assert delta.function is not None and delta.function.name is None
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    jsonschema.validate(json.loads(arguments), WEATHER_PARAMS)


def test_forced_call_with_n_2(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER, TIME],
        tool_choice="required",
        max_tokens=CALL_TOKENS,
        temperature=0.7,
        seed=7,
        n=2,
    )
    assert [c.index for c in reply.choices] == [0, 1]
    for choice in reply.choices:
        assert choice.finish_reason == "tool_calls", choice
        assert choice.message.content is None
        assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
        assert_valid_call(choice.message.tool_calls[0], {"get_weather", "get_time"})
    ids = [c.message.tool_calls[0].id for c in reply.choices if c.message.tool_calls]
    assert len(set(ids)) == 2


def test_streamed_forced_calls_with_n_2(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER, TIME],
        tool_choice="required",
        max_tokens=CALL_TOKENS,
        temperature=0.7,
        seed=11,
        n=2,
        stream=True,
    )
    deltas: dict[int, list[Any]] = {0: [], 1: []}
    finish: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            deltas[choice.index].extend(choice.delta.tool_calls or [])
            if choice.finish_reason is not None:
                finish[choice.index] = choice.finish_reason
    assert finish == {0: "tool_calls", 1: "tool_calls"}
    for index in (0, 1):
        first, *rest = deltas[index]
        assert first.id and first.id.startswith("call_")
        assert first.function is not None and first.function.name in SCHEMAS
        assert all(d.id is None for d in rest)
        arguments = "".join(d.function.arguments or "" for d in deltas[index] if d.function)
        jsonschema.validate(json.loads(arguments), SCHEMAS[first.function.name])
    assert deltas[0][0].id != deltas[1][0].id


def test_forced_call_of_a_function_without_parameters(client: OpenAI) -> None:
    ping = {"type": "function", "function": {"name": "ping", "description": "Ping."}}
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Ping the server."}],
        tools=[ping],
        tool_choice="required",
        max_tokens=40,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "ping"
    assert json.loads(call.function.arguments) == {}


class Place(BaseModel):
    city: str = Field(max_length=20)


class Trip(BaseModel):
    origin: Place
    destination: Place


def test_forced_call_with_refs_in_parameters(client: OpenAI) -> None:
    """The SDK's own pydantic helper writes nested models as $defs + $ref. The same schema works
    as response_format, so it must work as a forced tool's parameters too."""
    trip = openai.pydantic_function_tool(Trip, name="plan_trip")
    parameters = trip["function"]["parameters"]
    assert "$defs" in parameters
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Plan a trip from Oslo to Rome."}],
        tools=[trip],
        tool_choice="required",
        max_tokens=CALL_TOKENS,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "plan_trip"
    jsonschema.validate(json.loads(call.function.arguments), parameters)


# Another nested model that pydantic also names "Place" in $defs: the names collide on purpose.
Berth = create_model("Place", harbour=(str, Field(max_length=20)), number=(int, ...))
Shipment = create_model("Shipment", start=(Berth, ...), end=(Berth, ...))


def test_forced_call_with_refs_in_two_tools(client: OpenAI) -> None:
    """Two tools whose parameters both define '#/$defs/Place', differently: each call must
    validate against its own tool's definition."""
    trip = openai.pydantic_function_tool(Trip, name="plan_trip")
    shipment = openai.pydantic_function_tool(Shipment, name="ship")
    assert set(trip["function"]["parameters"]["$defs"]) == {"Place"}
    assert set(shipment["function"]["parameters"]["$defs"]) == {"Place"}
    parameters = {
        "plan_trip": trip["function"]["parameters"],
        "ship": shipment["function"]["parameters"],
    }
    for tool_choice in ("required", {"type": "function", "function": {"name": "ship"}}):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Ship a box from Oslo to Rome."}],
            tools=[trip, shipment],
            tool_choice=tool_choice,  # type: ignore[arg-type]
            max_tokens=CALL_TOKENS,
            temperature=0,
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls is not None
        call = choice.message.tool_calls[0]
        if tool_choice != "required":
            assert call.function.name == "ship"
        jsonschema.validate(json.loads(call.function.arguments), parameters[call.function.name])


def test_forced_call_cut_short_is_still_a_call(client: OpenAI) -> None:
    """With too few tokens a forced call ends with finish_reason 'length'. The stream reports
    it as a tool call with partial arguments (as OpenAI does); the whole reply must say the
    same, not hand the grammar's internal {"name": ..., "arguments": ...} text out as content."""
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": ASK_WEATHER,
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_tokens": 12,
        "temperature": 0,
    }
    streamed = [
        delta
        for chunk in client.chat.completions.create(**kwargs, stream=True)
        for choice in chunk.choices
        for delta in choice.delta.tool_calls or []
    ]
    assert streamed and streamed[0].function is not None
    assert streamed[0].function.name == "get_weather"
    reply = client.chat.completions.create(**kwargs)
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content is None, choice.message.content
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str)
    assert '"name"' not in call.function.arguments  # the arguments only, as in the stream


def test_multi_turn_with_a_tool_result(client: OpenAI) -> None:
    messages: list[Any] = [
        *ASK_WEATHER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "unit": "c"}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_abc123",
            "content": '{"temperature": 21, "sky": "clear"}',
        },
    ]
    for tool_choice in ("auto", "none"):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=messages,
            tools=[WEATHER],
            tool_choice=tool_choice,  # type: ignore[arg-type]
            max_tokens=30,
            temperature=0,
        )
        message = reply.choices[0].message
        assert message.role == "assistant"
        assert message.content or message.tool_calls
        if tool_choice == "none":
            assert message.tool_calls is None
            assert isinstance(message.content, str) and message.content


def test_tool_choice_none_returns_text(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="none",
        max_tokens=20,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.message.tool_calls is None
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in {"stop", "length"}


def test_auto_returns_text_or_valid_calls(client: OpenAI) -> None:
    for tool_choice in ("auto", None):
        kwargs: dict[str, Any] = {} if tool_choice is None else {"tool_choice": tool_choice}
        reply = client.chat.completions.create(
            model=MODEL,
            messages=ASK_WEATHER,
            tools=[WEATHER, TIME],
            max_tokens=60,
            temperature=0,
            **kwargs,
        )
        choice = reply.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls"
            for call in choice.message.tool_calls:
                assert call.id.startswith("call_")
                assert call.function.name in SCHEMAS
                assert isinstance(call.function.arguments, str)
        else:
            assert isinstance(choice.message.content, str)
            assert choice.finish_reason in {"stop", "length"}


def test_auto_streaming_returns_text_or_calls(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="auto",
        max_tokens=60,
        temperature=0,
        stream=True,
    )
    content, calls, finish = "", [], None
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            calls.extend(choice.delta.tool_calls or [])
            finish = choice.finish_reason or finish
    if calls:
        assert finish == "tool_calls"
        assert all(c.function is not None and c.function.name == "get_weather" for c in calls)
    else:
        assert finish in {"stop", "length"}
        assert content


def test_unknown_named_function_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=ASK_WEATHER,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "launch_rockets"}},
            max_tokens=5,
        )
    assert caught.value.status_code == 400
    assert "launch_rockets" in caught.value.message
    assert isinstance(caught.value.body, dict) and caught.value.body.get("param") == "tool_choice"


@pytest.mark.parametrize(
    "tool_choice",
    ["required", {"type": "function", "function": {"name": "get_weather"}}],
    ids=["required", "named"],
)
def test_forcing_a_call_without_tools_is_400(client: OpenAI, tool_choice: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, tool_choice=tool_choice, max_tokens=5
        )
    assert caught.value.status_code == 400


def test_duplicate_tool_names_are_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, tools=[WEATHER, WEATHER], max_tokens=5
        )


@pytest.mark.parametrize(
    ("keyword", "schema"),
    [
        ("minimum", {"type": "integer", "minimum": 1}),
        ("not", {"not": {"type": "null"}}),
        ("format", {"type": "string", "format": "email"}),
    ],
)
def test_unsupported_keyword_in_forced_tool_is_400(
    client: OpenAI, keyword: str, schema: dict[str, Any]
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {"x": schema},
                "required": ["x"],
            },
        },
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=ASK_WEATHER,
            tools=[tool],
            tool_choice="required",
            max_tokens=5,
        )
    assert caught.value.status_code == 400
    assert caught.value.code == "unsupported_schema"
    assert keyword in caught.value.message
