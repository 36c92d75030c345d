"""The one place where exceptions become OpenAI-style error bodies and status codes."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ceruleum.deployments.errors import (
    DeploymentError,
    DeploymentExistsError,
    DeploymentLimitError,
    DeploymentNotFoundError,
    InvalidDeploymentError,
)
from ceruleum.engine.chat_template import ChatTemplateError
from ceruleum.engine.embeddings import InputTooLongError
from ceruleum.engine.errors import (
    ContextWindowExceededError,
    EngineDeadError,
    ModelCapabilityError,
    RequestFailedError,
)
from ceruleum.engine.registry import UnknownModelError
from ceruleum.gateway.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from ceruleum.gateway.quota import (
    QuotaUnavailableError,
    rate_limit_headers,
    retry_after_headers,
)
from ceruleum.store.errors import (
    ApiKeyNotFoundError,
    BlocklistExistsError,
    BlocklistInUseError,
    BlocklistItemNotFoundError,
    BlocklistNotFoundError,
    InvalidFieldError,
    LimitExceededError,
    ProjectExistsError,
    ProjectNameError,
    ProjectNotFoundError,
    StoreError,
)

logger = logging.getLogger(__name__)


Dialect = Literal["openai", "azure"]

AZURE_DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment "
    "within the last 5 minutes, please wait a moment and try again."
)


def dialect_of(request: Request) -> Dialect:
    """Azure routes (/openai/...) answer in Azure's error shape, the rest in OpenAI's."""
    return "azure" if request.url.path.startswith("/openai/") else "openai"


class APIError(Exception):
    """An error with its HTTP status and OpenAI error fields."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        # Fields beyond OpenAI's four, in every dialect / in Azure's only (e.g. `innererror`).
        self.extra: dict[str, Any] = {}
        self.azure_extra: dict[str, Any] = {}


class InvalidRequestError(APIError):
    pass


class ClientDisconnectedError(Exception):
    """The client went away before the reply was ready: nothing to answer, nothing to log."""


class NotFoundError(APIError):
    status_code = 404


class UnauthorizedError(APIError):
    status_code = 401


class ForbiddenError(APIError):
    status_code = 403


class TooManyRequestsError(APIError):
    status_code = 429
    error_type = "requests"


class ConflictError(APIError):
    status_code = 409


class PayloadTooLargeError(APIError):
    status_code = 413


class UnsupportedMediaTypeError(APIError):
    status_code = 415


class ServiceUnavailableError(APIError):
    status_code = 503
    error_type = "service_unavailable"


def model_not_found(model: str) -> NotFoundError:
    return NotFoundError(
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def error_body(error: APIError, dialect: Dialect = "openai") -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": error.message,
        "type": error.error_type,
        "param": error.param,
        "code": error.code,
    }
    body.update(error.extra)
    if dialect == "azure":
        # Azure always names a code; where OpenAI has none it uses the status.
        body["code"] = error.code or str(error.status_code)
        body.update(error.azure_extra)
    return {"error": body}


AZURE_ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def _authentication_error(exc: AuthenticationError, dialect: Dialect) -> APIError:
    if dialect == "azure":
        return UnauthorizedError(AZURE_ACCESS_DENIED, code="401")
    if exc.missing:
        return UnauthorizedError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or in the "
            "'api-key' header."
        )
    return UnauthorizedError(
        "Incorrect API key provided, or the key was revoked or has expired.",
        code="invalid_api_key",
    )


def _rate_limited_error(exc: RateLimitedError, dialect: Dialect) -> APIError:
    admission = exc.admission
    state = admission.state
    headers = {**rate_limit_headers(state), **retry_after_headers(admission)}
    wait = headers.get("retry-after", "1")
    if admission.never_fits:
        message = (
            f"This request needs more tokens than the limit of {state.limit_tokens} tokens per "
            "minute allows, so it can never be admitted. Reduce max_tokens or the prompt."
        )
        return TooManyRequestsError(message, code="tokens_exceed_limit", headers=headers)
    if dialect == "azure":
        kind = "token" if admission.exceeded == "tokens" else "call"
        message = (
            f"Requests to the {exc.operation} Operation have exceeded {kind} rate limit of your "
            f"current deployment. Please retry after {wait} seconds."
        )
        return TooManyRequestsError(message, code="429", headers=headers)
    if admission.exceeded == "tokens":
        detail = f"tokens per min (TPM): Limit {state.limit_tokens}"
    else:
        detail = f"requests per min (RPM): Limit {state.limit_requests}"
    message = f"Rate limit reached on {detail}. Please try again in {wait}s."
    return TooManyRequestsError(message, code="rate_limit_exceeded", headers=headers)


