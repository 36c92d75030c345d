"""Azure OpenAI's dated api-version query parameter."""

from __future__ import annotations

from fastapi import Request

from ceruleum.api.errors import APIError

GA_VERSIONS = ("2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21")
PREVIEW_VERSIONS = (
    "2024-08-01-preview",
    "2024-09-01-preview",
    "2024-10-01-preview",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-02-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
)
SUPPORTED_VERSIONS = GA_VERSIONS + PREVIEW_VERSIONS


class ApiVersionError(APIError):
    status_code = 400


def require_api_version(request: Request) -> str:
    supported = ", ".join(SUPPORTED_VERSIONS)
    version = request.query_params.get("api-version")
    if not version:
        raise ApiVersionError(
            "The api-version query parameter (?api-version=) is required for all requests. "
            f"Supported versions: {supported}.",
            param="api-version",
            code="MissingApiVersionParameter",
        )
    if version not in SUPPORTED_VERSIONS:
        raise ApiVersionError(
            f"The api-version '{version}' is invalid. The supported versions are: {supported}.",
            param="api-version",
            code="InvalidApiVersionParameter",
        )
    return version
