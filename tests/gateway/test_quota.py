"""Quota backends (in memory and on a real Redis) and the headers their answers become."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio

from ceruleum.gateway import (
    Admission,
    MemoryQuota,
    QuotaBackend,
    QuotaLimit,
    QuotaState,
    QuotaUnavailableError,
    RedisQuota,
    format_duration,
    rate_limit_headers,
    retry_after_headers,
)

REDIS_URL = os.environ.get("CERULEUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]
BIG = 1_000_000  # a limit that a test does not mean to reach


def limit(scope: str, rpm: int = BIG, tpm: int = BIG) -> QuotaLimit:
    return QuotaLimit(scope, requests_per_minute=rpm, tokens_per_minute=tpm)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    quota: QuotaBackend
    advance: Callable[[float], Awaitable[None]]  # let time pass: a fake clock or a real sleep
    prefix: str = ""  # the Redis key prefix, when on Redis


def redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        with client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not redis_reachable(REDIS_URL):
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CERULEUM_TEST_REDIS_URL)")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, and its keys removed afterwards."""
    prefix = f"ceruleum:test:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()

        async def tick(seconds: float) -> None:
            clock.now += seconds

        quota = MemoryQuota(clock=clock)
        yield Harness(quota, tick)
        await quota.close()
        return
    prefix: str = request.getfixturevalue("redis_prefix")
    redis_quota = RedisQuota(REDIS_URL, prefix=prefix)
    yield Harness(redis_quota, asyncio.sleep, prefix)
    await redis_quota.close()


# --- admission and refusal -------------------------------------------------------------


async def test_admits_up_to_the_request_limit_then_refuses(harness: Harness) -> None:
    scope = limit("deployment:a", rpm=5, tpm=1000)
    for expected_remaining in [4, 3, 2, 1, 0]:
        admission = await harness.quota.acquire([scope], 10)
        assert admission.admitted
        assert admission.charge is not None
        assert admission.retry_after_s == 0
        assert admission.state.remaining_requests == expected_remaining
        assert admission.state.limit_requests == 5
    refused = await harness.quota.acquire([scope], 10)
    assert not refused.admitted
    assert refused.exceeded == "requests"
    assert not refused.never_fits
    assert refused.charge is None
    # One request refills in 60 / 5 = 12 s.
    assert 11 < refused.retry_after_s <= 12
    assert refused.state.remaining_requests == 0
    # Redis's clock runs on during the test: allow a token or two of refill.
    assert 950 <= refused.state.remaining_tokens <= 952


async def test_token_limit_is_enforced(harness: Harness) -> None:
    scope = limit("deployment:a", rpm=100, tpm=100)
    first = await harness.quota.acquire([scope], 40)
    second = await harness.quota.acquire([scope], 40)
    assert first.admitted and second.admitted
    assert (first.state.remaining_tokens, second.state.remaining_tokens) == (60, 20)
    refused = await harness.quota.acquire([scope], 40)
    assert not refused.admitted
    assert refused.exceeded == "tokens"
    # 20 tokens short, refilling at 100 / 60 per second.
    assert 11 < refused.retry_after_s <= 12
    assert refused.state.remaining_requests == 98  # the refusal took no request
    # A smaller request still fits in what is left.
    assert (await harness.quota.acquire([scope], 20)).admitted


async def test_requests_refill_over_time(harness: Harness) -> None:
    scope = limit("key:a", rpm=120)  # 2 requests per second
    admissions = await asyncio.gather(*(harness.quota.acquire([scope], 1) for _ in range(120)))
    assert all(a.admitted for a in admissions)
    refused = await harness.quota.acquire([scope], 1)
    assert not refused.admitted
    assert 0.4 < refused.retry_after_s <= 0.5
    await harness.advance(refused.retry_after_s + 0.05)
    assert (await harness.quota.acquire([scope], 1)).admitted


