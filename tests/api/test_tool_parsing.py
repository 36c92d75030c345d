"""Tool-call parsing: whole replies (parse_tool_calls, parse_forced_call) and streamed ones
(ForcedCallStream, AutoToolStream)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ceruleum.api.chat.protocol import ToolDefinition
from ceruleum.api.chat.tools import (
    AutoToolStream,
    ForcedCallStream,
    parse_forced_call,
    parse_tool_calls,
)


def tool(name: str) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {
            "type": "function",
            "function": {
                "name": name,
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        }
    )


TOOLS = {"get_weather": tool("get_weather"), "f": tool("f")}


def call_block(name: str, arguments: Any) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def random_pieces(text: str, rng: random.Random, longest: int = 4) -> list[str]:
    pieces, i = [], 0
    while i < len(text):
        size = rng.randint(1, longest)
        pieces.append(text[i : i + size])
        i += size
    return pieces


def assert_call_shape(call: dict[str, Any], name: str) -> None:
    assert set(call) == {"id", "type", "function"}
    assert call["type"] == "function"
    assert call["id"].startswith("call_") and len(call["id"]) > len("call_") + 8
    assert call["function"]["name"] == name
    assert isinstance(call["function"]["arguments"], str)


# --- parse_tool_calls ------------------------------------------------------------------------


def test_plain_text_is_content() -> None:
    assert parse_tool_calls("Hello there.", TOOLS, True) == ("Hello there.", [])


def test_one_call() -> None:
    content, calls = parse_tool_calls(call_block("get_weather", {"a": 1}), TOOLS, True)
    assert content is None
    assert len(calls) == 1
    assert_call_shape(calls[0], "get_weather")
    assert json.loads(calls[0]["function"]["arguments"]) == {"a": 1}


def test_text_before_a_call_is_content() -> None:
    content, calls = parse_tool_calls("Let me check.\n" + call_block("f", {}), TOOLS, True)
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["f"]
    assert json.loads(calls[0]["function"]["arguments"]) == {}


def test_parallel_calls_and_their_ids() -> None:
    text = call_block("get_weather", {"a": 1}) + "\n" + call_block("f", {"a": 2})
    _, calls = parse_tool_calls(text, TOOLS, True)
    assert [c["function"]["name"] for c in calls] == ["get_weather", "f"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"a": 1}, {"a": 2}]
    assert len({c["id"] for c in calls}) == 2


def test_parallel_false_keeps_the_first_call() -> None:
    text = call_block("get_weather", {"a": 1}) + call_block("f", {"a": 2})
    _, calls = parse_tool_calls(text, TOOLS, False)
    assert [c["function"]["name"] for c in calls] == ["get_weather"]


def test_unclosed_call_at_the_end_is_parsed() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "f", "arguments": {"a": 3}}', TOOLS, True)
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"a": 3}]


def test_arguments_given_as_a_string_are_kept() -> None:
    text = '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>'
    _, calls = parse_tool_calls(text, TOOLS, True)
    assert calls[0]["function"]["arguments"] == '{"a": 1}'


def test_missing_arguments_become_an_empty_object() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "f"}</tool_call>', TOOLS, True)
    assert json.loads(calls[0]["function"]["arguments"]) == {}


def test_non_ascii_arguments_survive() -> None:
    _, calls = parse_tool_calls(call_block("f", {"city": "Zürich 東京"}), TOOLS, True)
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Zürich 東京"}


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>{not json}</tool_call>",
        '<tool_call>{"name": "f", "arguments": {"a": 1}</tool_call>',  # unbalanced
        "<tool_call>[1, 2]</tool_call>",
        '<tool_call>{"arguments": {}}</tool_call>',  # no name
        '<tool_call>{"name": 3, "arguments": {}}</tool_call>',
        '<tool_call>{"name": "unknown_tool", "arguments": {}}</tool_call>',
        "<tool_call></tool_call>",
        "<tool_call>",
        call_block("f", {"a": 1}) + "<tool_call>{broken</tool_call>",  # one bad block spoils all
    ],
)
def test_malformed_calls_stay_text(text: str) -> None:
    assert parse_tool_calls(text, TOOLS, True) == (text, [])


# --- parse_forced_call -----------------------------------------------------------------------


def test_forced_call() -> None:
    call = parse_forced_call('{"name": "get_weather", "arguments": {"city": "Oslo", "n": 2}}')
    assert call is not None
    assert_call_shape(call, "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo", "n": 2}


def test_forced_call_with_surrounding_whitespace() -> None:
    call = parse_forced_call('  {"name" : "f" , "arguments" : {} }\n ')
    assert call is not None
    assert call["function"]["name"] == "f"
    assert json.loads(call["function"]["arguments"]) == {}


def test_forced_call_ids_are_unique() -> None:
    ids = {parse_forced_call('{"name": "f", "arguments": {}}')["id"] for _ in range(50)}  # type: ignore[index]
    assert len(ids) == 50


def test_forced_call_cut_short_keeps_name_and_partial_arguments() -> None:
    """max_tokens ran out mid-call: OpenAI still returns the call, arguments as far as written."""
    call = parse_forced_call('{"name": "f", "arguments": {"a": 1')
    assert call is not None
    assert call["function"] == {"name": "f", "arguments": '{"a": 1'}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"arguments": {}}',
        '{"name": null, "arguments": {}}',
    ],
)
def test_forced_call_unparseable(text: str) -> None:
    assert parse_forced_call(text) is None


# --- ForcedCallStream ------------------------------------------------------------------------

FORCED_TEXT = '{"name": "f", "arguments": {"a": 1, "b": "x}"}}'
FORCED_ARGS = '{"a": 1, "b": "x}"}'


def run_forced(pieces: list[str]) -> list[dict[str, Any]]:
    stream = ForcedCallStream()
    deltas: list[dict[str, Any]] = []
    for piece in pieces:
        deltas.extend(stream.feed(piece))
    deltas.extend(stream.finish())
    return deltas


def check_forced_deltas(deltas: list[dict[str, Any]], name: str, arguments: str) -> None:
    assert deltas, "no deltas"
    first = deltas[0]
    assert first["index"] == 0
    assert first["id"].startswith("call_")
    assert first["type"] == "function"
    assert first["function"] == {"name": name, "arguments": ""}
    for delta in deltas[1:]:
        assert set(delta) == {"index", "function"}, delta
        assert delta["index"] == 0
        assert set(delta["function"]) == {"arguments"}
        assert delta["function"]["arguments"], "empty argument fragment"
    joined = "".join(d["function"]["arguments"] for d in deltas)
    assert joined.strip() == arguments
    assert json.loads(joined) == json.loads(arguments)


@pytest.mark.parametrize("seed", range(200))
def test_forced_stream_random_fragments(seed: int) -> None:
    rng = random.Random(seed)
    pieces = random_pieces(FORCED_TEXT, rng, longest=rng.choice([1, 2, 3, 5, 8]))
    check_forced_deltas(run_forced(pieces), "f", FORCED_ARGS)


def test_forced_stream_whole_text_at_once() -> None:
    check_forced_deltas(run_forced([FORCED_TEXT]), "f", FORCED_ARGS)


def test_forced_stream_one_character_at_a_time() -> None:
    check_forced_deltas(run_forced(list(FORCED_TEXT)), "f", FORCED_ARGS)


def test_forced_stream_head_comes_first_and_once() -> None:
    stream = ForcedCallStream()
    assert stream.feed('{"name": "get_') == []
    assert stream.feed("weather") == []
    deltas = stream.feed('", "arguments": ')
    assert len(deltas) == 1
    assert deltas[0]["function"] == {"name": "get_weather", "arguments": ""}
    rest = stream.feed('{"city": "Oslo"}') + stream.feed("}") + stream.finish()
    assert all("id" not in d for d in rest)
    assert "".join(d["function"]["arguments"] for d in rest).strip() == '{"city": "Oslo"}'


@pytest.mark.parametrize("seed", range(50))
def test_forced_stream_grammar_spacing_and_nesting(seed: int) -> None:
    """The grammar allows spaces and newlines around tokens; strings may hold braces and
    escaped quotes; arguments may nest."""
    arguments = {
        "city": 'New "York" {}',
        "nested": {"list": [1, {"deep": "}}"}], "empty": {}},
        "unit": "c",
    }
    args_text = json.dumps(arguments, indent=1)
    text = '{ "name" : "get_weather" ,\n "arguments" : ' + args_text + " }\n"
    rng = random.Random(seed)
    deltas = run_forced(random_pieces(text, rng, longest=6))
    check_forced_deltas(deltas, "get_weather", args_text)


def test_forced_stream_escaped_name() -> None:
    deltas = run_forced(random_pieces('{"name": "a\\"b", "arguments": {}}', random.Random(1), 3))
    assert deltas[0]["function"]["name"] == 'a"b'


def test_forced_stream_nothing_before_the_head() -> None:
    stream = ForcedCallStream()
    assert stream.feed("{") == []
    assert stream.finish() == []


# --- AutoToolStream --------------------------------------------------------------------------


def run_auto(pieces: list[str], tools: dict[str, ToolDefinition] = TOOLS, parallel: bool = True):  # type: ignore[no-untyped-def]
    stream = AutoToolStream(tools, parallel)
    streamed = [stream.feed(piece) for piece in pieces]
    content, calls = stream.finish()
    return streamed, content, calls


@pytest.mark.parametrize("seed", range(30))
def test_auto_stream_holds_and_parses_a_call(seed: int) -> None:
    text = "\n" + call_block("get_weather", {"a": 7, "s": "x</tool"}) + "\n"
    streamed, content, calls = run_auto(random_pieces(text, random.Random(seed)))
    assert all(s == "" for s in streamed)
    assert content == ""
    assert len(calls) == 1
    assert_call_shape(calls[0], "get_weather")
    assert json.loads(calls[0]["function"]["arguments"]) == {"a": 7, "s": "x</tool"}


def test_auto_stream_parallel_calls() -> None:
    text = call_block("get_weather", {"a": 1}) + call_block("f", {"a": 2})
    _, _, calls = run_auto(random_pieces(text, random.Random(3)))
    assert [c["function"]["name"] for c in calls] == ["get_weather", "f"]
    _, _, calls = run_auto(random_pieces(text, random.Random(3)), parallel=False)
    assert [c["function"]["name"] for c in calls] == ["get_weather"]


@pytest.mark.parametrize("seed", range(10))
def test_auto_stream_malformed_call_comes_back_as_content(seed: int) -> None:
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"a": 1</tool_call>'
    streamed, content, calls = run_auto(random_pieces(text, random.Random(seed)))
    assert calls == []
    assert "".join(streamed) + content == text


def test_auto_stream_unknown_tool_stays_text() -> None:
    text = call_block("launch_rockets", {"a": 1})
    streamed, content, calls = run_auto(random_pieces(text, random.Random(0)))
    assert calls == []
    assert "".join(streamed) + content == text


def test_auto_stream_plain_text_streams_immediately() -> None:
    stream = AutoToolStream(TOOLS, True)
    assert stream.feed("Hel") == "Hel"
    assert stream.feed("lo <tool_call>") == "lo <tool_call>"
    assert stream.feed(" world") == " world"
    assert stream.finish() == ("", [])


def test_auto_stream_releases_a_false_start() -> None:
    """A prefix of '<tool_call>' is held until it stops looking like one, then released."""
    stream = AutoToolStream(TOOLS, True)
    assert stream.feed("  <tool") == ""
    assert stream.feed("box> is a word") == "  <toolbox> is a word"
    assert stream.feed("!") == "!"
    assert stream.finish() == ("", [])


def test_auto_stream_whitespace_only_reply() -> None:
    streamed, content, calls = run_auto([" ", "\n"])
    assert "".join(streamed) + content == " \n"
    assert calls == []


def test_auto_stream_empty_reply() -> None:
    stream = AutoToolStream(TOOLS, True)
    assert stream.finish() == ("", [])


@pytest.mark.parametrize("seed", range(30))
def test_auto_stream_never_loses_text(seed: int) -> None:
    rng = random.Random(seed)
    text = rng.choice(
        [
            "Sure, here you go.",
            "<tool_",
            "<tool_call>oops",
            "< tool_call>",
            call_block("f", {"a": 1}) + " trailing",
            "  plain with leading spaces",
        ]
    )
    streamed, content, calls = run_auto(random_pieces(text, rng))
    if calls:
        assert text.lstrip().startswith("<tool_call>")
    else:
        assert "".join(streamed) + content == text
