"""Token-bucket arithmetic shared by the quota backends: refill, waits, and the admission.

The backends differ only in where the levels live and how they are updated atomically; the
Redis backend runs the same refill-check-charge in Lua and hands the levels back here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ceruleum.gateway.quota import Admission, Charge, Exceeded, QuotaLimit, QuotaState

# A request that can never fit gets this, so that a client ignoring never_fits backs off.
NEVER_FITS_RETRY_S = 60.0
# A refused request always has a positive wait, even when float rounding says "now".
MIN_RETRY_S = 0.001


@dataclass(frozen=True, slots=True)
class Levels:
    """One scope's bucket levels: may be negative after an overcharge, never above capacity."""

    requests: float
    tokens: float


def refill(level: float, capacity: int, elapsed_s: float) -> float:
    return min(float(capacity), level + max(0.0, elapsed_s) * capacity / 60.0)


def seconds_until(level: float, needed: float, capacity: int) -> float:
    """Seconds of refill until ``level`` reaches ``needed`` (inf if the bucket never refills)."""
    if level >= needed:
        return 0.0
    if capacity <= 0:
        return math.inf
    return (needed - level) * 60.0 / capacity


def seconds_until_full(limit: QuotaLimit, levels: Levels) -> float:
    rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
    return max(seconds_until(levels.requests, rpm, rpm), seconds_until(levels.tokens, tpm, tpm))


def check_request(limits: Sequence[QuotaLimit], tokens: int) -> None:
    if not limits:
        raise ValueError("A quota check needs at least one limit.")
    if len(limits) > 1 and len({limit.scope for limit in limits}) != len(limits):
        # The same scope twice would be charged twice.
        raise ValueError("Each quota scope may appear only once per request.")
    if tokens < 0:
        raise ValueError("A token estimate must not be negative.")


def fits(levels: Levels, tokens: int) -> bool:
    return levels.requests >= 1 and levels.tokens >= tokens


def charged(levels: Levels, tokens: int) -> Levels:
    return Levels(levels.requests - 1, levels.tokens - tokens)


def corrected(limit: QuotaLimit, levels: Levels, refund: int) -> Levels:
    """Give back ``refund`` tokens (negative: charge more, possibly below zero), capped."""
    return Levels(levels.requests, min(float(limit.tokens_per_minute), levels.tokens + refund))


def never_fits(limits: Sequence[QuotaLimit], tokens: int) -> Exceeded | None:
    for limit in limits:
        if limit.requests_per_minute < 1:
            return "requests"
        if tokens > limit.tokens_per_minute:
            return "tokens"
    return None


def admission(
    limits: Sequence[QuotaLimit], tokens: int, admitted: bool, levels: Sequence[Levels]
) -> Admission:
    """The answer for levels after the charge (admitted) or as they stand (refused)."""
    state = quota_state(limits, levels)
    if admitted:
        return Admission(True, state, 0.0, charge=Charge(tuple(limits), tokens))
    never = never_fits(limits, tokens)
    if never is not None:
        return Admission(False, state, NEVER_FITS_RETRY_S, never_fits=True, exceeded=never)
    wait, exceeded = _longest_wait(limits, levels, tokens)
    return Admission(False, state, wait, exceeded=exceeded)


def quota_state(limits: Sequence[QuotaLimit], levels: Sequence[Levels]) -> QuotaState:
    if len(limits) == 1 and len(levels) == 1:  # the common case (no key limits), on every request
        return _state(limits[0], levels[0], limits[0], levels[0])
    pairs = list(zip(limits, levels, strict=True))
    # Fewest remaining wins; on a tie, the one that takes longer to refill.
    by_requests = min(
        pairs,
        key=lambda p: (
            _remaining(p[1].requests),
            -_full_in(p[1].requests, p[0].requests_per_minute),
        ),
    )
    by_tokens = min(
        pairs,
        key=lambda p: (_remaining(p[1].tokens), -_full_in(p[1].tokens, p[0].tokens_per_minute)),
    )
    return _state(*by_requests, *by_tokens)


def _state(
    request_limit: QuotaLimit, request_levels: Levels, token_limit: QuotaLimit, token_levels: Levels
) -> QuotaState:
    return QuotaState(
        limit_requests=request_limit.requests_per_minute,
        limit_tokens=token_limit.tokens_per_minute,
        remaining_requests=_remaining(request_levels.requests),
        remaining_tokens=_remaining(token_levels.tokens),
        reset_requests_s=_full_in(request_levels.requests, request_limit.requests_per_minute),
        reset_tokens_s=_full_in(token_levels.tokens, token_limit.tokens_per_minute),
    )


def _longest_wait(
    limits: Sequence[QuotaLimit], levels: Sequence[Levels], tokens: int
) -> tuple[float, Exceeded]:
    # Buckets only fill while the request waits, so it fits once its slowest bucket does.
    waits: list[tuple[float, Exceeded]] = []
    for limit, level in zip(limits, levels, strict=True):
        waits.append((seconds_until(level.requests, 1, limit.requests_per_minute), "requests"))
        waits.append((seconds_until(level.tokens, tokens, limit.tokens_per_minute), "tokens"))
    wait, exceeded = max(waits, key=lambda w: w[0])
    if math.isinf(wait):  # an overcharged zero-TPM bucket: nothing sensible to promise
        wait = NEVER_FITS_RETRY_S
    return max(wait, MIN_RETRY_S), exceeded


def _remaining(level: float) -> int:
    return max(0, math.floor(level))


def _full_in(level: float, capacity: int) -> float:
    wait = seconds_until(level, capacity, capacity)
    return 0.0 if math.isinf(wait) else wait
