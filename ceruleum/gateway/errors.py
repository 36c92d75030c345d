"""Gateway exceptions; api/errors.py turns them into 401/403/429 in the route's dialect."""

from __future__ import annotations

from ceruleum.gateway.quota import Admission


class AuthenticationError(Exception):
    def __init__(self, *, missing: bool = False) -> None:
        self.missing = missing
        super().__init__("missing API key" if missing else "invalid API key")


class PermissionDeniedError(Exception):
    """The key is valid but its role or allowed deployments do not permit this."""


class RateLimitedError(Exception):
    def __init__(self, admission: Admission, *, operation: str) -> None:
        self.admission = admission
        self.operation = operation
        super().__init__(f"rate limit exceeded ({admission.exceeded})")
