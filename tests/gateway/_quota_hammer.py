"""Hammer one Redis quota scope from its own process, for test_quota's multi-process test.

Usage: python -m tests.gateway._quota_hammer URL PREFIX SCOPE RPM ATTEMPTS
Prints "ready", waits for a line on stdin, fires ATTEMPTS acquisitions at once, prints how
many were admitted.
"""

from __future__ import annotations

import asyncio
import sys

from ceruleum.gateway import QuotaLimit, RedisQuota


async def main(url: str, prefix: str, scope: str, rpm: int, attempts: int) -> int:
    quota = RedisQuota(url, prefix=prefix)
    limit = QuotaLimit(scope, requests_per_minute=rpm, tokens_per_minute=1_000_000)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        admissions = await asyncio.gather(*(quota.acquire([limit], 1) for _ in range(attempts)))
        return sum(admission.admitted for admission in admissions)
    finally:
        await quota.close()


if __name__ == "__main__":
    url, prefix, scope, rpm, attempts = sys.argv[1:6]
    print(asyncio.run(main(url, prefix, scope, int(rpm), int(attempts))), flush=True)
