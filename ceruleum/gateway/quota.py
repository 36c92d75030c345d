"""The quota contract: limits, admissions, the backend protocol, and the headers they become.

Each scope (a deployment, an API key, ...) has a requests-per-minute and a tokens-per-minute
token bucket, Azure's way: capacity is the per-minute limit, refilled continuously at
limit/60 per second. A request is admitted only if every scope it touches has a request and
its estimated tokens available, and then it is charged to all of them at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

REQUESTS_PER_THOUSAND_TOKENS = 6  # Azure: 6 requests per minute per 1,000 tokens per minute


def requests_per_minute_for(tokens_per_minute: int) -> int:
    """The requests-per-minute limit Azure derives from a tokens-per-minute quota."""
    return max(1, tokens_per_minute * REQUESTS_PER_THOUSAND_TOKENS // 1000)


Exceeded = Literal["requests", "tokens"]


class QuotaUnavailableError(Exception):
    """The shared quota store could not be reached; the caller decides to fail open or closed."""


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    scope: str  # e.g. "deployment:<id>" or "key:<id>"
    requests_per_minute: int
    tokens_per_minute: int

    def __post_init__(self) -> None:
        if not self.scope:
            raise ValueError("A quota scope must not be empty.")
        if self.requests_per_minute < 0 or self.tokens_per_minute < 0:
            raise ValueError(f"Quota limits of '{self.scope}' must not be negative.")


@dataclass(frozen=True, slots=True)
class QuotaState:
    """The numbers for the x-ratelimit-* headers.

    Each dimension reports its most constraining scope (the fewest remaining), so the
    request numbers and the token numbers may come from different scopes.
    """

    limit_requests: int
    limit_tokens: int
    remaining_requests: int  # floored at 0
    remaining_tokens: int  # floored at 0
    reset_requests_s: float  # seconds until that bucket is full again
    reset_tokens_s: float


@dataclass(frozen=True, slots=True)
class Charge:
    """What an admitted request took, so that settle() can correct it. Opaque to callers."""

    limits: tuple[QuotaLimit, ...]
    tokens: int


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    state: QuotaState
    retry_after_s: float  # > 0 when not admitted
    never_fits: bool = False  # the request can never be admitted: the estimate exceeds a TPM
    charge: Charge | None = None  # set when admitted; hand the admission back to settle()
    exceeded: Exceeded | None = None  # which limit refused it


class QuotaBackend(Protocol):
    async def acquire(self, limits: Sequence[QuotaLimit], tokens: int) -> Admission:
        """Admit and charge 1 request and ``tokens`` to every scope, or charge nothing."""
        ...

    async def settle(self, admission: Admission, actual_tokens: int) -> None:
        """Correct an admitted request's charge to the real token count; call it once."""
        ...

    async def close(self) -> None: ...


def rate_limit_headers(state: QuotaState) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers."""
    return {
        "x-ratelimit-limit-requests": str(state.limit_requests),
        "x-ratelimit-limit-tokens": str(state.limit_tokens),
        "x-ratelimit-remaining-requests": str(state.remaining_requests),
        "x-ratelimit-remaining-tokens": str(state.remaining_tokens),
        "x-ratelimit-reset-requests": format_duration(state.reset_requests_s),
        "x-ratelimit-reset-tokens": format_duration(state.reset_tokens_s),
    }


def retry_after_headers(admission: Admission) -> dict[str, str]:
    """Azure's retry-after (whole seconds) and retry-after-ms; empty for an admitted request."""
    if admission.admitted:
        return {}
    # Round up, so that a client that waits exactly this long finds the capacity there.
    ms = max(1, _ceil_ms(admission.retry_after_s))
    return {"retry-after": str(max(1, math.ceil(ms / 1000))), "retry-after-ms": str(ms)}


def format_duration(seconds: float) -> str:
    """OpenAI's duration strings (Go's style): "0s", "6ms", "1.5s", "1m2s", "6m0s", "1h0m0s"."""
    ms = max(0, _ceil_ms(seconds))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, frac = divmod(ms, 1000)
    text = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _ceil_ms(seconds: float) -> int:
    # Rounding first keeps float noise (2.0000000001 s) from adding a millisecond.
    return math.ceil(round(seconds * 1000, 6))
