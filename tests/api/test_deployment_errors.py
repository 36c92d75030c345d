"""Deployment exceptions become the documented HTTP errors."""

from __future__ import annotations

import pytest

from ceruleum.api.errors import error_body, to_api_error
from ceruleum.deployments import (
    DeploymentExistsError,
    DeploymentLimitError,
    DeploymentNotFoundError,
    InvalidDeploymentError,
)


@pytest.mark.parametrize(
    ("exc", "status", "error_type", "param", "code"),
    [
        (DeploymentNotFoundError("x"), 404, "invalid_request_error", None, "DeploymentNotFound"),
        (DeploymentExistsError("x"), 409, "invalid_request_error", "name", "conflict"),
        (
            InvalidDeploymentError("bad", param="defaults.top_p"),
            400,
            "invalid_request_error",
            "defaults.top_p",
            "invalid_value",
        ),
        (
            DeploymentLimitError("x", 200, 100),
            400,
            "invalid_request_error",
            "max_tokens",
            "max_tokens_limit_exceeded",
        ),
    ],
)
def test_mapping(
    exc: Exception, status: int, error_type: str, param: str | None, code: str
) -> None:
    error = to_api_error(exc)
    assert error.status_code == status
    body = error_body(error)["error"]
    assert (body["type"], body["param"], body["code"]) == (error_type, param, code)
    assert body["message"]


def test_limit_message_names_both_numbers() -> None:
    message = to_api_error(DeploymentLimitError("chat", 200, 100)).message
    assert "200" in message and "100" in message and "'chat'" in message