async def test_tokens_refill_over_time(harness: Harness) -> None:
    scope = limit("key:a", tpm=6000)  # 100 tokens per second
    full = await harness.quota.acquire([scope], 6000)  # exactly the capacity fits
    assert full.admitted
    assert full.state.remaining_tokens == 0
    assert 59 < full.state.reset_tokens_s <= 60
    refused = await harness.quota.acquire([scope], 30)
    assert not refused.admitted
    assert refused.exceeded == "tokens"
    assert 0.25 < refused.retry_after_s <= 0.3
    await harness.advance(refused.retry_after_s + 0.05)
    assert (await harness.quota.acquire([scope], 30)).admitted


async def test_a_refusal_by_one_scope_charges_no_other(harness: Harness) -> None:
    roomy = limit("key:a", rpm=10, tpm=1000)
    tight = limit("deployment:b", rpm=1, tpm=1000)
    assert (await harness.quota.acquire([roomy, tight], 100)).admitted  # roomy: 9 left
    refused = await harness.quota.acquire([roomy, tight], 100)
    assert not refused.admitted
    assert refused.exceeded == "requests"
    # The headers show the scope that is out of requests.
    assert refused.state.limit_requests == 1
    assert refused.state.remaining_requests == 0
    alone = await harness.quota.acquire([roomy], 100)
    assert alone.admitted
    assert alone.state.remaining_requests == 8  # not 7: the refusal took nothing
    assert 800 <= alone.state.remaining_tokens <= 805


async def test_a_token_refusal_by_one_scope_charges_no_other(harness: Harness) -> None:
    roomy = limit("key:a", tpm=1000)
    tight = limit("deployment:b", tpm=150)
    assert (await harness.quota.acquire([roomy, tight], 100)).admitted
    refused = await harness.quota.acquire([tight, roomy], 100)
    assert not refused.admitted
    assert refused.exceeded == "tokens"
    assert refused.state.limit_tokens == 150
    alone = await harness.quota.acquire([roomy], 0)
    assert 900 <= alone.state.remaining_tokens <= 905  # 800 had the refusal charged it


async def test_headers_report_the_most_constraining_scope_per_limit(harness: Harness) -> None:
    few_requests = limit("key:a", rpm=3, tpm=10_000)
    few_tokens = limit("deployment:b", rpm=1000, tpm=500)
    admission = await harness.quota.acquire([few_tokens, few_requests], 100)
    assert admission.state.limit_requests == 3
    assert admission.state.remaining_requests == 2
    assert admission.state.limit_tokens == 500
    assert admission.state.remaining_tokens == 400
    assert 19.9 < admission.state.reset_requests_s <= 20  # 1 request at 3 a minute
    assert 11.9 < admission.state.reset_tokens_s <= 12


# --- never fits ------------------------------------------------------------------------


async def test_an_estimate_above_the_token_capacity_never_fits(harness: Harness) -> None:
    scope = limit("deployment:a", rpm=10, tpm=1000)
    other = limit("key:b", rpm=10, tpm=100_000)
    refused = await harness.quota.acquire([other, scope], 1001)
    assert not refused.admitted
    assert refused.never_fits
    assert refused.exceeded == "tokens"
    assert refused.retry_after_s > 0
    assert refused.charge is None
    # Nothing was charged, to either scope.
    admitted = await harness.quota.acquire([other, scope], 1000)
    assert admitted.admitted
    assert not admitted.never_fits
    assert admitted.state.remaining_requests == 9


async def test_a_scope_without_requests_never_fits(harness: Harness) -> None:
    refused = await harness.quota.acquire([limit("key:a", rpm=0)], 1)
    assert refused.never_fits
    assert refused.exceeded == "requests"


async def test_a_bucket_exhausted_for_now_is_not_never_fits(harness: Harness) -> None:
    scope = limit("deployment:a", tpm=1000)
    assert (await harness.quota.acquire([scope], 600)).admitted
    refused = await harness.quota.acquire([scope], 600)
    assert not refused.admitted
    assert not refused.never_fits


# --- settle ----------------------------------------------------------------------------


