"""MemoryQuota: token buckets in a dict, for a single gateway process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ceruleum.gateway import _bucket
from ceruleum.gateway._bucket import Levels
from ceruleum.gateway.quota import Admission, QuotaLimit


@dataclass(frozen=True, slots=True)
class _Bucket:
    levels: Levels
    at: float  # clock reading when the levels were stored
    full_at: float  # from then on the bucket is full: the same as having no bucket


class MemoryQuota:
    """Quota for one process on one event loop.

    Check and charge run with no await between them, so concurrent tasks on the loop cannot
    both take the last request. Not for use from several threads or event loops at once.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, prune_every_s: float = 60.0
    ) -> None:
        self._clock = clock
        self._prune_every_s = prune_every_s
        self._next_prune = clock() + prune_every_s
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        """How many scopes hold a bucket that is not full."""
        return len(self._buckets)

    async def acquire(self, limits: Sequence[QuotaLimit], tokens: int) -> Admission:
        _bucket.check_request(limits, tokens)
        now = self._clock()
        self._prune(now)
        levels = [self._levels(limit, now) for limit in limits]
        admitted = all(_bucket.fits(level, tokens) for level in levels)
        if admitted:
            levels = [_bucket.charged(level, tokens) for level in levels]
            for limit, level in zip(limits, levels, strict=True):
                self._store(limit, level, now)
        return _bucket.admission(limits, tokens, admitted, levels)

    async def settle(self, admission: Admission, actual_tokens: int) -> None:
        if actual_tokens < 0:
            raise ValueError("A token count must not be negative.")
        charge = admission.charge
        if charge is None or charge.tokens == actual_tokens:
            return
        now = self._clock()
        for limit in charge.limits:
            level = self._levels(limit, now)
            self._store(limit, _bucket.corrected(limit, level, charge.tokens - actual_tokens), now)

    async def close(self) -> None:
        self._buckets.clear()

    def _levels(self, limit: QuotaLimit, now: float) -> Levels:
        bucket = self._buckets.get(limit.scope)
        if bucket is None:
            return Levels(float(limit.requests_per_minute), float(limit.tokens_per_minute))
        elapsed = now - bucket.at
        return Levels(
            _bucket.refill(bucket.levels.requests, limit.requests_per_minute, elapsed),
            _bucket.refill(bucket.levels.tokens, limit.tokens_per_minute, elapsed),
        )

    def _store(self, limit: QuotaLimit, levels: Levels, now: float) -> None:
        full_at = now + _bucket.seconds_until_full(limit, levels)
        self._buckets[limit.scope] = _Bucket(levels, now, full_at)

    def _prune(self, now: float) -> None:
        # A full bucket reads the same as an absent one, so dropping it loses nothing.
        if now < self._next_prune:
            return
        self._next_prune = now + self._prune_every_s
        for scope in [s for s, bucket in self._buckets.items() if bucket.full_at <= now]:
            del self._buckets[scope]
