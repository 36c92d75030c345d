"""Gateway: who is calling, may they (quotas), and what they used."""

from ceruleum.gateway.memory_quota import MemoryQuota
from ceruleum.gateway.quota import (
    Admission,
    Charge,
    QuotaBackend,
    QuotaLimit,
    QuotaState,
    QuotaUnavailableError,
    format_duration,
    rate_limit_headers,
    retry_after_headers,
)
from ceruleum.gateway.redis_quota import RedisQuota

__all__ = [
    "Admission",
    "Charge",
    "MemoryQuota",
    "QuotaBackend",
    "QuotaLimit",
    "QuotaState",
    "QuotaUnavailableError",
    "RedisQuota",
    "format_duration",
    "rate_limit_headers",
    "retry_after_headers",
]