async def test_settle_refunds_unused_tokens(harness: Harness) -> None:
    scope = limit("deployment:a", tpm=1000)
    first = await harness.quota.acquire([scope], 800)
    assert first.admitted
    assert not (await harness.quota.acquire([scope], 800)).admitted
    await harness.quota.settle(first, 100)  # 700 tokens come back
    second = await harness.quota.acquire([scope], 800)
    assert second.admitted
    assert 100 <= second.state.remaining_tokens <= 102


async def test_settle_charges_extra_tokens_and_can_go_negative(harness: Harness) -> None:
    scope = limit("deployment:a", tpm=1000)
    first = await harness.quota.acquire([scope], 500)
    await harness.quota.settle(first, 1400)  # 900 more: the bucket is 400 below zero
    refused = await harness.quota.acquire([scope], 1)
    assert not refused.admitted
    assert refused.exceeded == "tokens"
    assert refused.state.remaining_tokens == 0  # floored in the headers
    assert 23 < refused.retry_after_s <= 401 * 60 / 1000
    assert refused.state.reset_tokens_s > 60  # longer than a minute back to full


async def test_settle_corrects_every_scope_it_charged(harness: Harness) -> None:
    key = limit("key:a", tpm=1000)
    deployment = limit("deployment:b", tpm=2000)
    first = await harness.quota.acquire([key, deployment], 900)
    await harness.quota.settle(first, 0)
    assert (await harness.quota.acquire([key], 1000)).admitted
    assert (await harness.quota.acquire([deployment], 2000)).admitted


async def test_a_refund_never_lifts_a_bucket_above_its_capacity(harness: Harness) -> None:
    scope = limit("deployment:a", tpm=6000)  # 100 tokens per second
    first = await harness.quota.acquire([scope], 50)
    await harness.advance(0.6)  # full again
    await harness.quota.settle(first, 0)
    assert (await harness.quota.acquire([scope], 6000)).admitted
    # An uncapped refund would have left 50 tokens here.
    assert not (await harness.quota.acquire([scope], 50)).admitted


async def test_settle_ignores_a_refusal(harness: Harness) -> None:
    scope = limit("deployment:a", rpm=1)
    assert (await harness.quota.acquire([scope], 10)).admitted
    refused = await harness.quota.acquire([scope], 10)
    await harness.quota.settle(refused, 0)
    assert not (await harness.quota.acquire([scope], 10)).admitted


# --- bad requests ----------------------------------------------------------------------


async def test_bad_requests_are_rejected(harness: Harness) -> None:
    with pytest.raises(ValueError, match="at least one"):
        await harness.quota.acquire([], 1)
    with pytest.raises(ValueError, match="only once"):
        await harness.quota.acquire([limit("key:a"), limit("key:a", rpm=5)], 1)
    with pytest.raises(ValueError, match="negative"):
        await harness.quota.acquire([limit("key:a")], -1)
    admission = await harness.quota.acquire([limit("key:a")], 1)
    with pytest.raises(ValueError, match="negative"):
        await harness.quota.settle(admission, -1)
    with pytest.raises(ValueError, match="negative"):
        limit("key:a", rpm=-1)


# --- concurrency -----------------------------------------------------------------------


async def test_concurrent_acquires_never_exceed_the_request_limit(harness: Harness) -> None:
    scope = limit("deployment:a", rpm=20)
    admissions = await asyncio.gather(*(harness.quota.acquire([scope], 10) for _ in range(50)))
    assert sum(a.admitted for a in admissions) == 20
    assert {a.exceeded for a in admissions if not a.admitted} == {"requests"}


async def test_concurrent_acquires_never_exceed_the_token_limit(harness: Harness) -> None:
    scope = limit("deployment:a", rpm=1000, tpm=1000)  # exactly 10 estimates of 100
    admissions = await asyncio.gather(*(harness.quota.acquire([scope], 100) for _ in range(50)))
    assert sum(a.admitted for a in admissions) == 10
    assert {a.exceeded for a in admissions if not a.admitted} == {"tokens"}


