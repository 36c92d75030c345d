"""The gateway around one inference request: may this key use this deployment, is there quota,
and, when the request ends however it ends, settle the quota and record usage and metrics.

`finish` is synchronous on purpose: it also runs from a stream's `finally` after the client
disconnected, where the task is being cancelled and no further await may complete. The quota
settlement therefore runs as its own task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from ceruleum.gateway.errors import PermissionDeniedError, RateLimitedError
from ceruleum.gateway.principal import Principal
from ceruleum.gateway.quota import (
    Admission,
    QuotaBackend,
    QuotaLimit,
    rate_limit_headers,
    requests_per_minute_for,
)
from ceruleum.gateway.usage import UsageEvent

logger = logging.getLogger(__name__)

_settling: set[asyncio.Task[None]] = set()  # keeps fire-and-forget settlements alive


class UsageSink(Protocol):
    def record(self, event: UsageEvent) -> None: ...


class MetricsSink(Protocol):
    def observe_request(
        self,
        *,
        route: str,
        model: str | None,
        status: int,
        latency_s: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None: ...

    def observe_ttft(self, *, model: str, seconds: float) -> None: ...


@dataclass(slots=True)
class InferenceGate:
    principal: Principal
    quota: QuotaBackend
    usage: UsageSink
    metrics: MetricsSink
    request_id: str
    route: str  # e.g. "chat.completions"
    operation: str  # Azure's operation name, e.g. "ChatCompletions_Create"
    enforce: bool = True  # False only when the gateway is off (development benchmarks)
    deployment: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    _admission: Admission | None = None
    _first_token_seen: bool = False
    _finished: bool = False

    def authorize(self, deployment: str) -> None:
        if not self.principal.can_infer():
            raise PermissionDeniedError(
                f"This key's role ({self.principal.role}) may not call inference."
            )
        if not self.principal.can_use(deployment):
            raise PermissionDeniedError(f"This key may not use the deployment '{deployment}'.")
        self.deployment = deployment

    async def admit(
        self, *, model: str, estimated_tokens: int, tokens_per_minute: int, requests_per_minute: int
    ) -> None:
        """Charge the estimate to the deployment's and the key's quotas, or raise 429."""
        self.model = model
        if not self.enforce:
            return
        principal = self.principal
        scope = f"deployment:{principal.project_id}:{self.deployment}"
        limits = [QuotaLimit(scope, requests_per_minute, tokens_per_minute)]
        if principal.key_id is not None and (
            principal.tokens_per_minute is not None or principal.requests_per_minute is not None
        ):
            key_tpm = principal.tokens_per_minute
            key_tpm = key_tpm if key_tpm is not None else tokens_per_minute
            key_rpm = principal.requests_per_minute
            key_rpm = key_rpm if key_rpm is not None else requests_per_minute_for(key_tpm)
            limits.append(QuotaLimit(f"key:{principal.key_id}", key_rpm, key_tpm))
        admission = await self.quota.acquire(limits, estimated_tokens)
        if not admission.admitted:
            raise RateLimitedError(admission, operation=self.operation)
        self._admission = admission

    def headers(self) -> dict[str, str]:
        return rate_limit_headers(self._admission.state) if self._admission else {}

    def count(self, *, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens

    def first_token(self) -> None:
        if not self._first_token_seen and self.model is not None:
            self._first_token_seen = True
            self.metrics.observe_ttft(model=self.model, seconds=time.perf_counter() - self.started)

    def finish(self, status: int) -> None:
        """Settle the quota with the real token count and record the request (once)."""
        if self._finished or not self.enforce:
            return
        self._finished = True
        latency_s = time.perf_counter() - self.started
        if self._admission is not None:
            task = asyncio.get_running_loop().create_task(self._settle(self._admission))
            _settling.add(task)
            task.add_done_callback(_settling.discard)
        self.usage.record(
            UsageEvent(
                request_id=self.request_id,
                project_id=self.principal.project_id,
                key_id=self.principal.key_id,
                deployment=self.deployment,
                model=self.model,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                latency_ms=int(latency_s * 1000),
                status=status,
                created_at=datetime.now(UTC),
            )
        )
        self.metrics.observe_request(
            route=self.route,
            model=self.model,
            status=status,
            latency_s=latency_s,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )

    async def _settle(self, admission: Admission) -> None:
        try:
            await self.quota.settle(admission, self.prompt_tokens + self.completion_tokens)
        except Exception:  # a lost correction must not fail anything else
            logger.warning("could not settle the quota of request %s", self.request_id)
