"""A deployment: a named binding of a served model with its sampling defaults and limits."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ceruleum.deployments.errors import DeploymentLimitError, InvalidDeploymentError
from ceruleum.gateway.quota import requests_per_minute_for
from ceruleum.safety.policy import DEFAULT_POLICY, ContentFilterPolicy, PolicyError

NAME_MAX_LENGTH = 64
MODEL_MAX_LENGTH = 256
PROJECT_ID_MAX_LENGTH = 40
# Without an explicit requests-per-minute limit, a deployment allows 6 requests per 1,000 tokens
# per minute (Azure's ratio).
# Starts with a letter or digit so that names never look like options or hidden files.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def validate_name(name: object) -> str:
    """The name itself, or InvalidDeploymentError explaining what a name may be."""
    if not isinstance(name, str) or not is_valid_name(name):
        raise InvalidDeploymentError(
            f"Invalid deployment name {name!r}: use 1 to {NAME_MAX_LENGTH} letters, digits, "
            "'.', '_' or '-', starting with a letter or digit.",
            param="name",
        )
    return name


def parse_policy(data: object) -> ContentFilterPolicy:
    """A content-filter policy from its wire form (None: the default), or
    InvalidDeploymentError naming the offending field."""
    try:
        return ContentFilterPolicy.from_dict(data)
    except PolicyError as exc:
        raise InvalidDeploymentError(exc.message, param=exc.param) from None


def _check_float(value: object, param: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    # bool is an int subclass; JSON true must not pass as 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidDeploymentError(
            f"Invalid value for '{param}': {value!r} is not a number from {low} to {high}.",
            param=param,
        )
    return float(value)


def _check_positive_int(value: object, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidDeploymentError(
            f"Invalid value for '{param}': {value!r} is not a positive integer.", param=param
        )
    return value


@dataclass(frozen=True, slots=True)
class SamplingDefaults:
    """Values applied when a request omits them; None leaves the server's own default."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        # Normalised so that 1 and 1.0 read back the same from the file and the API.
        temperature = _check_float(self.temperature, "defaults.temperature", 0.0, 2.0)
        object.__setattr__(self, "temperature", temperature)
        object.__setattr__(self, "top_p", _check_float(self.top_p, "defaults.top_p", 0.0, 1.0))
        _check_positive_int(self.max_tokens, "defaults.max_tokens")

    def to_dict(self) -> dict[str, float | int | None]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str  # unique within its project
    model: str  # a served model id
    created_at: int  # unix seconds
    updated_at: int
    project_id: str
    defaults: SamplingDefaults = field(default_factory=SamplingDefaults)
    max_tokens_limit: int | None = None
    tokens_per_minute: int | None = None  # None: the server's default quota applies
    requests_per_minute: int | None = None  # None: derived from tokens_per_minute
    content_filter: ContentFilterPolicy = DEFAULT_POLICY

    def __post_init__(self) -> None:
        validate_name(self.name)
        if not isinstance(self.model, str) or not 0 < len(self.model) <= MODEL_MAX_LENGTH:
            raise InvalidDeploymentError(
                f"Invalid value for 'model': give a model id of 1 to {MODEL_MAX_LENGTH} "
                "characters.",
                param="model",
            )
        if (
            not isinstance(self.project_id, str)
            or not 0 < len(self.project_id) <= PROJECT_ID_MAX_LENGTH
        ):
            raise InvalidDeploymentError(
                f"Invalid value for 'project_id': {self.project_id!r}.", param="project_id"
            )
        for param in ("created_at", "updated_at"):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidDeploymentError(
                    f"Invalid value for '{param}': {value!r} is not a unix time.", param=param
                )
        if not isinstance(self.defaults, SamplingDefaults):
            raise InvalidDeploymentError("Invalid value for 'defaults'.", param="defaults")
        if not isinstance(self.content_filter, ContentFilterPolicy):
            raise InvalidDeploymentError(
                "Invalid value for 'content_filter'.", param="content_filter"
            )
        limit = _check_positive_int(self.max_tokens_limit, "max_tokens_limit")
        _check_positive_int(self.tokens_per_minute, "tokens_per_minute")
        _check_positive_int(self.requests_per_minute, "requests_per_minute")
        default = self.defaults.max_tokens
        # A default above the limit would make every request that omits max_tokens fail.
        if limit is not None and default is not None and default > limit:
            raise InvalidDeploymentError(
                f"defaults.max_tokens ({default}) is larger than max_tokens_limit ({limit}).",
                param="defaults.max_tokens",
            )

    @property
    def effective_requests_per_minute(self) -> int | None:
        """The explicit limit, else 6 per 1,000 tokens per minute (at least 1); None if neither
        is set."""
        if self.requests_per_minute is not None:
            return self.requests_per_minute
        if self.tokens_per_minute is None:
            return None
        return requests_per_minute_for(self.tokens_per_minute)

    @classmethod
    def new(
        cls,
        name: str,
        model: str,
        *,
        project_id: str,
        defaults: SamplingDefaults | None = None,
        max_tokens_limit: int | None = None,
        tokens_per_minute: int | None = None,
        requests_per_minute: int | None = None,
        content_filter: ContentFilterPolicy = DEFAULT_POLICY,
        now: int | None = None,
    ) -> Deployment:
        """A deployment created now (or at ``now``, unix seconds)."""
        stamp = int(time.time()) if now is None else now
        return cls(
            name=name,
            model=model,
            created_at=stamp,
            updated_at=stamp,
            project_id=project_id,
            defaults=SamplingDefaults() if defaults is None else defaults,
            max_tokens_limit=max_tokens_limit,
            tokens_per_minute=tokens_per_minute,
            requests_per_minute=requests_per_minute,
            content_filter=content_filter,
        )

    def effective_max_tokens(self, requested: int | None) -> int | None:
        """The request's max_tokens, else the default, else the limit; over the limit raises.

        None means no bound from the deployment (the server's own default applies). Without a
        default, a limited deployment caps the output at its limit rather than leaving it open.
        """
        value = self.defaults.max_tokens if requested is None else requested
        limit = self.max_tokens_limit
        if limit is None:
            return value
        if value is None:
            return limit
        if value > limit:
            raise DeploymentLimitError(self.name, value, limit)
        return value

    def apply_defaults(
        self, temperature: float | None, top_p: float | None
    ) -> tuple[float | None, float | None]:
        """The request's values where given, else the deployment's defaults."""
        return (
            self.defaults.temperature if temperature is None else temperature,
            self.defaults.top_p if top_p is None else top_p,
        )

    def to_dict(self) -> dict[str, Any]:
        """The REST API object."""
        return {
            "id": self.name,
            "object": "deployment",
            "project_id": self.project_id,
            "model": self.model,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": "succeeded",
            "defaults": self.defaults.to_dict(),
            "max_tokens_limit": self.max_tokens_limit,
            "tokens_per_minute": self.tokens_per_minute,
            "requests_per_minute": self.requests_per_minute,
            "content_filter": self.content_filter.to_dict(),
        }


class DeploymentChanges(TypedDict, total=False):
    """Fields an update may change; the project and the name identify it and never change."""

    model: str
    defaults: SamplingDefaults
    max_tokens_limit: int | None
    tokens_per_minute: int | None
    requests_per_minute: int | None
    content_filter: ContentFilterPolicy
