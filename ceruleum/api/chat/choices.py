"""Turning one choice's generated text into an OpenAI message, whole or as stream deltas."""

from __future__ import annotations

from typing import Any

from ceruleum.api.chat.tools import (
    AutoToolStream,
    ForcedCallStream,
    ToolPlan,
    parse_forced_call,
    parse_tool_calls,
)


def final_message(
    text: str, finish_reason: str | None, plan: ToolPlan
) -> tuple[dict[str, Any], str | None]:
    """(assistant message, finish_reason) for a complete choice."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    calls: list[dict[str, Any]] = []
    if plan.mode == "forced":
        call = parse_forced_call(text)
        calls = [call] if call is not None else []
    elif plan.mode == "auto":
        content, calls = parse_tool_calls(text, plan.tools, plan.parallel)
        if calls:
            message["content"] = content
    if calls:
        message["tool_calls"] = calls
        if plan.mode == "forced":
            message["content"] = None
        if finish_reason == "stop":
            finish_reason = "tool_calls"
    return message, finish_reason


class ChoiceStream:
    """Per-choice state while streaming: yields the `delta` objects to send."""

    def __init__(self, plan: ToolPlan) -> None:
        self._mode = plan.mode
        self._forced = ForcedCallStream() if plan.mode == "forced" else None
        self._auto = AutoToolStream(plan.tools, plan.parallel) if plan.mode == "auto" else None
        self.made_calls = False

    def feed(self, text: str) -> list[dict[str, Any]]:
        if self._forced is not None:
            calls = self._forced.feed(text)
            self.made_calls = self.made_calls or bool(calls)
            return [{"tool_calls": calls}] if calls else []
        if self._auto is not None:
            text = self._auto.feed(text)
        return [{"content": text}] if text else []

    def finish(self, finish_reason: str) -> tuple[list[dict[str, Any]], str]:
        deltas: list[dict[str, Any]] = []
        if self._forced is not None:
            calls = self._forced.finish()
            if calls:
                deltas.append({"tool_calls": calls})
        elif self._auto is not None:
            content, calls = self._auto.finish()
            if content:
                deltas.append({"content": content})
            for index, call in enumerate(calls):
                deltas.append({"tool_calls": [{"index": index, **call}]})
            self.made_calls = bool(calls)
        if self.made_calls and finish_reason == "stop":
            finish_reason = "tool_calls"
        return deltas, finish_reason
