"""Chat completions: prompt -> engine -> OpenAI chat.completion objects or chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ceruleum.api import sse
from ceruleum.api.chat.choices import ChoiceStream, final_message
from ceruleum.api.chat.prompt import chat_prompt_tokens, prompt_segments
from ceruleum.api.chat.protocol import ChatCompletionRequest
from ceruleum.api.chat.structured import response_format_grammar
from ceruleum.api.chat.tools import ToolPlan, plan_tools
from ceruleum.api.errors import InvalidRequestError, to_api_error
from ceruleum.api.filtering import annotate_choices, request_filter
from ceruleum.api.gating import CLIENT_CLOSED, deployment_quota
from ceruleum.api.generation import (
    ChoiceRun,
    build_sampling_params,
    check_n,
    collect_choices,
    new_id,
    now,
    resolve_max_tokens,
    usage,
)
from ceruleum.api.stream_filter import StreamFilter
from ceruleum.api.targets import apply_sampling_defaults, deployment_max_tokens, resolve_chat
from ceruleum.deployments.lookup import DeploymentLookup
from ceruleum.engine.outputs import TokenLogprob
from ceruleum.engine.pool import ChatModel, ModelPool
from ceruleum.gateway.gate import InferenceGate
from ceruleum.settings import Settings


async def create_chat_completion(
    request: Request,
    body: ChatCompletionRequest,
    pool: ModelPool,
    deployments: DeploymentLookup,
    settings: Settings,
    gate: InferenceGate,
) -> Response:
    chat, deployment = await resolve_chat(pool, deployments, gate.principal, body.model)
    gate.authorize(body.model)
    apply_sampling_defaults(body, deployment)
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
    plan = plan_tools(body)
    grammar = plan.grammar or response_format_grammar(body.response_format)
    if grammar is not None and not chat.model.grammar_parses(grammar):
        raise InvalidRequestError(
            "The schema could not be compiled into a grammar the model can follow.",
            param="tools" if plan.grammar else "response_format",
            code="unsupported_schema",
        )
    prompt = chat_prompt_tokens(chat, body.messages, plan)
    requested, param = (
        (body.max_completion_tokens, "max_completion_tokens")
        if body.max_completion_tokens is not None
        else (body.max_tokens, "max_tokens")
    )
    requested = deployment_max_tokens(deployment, requested)
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
            grammar=grammar,
        )
        for i in range(body.n)
    ]
    tokens_per_minute, requests_per_minute = deployment_quota(deployment, settings)
    await gate.admit(
        model=chat.spec.id,
        estimated_tokens=len(prompt) + max_tokens * body.n,
        tokens_per_minute=tokens_per_minute,
        requests_per_minute=requests_per_minute,
    )
    filtering = await request_filter(request, gate.principal, deployment)
    gate.count(prompt_tokens=len(prompt), completion_tokens=0)  # also if the prompt is refused
    reply = _Reply(new_id("chatcmpl"), now(), chat.spec.id, chat, plan)
    outputs = ChoiceRun(chat.engine, reply.id, [prompt] * body.n, params)
    prompt_results = await filtering.check_prompts_while_generating(
        [prompt_segments(body.messages)], outputs
    )
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        censor = StreamFilter(
            filtering,
            body.n,
            chunk_chars=settings.content_filter_stream_chars,
            terminal=_filtered_choice,
        )
        return sse.sse_response(
            reply.stream(outputs, body.n, len(prompt), include_usage, gate, prompt_results, censor)
        )
    choices = await collect_choices(request, outputs, body.n)
    gate.count(
        prompt_tokens=len(prompt), completion_tokens=sum(c.completion_tokens for c in choices)
    )
    finals = [final_message(c.text, c.finish_reason, plan) for c in choices]
    objects = [
        {
            "index": c.index,
            "message": message,
            "logprobs": _logprobs(c.logprobs) if body.logprobs else None,
            "finish_reason": finish_reason,
        }
        for c, (message, finish_reason) in zip(choices, finals, strict=True)
    ]
    await annotate_choices(filtering, objects, [c.text for c in choices], _withhold_message)
    reply_body: dict[str, Any] = {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": objects,
        "usage": usage(len(prompt), sum(c.completion_tokens for c in choices)),
        "system_fingerprint": chat.system_fingerprint,
    }
    if filtering.enabled:
        reply_body["prompt_filter_results"] = prompt_results
    return JSONResponse(reply_body)


def _withhold_message(choice: dict[str, Any]) -> None:
    choice["message"] = {"role": "assistant", "content": None, "refusal": None}


def _filtered_choice(index: int, annotation: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "delta": {},
        "logprobs": None,
        "finish_reason": "content_filter",
        "content_filter_results": annotation,
    }


class _Reply:
    def __init__(
        self, reply_id: str, created: int, model: str, chat: ChatModel, plan: ToolPlan
    ) -> None:
        self.id, self.created, self.model, self.chat = reply_id, created, model, chat
        self.plan = plan
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
        self,
        outputs: ChoiceRun,
        n: int,
        prompt_tokens: int,
        include_usage: bool,
        gate: InferenceGate,
        prompt_results: list[dict[str, Any]],
        censor: StreamFilter,
    ) -> AsyncIterator[bytes]:
        self.include_usage_field = include_usage
        completion_tokens = [0] * n
        streams = [ChoiceStream(self.plan) for _ in range(n)]
        status = CLIENT_CLOSED  # unless the stream gets to its end
        try:
            if prompt_results:  # Azure: the first chunk has no choices, only the prompt's results
                yield self.chunk([], prompt_filter_results=prompt_results)
            for index in range(n):
                yield self.chunk([_choice(index, {"role": "assistant", "content": ""})])
            async for index, output in outputs:
                completion_tokens[index] = output.completion_tokens
                gate.first_token()
                gate.count(prompt_tokens=prompt_tokens, completion_tokens=sum(completion_tokens))
                logprobs = _logprobs(output.logprobs) if output.logprobs else None
                deltas = streams[index].feed(output.text) if output.text else []
                if logprobs is not None and not deltas:
                    deltas = [{"content": ""}]
                held = []
                for delta in deltas:
                    held.append(_choice(index, delta, logprobs=logprobs))
                    logprobs = None
                finished = output.finish_reason is not None
                if finished:
                    closing, reason = streams[index].finish(output.finish_reason or "stop")
                    held.extend(_choice(index, delta) for delta in closing)
                    held.append(_choice(index, {}, finish_reason=reason))
                censor.hold(index, held, output.text)
                if censor.due(index, finished):
                    released, filtered = await censor.release(index)
                    for choice in released:
                        yield self.chunk([choice])
                    if filtered:
                        outputs.stop(index)
            if include_usage:
                yield self.chunk([], usage=usage(prompt_tokens, sum(completion_tokens)))
            status = 200
        except Exception as exc:
            status = to_api_error(exc).status_code
            yield sse.error_event(exc)
        finally:
            gate.finish(status)  # first: a cancelled stream may not complete another await
            await outputs.aclose()
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