def test_processes_sharing_redis_never_exceed_the_limit(redis_url: str, redis_prefix: str) -> None:
    rpm, attempts = 30, 40
    command = [sys.executable, "-m", "tests.gateway._quota_hammer", redis_url, redis_prefix]
    command += ["deployment:shared", str(rpm), str(attempts)]
    workers = [
        subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    try:
        for worker in workers:  # all connected before any starts
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        started = time.monotonic()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        counts = [int(worker.communicate(timeout=15)[0]) for worker in workers]
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert all(worker.returncode == 0 for worker in workers)
    # All the capacity is used, plus at most what refilled while they ran.
    assert rpm <= sum(counts) <= rpm + math.floor(rpm / 60 * elapsed)


# --- backend details -------------------------------------------------------------------


async def test_memory_quota_prunes_buckets_that_are_full_again() -> None:
    clock = FakeClock()
    quota = MemoryQuota(clock=clock, prune_every_s=10)
    await quota.acquire([limit("key:a", rpm=60)], 1)  # full again in 1 s
    await quota.acquire([limit("key:b", rpm=1)], 1)  # full again in 60 s
    assert len(quota) == 2
    clock.now += 11
    await quota.acquire([limit("key:c")], 1)
    assert len(quota) == 2  # key:a gone, key:c added
    clock.now += 60
    await quota.acquire([limit("key:a", rpm=60)], 1)
    assert len(quota) == 1


async def test_redis_buckets_are_hashes_that_expire(redis_url: str, redis_prefix: str) -> None:
    quota = RedisQuota(redis_url, prefix=redis_prefix, idle_ttl_s=120)
    try:
        await quota.acquire([limit("key:a", rpm=60, tpm=6000)], 3000)  # full again in 30 s
    finally:
        await quota.close()
    async with redis.asyncio.Redis.from_url(redis_url, decode_responses=True) as client:
        stored = await client.hgetall(redis_prefix + "key:a")
        ttl_ms = await client.pttl(redis_prefix + "key:a")
    assert set(stored) == {"level_requests", "level_tokens", "ts"}
    assert float(stored["level_requests"]) == pytest.approx(59, abs=0.01)
    assert float(stored["level_tokens"]) == pytest.approx(3000, abs=1)
    assert 149_000 < ttl_ms <= 150_000  # 30 s to refill, then 2 minutes idle


async def test_redis_unreachable_raises_quota_unavailable() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    quota = RedisQuota(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
    try:
        with pytest.raises(QuotaUnavailableError):
            await quota.acquire([limit("key:a")], 1)
    finally:
        await quota.close()


# --- headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "1ms"),
        (0.006, "6ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (7.66, "7.66s"),
        (17.9321, "17.933s"),
        (62, "1m2s"),
        (360, "6m0s"),
        (179.56, "2m59.56s"),
        (3600, "1h0m0s"),
        (3723.25, "1h2m3.25s"),
    ],
)
def test_durations_read_like_openai(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_rate_limit_headers() -> None:
    state = QuotaState(
        limit_requests=60,
        limit_tokens=10_000,
        remaining_requests=59,
        remaining_tokens=9_000,
        reset_requests_s=1,
        reset_tokens_s=6.0,
    )
    assert rate_limit_headers(state) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "9000",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6s",
    }


@pytest.mark.parametrize(
    ("retry_after_s", "expected"),
    [
        (0.2, {"retry-after": "1", "retry-after-ms": "200"}),
        (0.0001, {"retry-after": "1", "retry-after-ms": "1"}),
        (2.0, {"retry-after": "2", "retry-after-ms": "2000"}),
        (2.0001, {"retry-after": "3", "retry-after-ms": "2001"}),
        (24.06, {"retry-after": "25", "retry-after-ms": "24060"}),
    ],
)
def test_retry_after_headers(retry_after_s: float, expected: dict[str, str]) -> None:
    assert retry_after_headers(_refusal(retry_after_s)) == expected


def test_an_admitted_request_has_no_retry_after() -> None:
    admitted = Admission(True, _refusal(0).state, 0.0)
    assert retry_after_headers(admitted) == {}


def _refusal(retry_after_s: float) -> Admission:
    state = QuotaState(1, 1, 0, 0, 1.0, 1.0)
    return Admission(False, state, retry_after_s, exceeded="requests")
