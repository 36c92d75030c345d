"""Chat completions: prompt -> engine -> OpenAI chat.completion objects or chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ceruleum.api import sse
from ceruleum.api.chat.prompt import chat_prompt_tokens
from ceruleum.api.chat.protocol import ChatCompletionRequest
from ceruleum.api.errors import InvalidRequestError
from ceruleum.api.generation import (
    build_sampling_params,
    check_n,
    collect_choices,
    new_id,
    now,
    resolve_max_tokens,
    run_choices,
    usage,
)
from ceruleum.engine.outputs import TokenLogprob
from ceruleum.engine.pool import ChatModel, ModelPool
from ceruleum.settings import Settings


async def create_chat_completion(
    request: Request, body: ChatCompletionRequest, pool: ModelPool, settings: Settings
) -> Response:
    chat = pool.chat(body.model)
    check_n(body.n, settings)
    top_logprobs = body.top_logprobs or 0
    if top_logprobs > settings.max_top_logprobs:
        raise InvalidRequestError(
            f"'top_logprobs' must be at most {settings.max_top_logprobs}.", param="top_logprobs"
        )
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequestError(
            "'top_logprobs' requires 'logprobs' to be true.", param="logprobs"
        )
    prompt = chat_prompt_tokens(chat, body.messages)
    requested, param = (
        (body.max_completion_tokens, "max_completion_tokens")
        if body.max_completion_tokens is not None
        else (body.max_tokens, "max_tokens")
    )
    max_tokens = resolve_max_tokens(requested, len(prompt), chat.engine, param)
    params = [
        build_sampling_params(
            body,
            settings=settings,
            model=chat.model,
            max_tokens=max_tokens,
            logprobs=body.logprobs,
            top_logprobs=top_logprobs,
            choice_index=i,
        )
        for i in range(body.n)
    ]
    reply = _Reply(new_id("chatcmpl"), now(), body.model, chat)
    outputs = run_choices(chat.engine, reply.id, [prompt] * body.n, params)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse.sse_response(reply.stream(outputs, body.n, len(prompt), include_usage))
    choices = await collect_choices(request, outputs, body.n)
    return JSONResponse(
        {
            "id": reply.id,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [
                {
                    "index": c.index,
                    "message": {"role": "assistant", "content": c.text, "refusal": None},
                    "logprobs": _logprobs(c.logprobs) if body.logprobs else None,
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            "usage": usage(len(prompt), sum(c.completion_tokens for c in choices)),
            "system_fingerprint": chat.system_fingerprint,
        }
    )


class _Reply:
    def __init__(self, reply_id: str, created: int, model: str, chat: ChatModel) -> None:
        self.id, self.created, self.model, self.chat = reply_id, created, model, chat
        self.include_usage_field = False

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.chat.system_fingerprint,
            "choices": choices,
        }
        if self.include_usage_field:
            payload["usage"] = None
        payload.update(extra)
        return sse.event(payload)

    async def stream(
        self, outputs: AsyncIterator[Any], n: int, prompt_tokens: int, include_usage: bool
    ) -> AsyncIterator[bytes]:
        self.include_usage_field = include_usage
        completion_tokens = [0] * n
        try:
            for index in range(n):
                yield self.chunk([_choice(index, {"role": "assistant", "content": ""})])
            async for index, output in outputs:
                completion_tokens[index] = output.completion_tokens
                if output.text or output.logprobs:
                    logprobs = _logprobs(output.logprobs) if output.logprobs else None
                    yield self.chunk([_choice(index, {"content": output.text}, logprobs=logprobs)])
                if output.finish_reason is not None:
                    yield self.chunk([_choice(index, {}, finish_reason=output.finish_reason)])
            if include_usage:
                yield self.chunk([], usage=usage(prompt_tokens, sum(completion_tokens)))
        except Exception as exc:
            yield sse.error_event(exc)
        yield sse.DONE


def _choice(
    index: int,
    delta: dict[str, Any],
    *,
    logprobs: dict[str, Any] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}


def _logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": e.token,
                "logprob": e.logprob,
                "bytes": list(e.token_bytes),
                "top_logprobs": [
                    {"token": t.token, "logprob": t.logprob, "bytes": list(t.token_bytes)}
                    for t in e.top
                ],
            }
            for e in entries
        ],
        "refusal": None,
    }
