"""Running an inference handler inside its gateway context (quota, usage, metrics)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ceruleum.api.errors import ClientDisconnectedError, dialect_of, to_api_error
from ceruleum.deployments import Deployment
from ceruleum.gateway.gate import InferenceGate
from ceruleum.gateway.principal import Principal
from ceruleum.gateway.quota import requests_per_minute_for
from ceruleum.settings import Settings

CLIENT_CLOSED = 499


def new_gate(request: Request, *, route: str, operation: str) -> InferenceGate:
    state = request.app.state
    principal: Principal = request.state.principal
    return InferenceGate(
        principal=principal,
        quota=state.quota,
        usage=state.usage,
        metrics=state.metrics,
        request_id="req_" + uuid.uuid4().hex,
        route=route,
        operation=operation,
        enforce=state.settings.gateway_enabled,
    )


async def gated(request: Request, gate: InferenceGate, call: Awaitable[Response]) -> Response:
    """Await the handler; record the outcome unless a stream will record it when it ends."""
    try:
        response = await call
    except ClientDisconnectedError:
        gate.finish(CLIENT_CLOSED)
        raise
    except Exception as exc:
        gate.finish(to_api_error(exc, dialect_of(request)).status_code)
        raise
    if not isinstance(response, StreamingResponse):
        gate.finish(response.status_code)
    response.headers.update(gate.headers())
    response.headers["x-request-id"] = gate.request_id
    return response


def deployment_quota(deployment: Deployment | None, settings: Settings) -> tuple[int, int]:
    """(tokens per minute, requests per minute) of a deployment, or of a model used directly."""
    if deployment is not None and deployment.tokens_per_minute is not None:
        tokens = deployment.tokens_per_minute
    else:
        tokens = settings.default_tokens_per_minute
    requests = deployment.effective_requests_per_minute if deployment is not None else None
    return tokens, requests if requests is not None else requests_per_minute_for(tokens)
