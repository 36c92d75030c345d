"""RedisQuota: token buckets in Redis, so that several gateway processes share one quota exactly."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from ceruleum.gateway import _bucket, _quota_lua
from ceruleum.gateway._bucket import Levels
from ceruleum.gateway.quota import Admission, QuotaLimit, QuotaUnavailableError

DEFAULT_PREFIX = "ceruleum:quota:"


class RedisQuota:
    """Quota shared through Redis.

    Check-and-charge across all of a request's scopes is one Lua script, so it is atomic
    however many processes call it, and it reads Redis's clock, so theirs do not matter.
    Every Redis failure surfaces as QuotaUnavailableError.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        idle_ttl_s: float = 120.0,
        timeout_s: float = 2.0,
        max_connections: int = 50,
    ) -> None:
        self._prefix = prefix
        self._idle_ms = int(idle_ttl_s * 1000)
        # A burst beyond the pool waits for a connection rather than failing (the default
        # pool raises), and a stalled Redis must not stall every request with it.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._redis = Redis.from_pool(pool)
        # register_script runs EVALSHA and loads the script again if Redis has lost it.
        self._acquire = self._redis.register_script(_quota_lua.ACQUIRE)
        self._settle = self._redis.register_script(_quota_lua.SETTLE)

    async def acquire(self, limits: Sequence[QuotaLimit], tokens: int) -> Admission:
        _bucket.check_request(limits, tokens)
        try:
            reply = await self._acquire(keys=self._keys(limits), args=self._args(tokens, limits))
        except RedisError as exc:
            raise QuotaUnavailableError(f"The quota store is unavailable: {exc}") from exc
        numbers = [float(value) for value in reply[1:]]
        levels = [Levels(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)]
        return _bucket.admission(limits, tokens, int(reply[0]) == 1, levels)

    async def settle(self, admission: Admission, actual_tokens: int) -> None:
        if actual_tokens < 0:
            raise ValueError("A token count must not be negative.")
        charge = admission.charge
        if charge is None or charge.tokens == actual_tokens:
            return
        refund = charge.tokens - actual_tokens
        try:
            await self._settle(
                keys=self._keys(charge.limits), args=self._args(refund, charge.limits)
            )
        except RedisError as exc:
            raise QuotaUnavailableError(f"The quota store is unavailable: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose()

    def _keys(self, limits: Sequence[QuotaLimit]) -> list[str]:
        return [self._prefix + limit.scope for limit in limits]

    def _args(self, tokens: int, limits: Sequence[QuotaLimit]) -> list[int]:
        args = [tokens, self._idle_ms]
        for limit in limits:
            args += [limit.requests_per_minute, limit.tokens_per_minute]
        return args
