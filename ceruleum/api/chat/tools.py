"""Tool calling: the prompt that offers tools, grammars that force a call, and parsing calls out of
the model's text (whole or streamed).

Models write calls in the Hermes convention most open chat models follow:
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from ceruleum.api.chat.protocol import ChatCompletionRequest, ToolDefinition
from ceruleum.api.errors import InvalidRequestError
from ceruleum.engine.grammar import UnsupportedSchemaError, schema_grammar

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FORCED_HEAD = re.compile(r'^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

ToolMode = Literal["none", "auto", "forced"]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    mode: ToolMode
    tools: dict[str, ToolDefinition] = field(default_factory=dict)
    parallel: bool = True
    grammar: str | None = None  # set when a call is forced


def plan_tools(body: ChatCompletionRequest) -> ToolPlan:
    tools = {t.function.name: t for t in body.tools or []}
    if len(tools) != len(body.tools or []):
        raise InvalidRequestError("Tool function names must be unique.", param="tools")
    choice = body.tool_choice or ("auto" if tools else "none")
    if not tools:
        if choice not in ("none", "auto"):
            raise InvalidRequestError(
                "'tool_choice' requires 'tools' to be given.", param="tool_choice"
            )
        return ToolPlan("none")
    if choice == "none":
        return ToolPlan("none", tools)
    if choice == "auto":
        return ToolPlan("auto", tools, body.parallel_tool_calls)
    if choice == "required":
        candidates = list(tools.values())
    else:
        name = choice.function.name
        if name not in tools:
            raise InvalidRequestError(
                f"'tool_choice' names function '{name}', which is not in 'tools'.",
                param="tool_choice",
            )
        candidates = [tools[name]]
    return ToolPlan("forced", tools, False, _forced_call_grammar(candidates))


def _parameters(tool: ToolDefinition) -> dict[str, Any]:
    return tool.function.parameters or _EMPTY_PARAMETERS


def _forced_call_grammar(candidates: list[ToolDefinition]) -> str:
    calls = []
    definitions: dict[str, Any] = {}
    for index, tool in enumerate(candidates):
        parameters, defs = _hoist_definitions(_parameters(tool), f"t{index}_")
        definitions.update(defs)
        calls.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool.function.name}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if definitions:
        schema = {**schema, "$defs": definitions}
    try:
        return schema_grammar(schema)
    except UnsupportedSchemaError as exc:
        raise InvalidRequestError(
            f"A tool's parameters use JSON Schema features that cannot be enforced: {exc}",
            param="tools",
            code="unsupported_schema",
        ) from None


def _hoist_definitions(schema: dict[str, Any], prefix: str) -> tuple[Any, dict[str, Any]]:
    """Move a tool's $defs/definitions to the combined schema's root, renamed per tool (two
    tools may both define a `Place`), and point its $refs there."""
    own = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    body = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: rewrite(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str):
            for base in ("#/$defs/", "#/definitions/"):
                if ref.startswith(base):
                    out["$ref"] = "#/$defs/" + prefix + ref[len(base) :]
        return out

    return rewrite(body), {prefix + name: rewrite(sub) for name, sub in own.items()}


def tools_system_prompt(tools: dict[str, ToolDefinition]) -> str:
    signatures = "\n".join(
        json.dumps(
            {
                "name": t.function.name,
                "description": t.function.description or "",
                "parameters": _parameters(t),
            },
            ensure_ascii=False,
        )
        for t in tools.values()
    )
    return (
        "You can call functions to help with the user's request. The available functions are "
        f"listed in <tools></tools> tags:\n<tools>\n{signatures}\n</tools>\n"
        "To call a function, reply with a JSON object holding its name and arguments inside "
        "<tool_call></tool_call> tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <arguments-object>}\n</tool_call>'
    )


def render_tool_calls(calls: list[dict[str, Any]]) -> str:
    """How an assistant turn's earlier calls are written back into the prompt."""
    blocks = []
    for call in calls:
        try:
            arguments: Any = json.loads(call["arguments"])
        except (json.JSONDecodeError, TypeError):
            arguments = call["arguments"]
        payload = json.dumps({"name": call["name"], "arguments": arguments}, ensure_ascii=False)
        blocks.append(f"{CALL_OPEN}\n{payload}\n{CALL_CLOSE}")
    return "\n".join(blocks)


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def _call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": new_call_id(),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def parse_forced_call(text: str) -> dict[str, Any] | None:
    """The call generated under a grammar: {"name": ..., "arguments": {...}}. A call cut short
    (max_tokens) keeps its name and the arguments written so far, as OpenAI returns it."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        head = _FORCED_HEAD.match(text)
        if head is None:
            return None
        return _call(json.loads(f'"{head.group(1)}"'), text[head.end() :].rstrip())
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        return None
    return _call(payload["name"], json.dumps(payload.get("arguments", {}), ensure_ascii=False))


def parse_tool_calls(
    text: str, tools: dict[str, ToolDefinition], parallel: bool
) -> tuple[str | None, list[dict[str, Any]]]:
    """Split free model output into (content, tool calls). Anything malformed stays text."""
    if CALL_OPEN not in text:
        return text, []
    calls = []
    for block in _CALL_BLOCK.findall(text):
        try:
            payload = json.loads(block)
        except json.JSONDecodeError:
            return text, []
        if not isinstance(payload, dict) or payload.get("name") not in tools:
            return text, []
        arguments = payload.get("arguments", {})
        if isinstance(arguments, str):
            arguments_text = arguments
        else:
            arguments_text = json.dumps(arguments, ensure_ascii=False)
        calls.append(_call(payload["name"], arguments_text))
    if not calls:
        return text, []
    if not parallel:
        calls = calls[:1]
    content = text[: text.index(CALL_OPEN)].strip()
    return content or None, calls


class ForcedCallStream:
    """Streams a grammar-forced call as OpenAI does: id and name first, then the arguments as
    string fragments. The grammar guarantees the shape {"name": "...", "arguments": ARGS}."""

    def __init__(self) -> None:
        self._text = ""
        self._head_done = False
        self._sent = 0  # characters of the arguments already sent

    def feed(self, text: str) -> list[dict[str, Any]]:
        self._text += text
        deltas: list[dict[str, Any]] = []
        if not self._head_done:
            match = _FORCED_HEAD.match(self._text)
            if match is None:
                return deltas
            self._head_done = True
            self._args_start = match.end()
            name = json.loads(f'"{match.group(1)}"')
            deltas.append(
                {
                    "index": 0,
                    "id": new_call_id(),
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            )
        # Hold back the outer object's closing brace (and spaces) until we know it is the end.
        body = self._text[self._args_start :].rstrip()
        if body.endswith("}"):
            body = body[:-1]
        if len(body) > self._sent:
            deltas.append({"index": 0, "function": {"arguments": body[self._sent :]}})
            self._sent = len(body)
        return deltas

    def finish(self) -> list[dict[str, Any]]:
        """At the end: the arguments are everything before the final brace."""
        if not self._head_done:
            return []
        body = self._text[self._args_start :].rstrip()
        body = body[:-1].rstrip() if body.endswith("}") else body
        if len(body) <= self._sent:
            return []
        fragment, self._sent = body[self._sent :], len(body)
        return [{"index": 0, "function": {"arguments": fragment}}]


class AutoToolStream:
    """Under tool_choice=auto: stream text as content unless it opens with a tool call, in which
    case hold it and parse the calls when the choice ends."""

    def __init__(self, tools: dict[str, ToolDefinition], parallel: bool) -> None:
        self._tools, self._parallel = tools, parallel
        self._held = ""
        self._streaming_content = False

    def feed(self, text: str) -> str:
        """Content to send now (possibly empty)."""
        if self._streaming_content:
            return text
        self._held += text
        head = self._held.lstrip()
        if head.startswith(CALL_OPEN) or CALL_OPEN.startswith(head):
            return ""
        self._streaming_content = True
        released, self._held = self._held, ""
        return released

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """(content still to send, tool calls) at the end of the choice."""
        if not self._held:
            return "", []
        content, calls = parse_tool_calls(self._held, self._tools, self._parallel)
        if calls:
            return content or "", calls
        return self._held, []
