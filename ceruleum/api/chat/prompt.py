"""Turn chat messages into prompt tokens with the model's chat template."""

from __future__ import annotations

from typing import Any

from ceruleum.api.chat.protocol import ChatMessage
from ceruleum.api.errors import InvalidRequestError
from ceruleum.engine.pool import ChatModel


def template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        entry: dict[str, Any] = {"role": role, "content": _text_content(message, index)}
        if message.name is not None:
            entry["name"] = message.name
        rendered.append(entry)
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


def chat_prompt_tokens(chat: ChatModel, messages: list[ChatMessage]) -> list[int]:
    text = chat.template.render(template_messages(messages), add_generation_prompt=True)
    tokens = chat.model.tokenize(text, add_special=True, parse_special=True)
    bos = chat.model.bos_id
    if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
        tokens = tokens[1:]  # the template already wrote BOS
    return tokens
