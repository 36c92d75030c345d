"""Legacy completions: prompt(s) -> engine -> text_completion objects or chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ceruleum.api import sse
from ceruleum.api.completions.prompt import completion_prompts
from ceruleum.api.completions.protocol import CompletionRequest
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
from ceruleum.safety.analyzers import Segment
from ceruleum.settings import Settings

_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint


async def create_completion(
    request: Request,
    body: CompletionRequest,
    pool: ModelPool,
    deployments: DeploymentLookup,
    settings: Settings,
    gate: InferenceGate,
) -> Response:
    chat, deployment = await resolve_chat(pool, deployments, gate.principal, body.model)
    gate.authorize(body.model)
    apply_sampling_defaults(body, deployment)
    requested = deployment_max_tokens(deployment, body.max_tokens)
    requested = _DEFAULT_MAX_TOKENS if requested is None else requested
    check_n(body.n, settings)
    if body.best_of is not None and body.best_of != body.n:
        raise InvalidRequestError(
            "'best_of' other than 'n' is not supported.", param="best_of", code="unsupported_value"
        )
    if body.echo and body.logprobs is not None:
        raise InvalidRequestError(
            "'echo' together with 'logprobs' is not supported.",
            param="echo",
            code="unsupported_value",
        )
    if body.echo and body.suffix is not None:
        raise InvalidRequestError("'echo' cannot be combined with 'suffix'.", param="echo")
    prompts = completion_prompts(chat, body)
    if len(prompts) * body.n > settings.max_n:
        raise InvalidRequestError(
            f"{len(prompts)} prompts times n={body.n} is more than the {settings.max_n} "
            "choices one request may ask for.",
            param="prompt",
        )
    top_logprobs = body.logprobs or 0
    token_lists: list[list[int]] = []
    params = []
    for prompt in prompts:
        max_tokens = resolve_max_tokens(requested, len(prompt.tokens), chat.engine, "max_tokens")
        for j in range(body.n):
            token_lists.append(prompt.tokens)
            params.append(
                build_sampling_params(
                    body,
                    settings=settings,
                    model=chat.model,
                    max_tokens=max_tokens,
                    logprobs=body.logprobs is not None,
                    top_logprobs=top_logprobs,
                    choice_index=j,
                )
            )
    prompt_tokens = sum(len(p.tokens) for p in prompts)
    tokens_per_minute, requests_per_minute = deployment_quota(deployment, settings)
    await gate.admit(
        model=chat.spec.id,
        estimated_tokens=prompt_tokens + sum(p.max_tokens for p in params),
        tokens_per_minute=tokens_per_minute,
        requests_per_minute=requests_per_minute,
    )
    filtering = await request_filter(request, gate.principal, deployment)
    gate.count(prompt_tokens=prompt_tokens, completion_tokens=0)  # also if a prompt is refused
    reply_id, created = new_id("cmpl"), now()
    outputs = ChoiceRun(chat.engine, reply_id, token_lists, params)
    prompt_results = await filtering.check_prompts_while_generating(
        [[Segment(text, "user") for text in (p.echo_text, body.suffix) if text] for p in prompts],
        outputs,
    )
    echo_texts = [prompts[i // body.n].echo_text if body.echo else "" for i in range(len(params))]
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        censor = StreamFilter(
            filtering,
            len(params),
            chunk_chars=settings.content_filter_stream_chars,
            terminal=_filtered_choice,
        )
        frames = _stream(
            reply_id,
            created,
            chat.spec.id,
            chat,
            outputs,
            echo_texts,
            prompt_tokens,
            include_usage,
            gate,
            prompt_results,
            censor,
        )
        return sse.sse_response(frames)
    choices = await collect_choices(request, outputs, len(params))
    gate.count(
        prompt_tokens=prompt_tokens, completion_tokens=sum(c.completion_tokens for c in choices)
    )
    objects = [
        {
            "index": c.index,
            "text": echo_texts[c.index] + c.text,
            "logprobs": _logprobs(c.logprobs, 0) if body.logprobs is not None else None,
            "finish_reason": c.finish_reason,
        }
        for c in choices
    ]
    await annotate_choices(filtering, objects, [c.text for c in choices], _withhold_text)
    reply: dict[str, Any] = {
        "id": reply_id,
        "object": "text_completion",
        "created": created,
        "model": chat.spec.id,
        "choices": objects,
        "usage": usage(prompt_tokens, sum(c.completion_tokens for c in choices)),
        "system_fingerprint": chat.system_fingerprint,
    }
    if filtering.enabled:
        reply["prompt_filter_results"] = prompt_results
    return JSONResponse(reply)


def _withhold_text(choice: dict[str, Any]) -> None:
    choice["text"] = ""


def _filtered_choice(index: int, annotation: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "text": "",
        "logprobs": None,
        "finish_reason": "content_filter",
        "content_filter_results": annotation,
    }


async def _stream(
    reply_id: str,
    created: int,
    model: str,
    chat: ChatModel,
    outputs: ChoiceRun,
    echo_texts: list[str],
    prompt_tokens: int,
    include_usage: bool,
    gate: InferenceGate,
    prompt_results: list[dict[str, Any]],
    censor: StreamFilter,
) -> AsyncIterator[bytes]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload: dict[str, Any] = {
            "id": reply_id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": chat.system_fingerprint,
            "choices": choices,
        }
        if include_usage:
            payload["usage"] = None
        payload.update(extra)
        return sse.event(payload)

    completion_tokens = [0] * len(echo_texts)
    text_offsets = [len(t) for t in echo_texts]
    status = CLIENT_CLOSED  # unless the stream gets to its end
    try:
        if prompt_results:  # Azure: the first chunk has no choices, only the prompts' results
            yield chunk([], prompt_filter_results=prompt_results)
        for index, text in enumerate(echo_texts):
            if text:
                yield chunk([_choice(index, text)])
        async for index, output in outputs:
            completion_tokens[index] = output.completion_tokens
            gate.first_token()
            gate.count(prompt_tokens=prompt_tokens, completion_tokens=sum(completion_tokens))
            logprobs = None
            if output.logprobs is not None:
                logprobs = _logprobs(output.logprobs, text_offsets[index])
                text_offsets[index] += sum(len(e.token) for e in output.logprobs)
            finished = output.finish_reason is not None
            held = []
            if output.text or logprobs is not None or finished:
                held.append(_choice(index, output.text, logprobs, output.finish_reason))
            censor.hold(index, held, output.text)
            if censor.due(index, finished):
                released, filtered = await censor.release(index)
                for choice in released:
                    yield chunk([choice])
                if filtered:
                    outputs.stop(index)
        if include_usage:
            yield chunk([], usage=usage(prompt_tokens, sum(completion_tokens)))
        status = 200
    except Exception as exc:
        status = to_api_error(exc).status_code
        yield sse.error_event(exc)
    finally:
        gate.finish(status)  # first: a cancelled stream may not complete another await
        await outputs.aclose()
    yield sse.DONE


def _choice(
    index: int, text: str, logprobs: dict[str, Any] | None = None, finish_reason: str | None = None
) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def _logprobs(entries: list[TokenLogprob], start_offset: int) -> dict[str, Any]:
    offsets = []
    position = start_offset
    for entry in entries:
        offsets.append(position)
        position += len(entry.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t.token: t.logprob for t in e.top} for e in entries],
        "text_offset": offsets,
    }
