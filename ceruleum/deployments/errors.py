"""Deployment exceptions. The API layer maps them to HTTP errors in ``api/errors.py``."""

from __future__ import annotations


class DeploymentError(Exception):
    """Base class for deployment errors."""


class DeploymentNotFoundError(DeploymentError):
    """No deployment has this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"The deployment '{name}' does not exist.")


class DeploymentExistsError(DeploymentError):
    """A deployment with this name already exists."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"A deployment named '{name}' already exists.")


class InvalidDeploymentError(DeploymentError):
    """A deployment's fields are invalid; ``param`` names the field as the API spells it."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(message)


class DeploymentLimitError(DeploymentError):
    """A request asks for more output tokens than its deployment allows."""

    def __init__(self, deployment: str, requested: int, limit: int) -> None:
        self.deployment = deployment
        self.requested = requested
        self.limit = limit
        super().__init__(
            f"max_tokens is {requested}, but the deployment '{deployment}' allows at most "
            f"{limit} output tokens per request."
        )