def to_api_error(exc: Exception, dialect: Dialect = "openai") -> APIError:
    """Map a service or engine exception to the API error it means."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, AuthenticationError):
        return _authentication_error(exc, dialect)
    if isinstance(exc, PermissionDeniedError):
        return ForbiddenError(
            str(exc), code="PermissionDenied" if dialect == "azure" else "permission_denied"
        )
    if isinstance(exc, RateLimitedError):
        return _rate_limited_error(exc, dialect)
    if isinstance(exc, QuotaUnavailableError):
        logger.error("quota store unreachable: %s", type(exc.__cause__ or exc).__name__)
        return ServiceUnavailableError(
            "Quota accounting is unavailable; try again shortly.",
            code="quota_unavailable",
            headers={"retry-after": "5", "retry-after-ms": "5000"},
        )
    if dialect == "azure" and isinstance(exc, UnknownModelError | DeploymentNotFoundError):
        return NotFoundError(AZURE_DEPLOYMENT_NOT_FOUND, code="DeploymentNotFound")
    if isinstance(exc, ContextWindowExceededError):
        return InvalidRequestError(str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, InputTooLongError):
        return InvalidRequestError(str(exc), param="input", code="context_length_exceeded")
    if isinstance(exc, UnknownModelError):
        return model_not_found(str(exc))
    if isinstance(exc, ChatTemplateError):
        return InvalidRequestError(str(exc), param="messages", code="invalid_messages")
    if isinstance(exc, ModelCapabilityError):
        return InvalidRequestError(str(exc), code="unsupported_for_model")
    if isinstance(exc, EngineDeadError):
        return ServiceUnavailableError(
            "The model engine is not running; try again later.", code="engine_unavailable"
        )
    if isinstance(exc, RequestFailedError):
        return ServiceUnavailableError(
            f"The server could not complete this request: {exc}", code="overloaded"
        )
    if isinstance(exc, DeploymentNotFoundError):
        return NotFoundError(str(exc), code="DeploymentNotFound")
    if isinstance(exc, DeploymentExistsError):
        return ConflictError(str(exc), param="name", code="conflict")
    if isinstance(exc, InvalidDeploymentError):
        return InvalidRequestError(exc.message, param=exc.param, code="invalid_value")
    if isinstance(exc, DeploymentLimitError):
        return InvalidRequestError(str(exc), param="max_tokens", code="max_tokens_limit_exceeded")
    if isinstance(exc, StoreError) and (mapped := _store_error(exc)) is not None:
        return mapped
    error = APIError("The server had an error while processing your request.")
    error.status_code = 500
    error.error_type = "server_error"
    return error


def _store_error(exc: StoreError) -> APIError | None:
    if isinstance(exc, ProjectNotFoundError):
        return NotFoundError(str(exc), code="ProjectNotFound")
    if isinstance(exc, ApiKeyNotFoundError):
        return NotFoundError(str(exc), code="ApiKeyNotFound")
    if isinstance(exc, ProjectExistsError):
        return ConflictError(str(exc), param="name", code="conflict")
    if isinstance(exc, ProjectNameError):
        return InvalidRequestError(str(exc), param="name", code="invalid_value")
    if isinstance(exc, InvalidFieldError):
        return InvalidRequestError(exc.message, param=exc.param, code="invalid_value")
    if isinstance(exc, BlocklistNotFoundError):
        return NotFoundError(str(exc), code="BlocklistNotFound")
    if isinstance(exc, BlocklistItemNotFoundError):
        return NotFoundError(str(exc), code="BlocklistItemNotFound")
    if isinstance(exc, BlocklistExistsError):
        return ConflictError(str(exc), param="name", code="conflict")
    if isinstance(exc, BlocklistInUseError):
        return ConflictError(str(exc), code="conflict")
    if isinstance(exc, LimitExceededError):
        return InvalidRequestError(exc.message, param=exc.param, code="limit_exceeded")
    return None


def error_response(exc: Exception, dialect: Dialect = "openai") -> JSONResponse:
    error = to_api_error(exc, dialect)
    return JSONResponse(
        error_body(error, dialect), status_code=error.status_code, headers=error.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    async def handle_api_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc, dialect_of(request))

    async def handle_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        message = str(first.get("msg", "invalid request"))
        return error_response(
            InvalidRequestError(message, param=param or None), dialect_of(request)
        )

    async def handle_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = APIError(str(exc.detail), code=None)
        error.status_code = exc.status_code
        if exc.status_code == 404:
            error.message = f"Unknown route: {request.method} {request.url.path}"
            error.code = "not_found"
        elif exc.status_code == 405:
            error.message = f"Method {request.method} is not allowed on {request.url.path}"
            error.code = "method_not_allowed"
        return JSONResponse(error_body(error, dialect_of(request)), status_code=exc.status_code)

    async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(exc, dialect_of(request))

    async def handle_disconnect(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    app.add_exception_handler(ClientDisconnectedError, handle_disconnect)
    app.add_exception_handler(APIError, handle_api_error)
    app.add_exception_handler(DeploymentError, handle_api_error)
    app.add_exception_handler(StoreError, handle_api_error)
    for gateway_error in (
        AuthenticationError,
        PermissionDeniedError,
        RateLimitedError,
        QuotaUnavailableError,
    ):
        app.add_exception_handler(gateway_error, handle_api_error)
    for engine_error in (
        ContextWindowExceededError,
        InputTooLongError,
        UnknownModelError,
        ChatTemplateError,
        ModelCapabilityError,
        EngineDeadError,
        RequestFailedError,
    ):
        app.add_exception_handler(engine_error, handle_api_error)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
