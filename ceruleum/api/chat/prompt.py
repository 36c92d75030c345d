"""Turn chat messages into prompt tokens with the model's chat template."""

from __future__ import annotations

from typing import Any

from ceruleum.api.chat.protocol import ChatMessage
from ceruleum.api.chat.tools import CALL_OPEN, ToolPlan, render_tool_calls, tools_system_prompt
from ceruleum.api.errors import InvalidRequestError
from ceruleum.engine.pool import ChatModel
from ceruleum.safety.analyzers import Role, Segment

# Tool results and function outputs are content from elsewhere: where indirect attacks hide.
_SEGMENT_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "document",
    "function": "document",
}


def template_messages(messages: list[ChatMessage], plan: ToolPlan) -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        content = _text_content(message, index)
        if message.tool_calls:
            calls = [
                {"name": c.function.name, "arguments": c.function.arguments}
                for c in message.tool_calls
            ]
            content = "\n".join(filter(None, [content, render_tool_calls(calls)]))
        entry: dict[str, Any] = {"role": role, "content": content}
        if message.name is not None:
            entry["name"] = message.name
        rendered.append(entry)
    if plan.mode != "none":
        offer = tools_system_prompt(plan.tools)
        if rendered and rendered[0]["role"] == "system":
            rendered[0] = {**rendered[0], "content": rendered[0]["content"] + "\n\n" + offer}
        else:
            rendered.insert(0, {"role": "system", "content": offer})
    return rendered


def _text_content(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        if message.role == "assistant":
            return ""
        raise InvalidRequestError(
            f"messages[{index}].content is required for role '{message.role}'.",
            param=f"messages[{index}].content",
        )
    if isinstance(content, str):
        return content
    texts = []
    for part_index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise InvalidRequestError(
                f"messages[{index}].content[{part_index}] has type '{part.type}'; this model "
                "accepts only text parts.",
                param=f"messages[{index}].content[{part_index}].type",
            )
        texts.append(part.text)
    return "\n".join(texts)


def prompt_segments(messages: list[ChatMessage]) -> list[Segment]:
    """The prompt as the content filter reads it: each message's text with who wrote it."""
    rendered = template_messages(messages, ToolPlan("none"))
    return [
        Segment(entry["content"], _SEGMENT_ROLES[message.role])
        for message, entry in zip(messages, rendered, strict=True)
        if entry["content"]
    ]


def chat_prompt_tokens(chat: ChatModel, messages: list[ChatMessage], plan: ToolPlan) -> list[int]:
    text = chat.template.render(template_messages(messages, plan), add_generation_prompt=True)
    if plan.mode == "forced":
        text += CALL_OPEN + "\n"  # the reply is a call: start it for the model
    tokens = chat.model.tokenize(text, add_special=True, parse_special=True)
    bos = chat.model.bos_id
    if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
        tokens = tokens[1:]  # the template already wrote BOS
    return tokens
