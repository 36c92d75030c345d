"""Prometheus metrics of one server, in a registry of its own (no process-global state).

Counters and histograms are updated by the inference path; the engines' queue and KV-cache
gauges are read from the pool at scrape time, so they cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ceruleum.engine.pool import ModelPool
    from ceruleum.gateway.usage import UsageRecorder

PoolGetter = Callable[[], "ModelPool | None"]

# Label values come from code or from served model names, but a client can name any model: past
# this many distinct values, further ones share one label so that series cannot grow unbounded.
MAX_MODEL_LABELS = 100
OTHER_MODEL = "other"

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 20, 40)


class _EngineCollector(Collector):
    """Engine gauges and the usage recorder's counts, read when Prometheus scrapes."""

    def __init__(self, pool: PoolGetter, usage: UsageRecorder | None) -> None:
        self._pool = pool
        self._usage = usage

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "ceruleum_num_requests_running",
            "Sequences in the engine's running batch.",
            labels=["model"],
        )
        waiting = GaugeMetricFamily(
            "ceruleum_num_requests_waiting", "Sequences waiting to be scheduled.", labels=["model"]
        )
        kv_cache = GaugeMetricFamily(
            "ceruleum_kv_cache_usage_ratio",
            "Share of the engine's KV cache in use (0 to 1).",
            labels=["model"],
        )
        pool = self._pool()
        chats = pool.chat_models if pool is not None else {}
        for model_id, chat in chats.items():
            stats = chat.engine.stats()
            capacity = stats.kv_cache_capacity_tokens
            used = stats.kv_cache_used_tokens / capacity if capacity else 0.0
            running.add_metric([model_id], stats.running)
            waiting.add_metric([model_id], stats.waiting)
            kv_cache.add_metric([model_id], used)
        yield from (running, waiting, kv_cache)
        if self._usage is not None:
            yield CounterMetricFamily(
                "ceruleum_usage_events_dropped",
                "Usage events lost to a full queue (the database was too slow or down).",
                value=self._usage.dropped,
            )
            yield GaugeMetricFamily(
                "ceruleum_usage_events_pending",
                "Usage events waiting to be written to the database.",
                value=self._usage.pending,
            )


_MAX_CACHED_SERIES = 4 * MAX_MODEL_LABELS  # keys include client-named models: keep it bounded


class Metrics:
    def __init__(self, pool_getter: PoolGetter, *, usage: UsageRecorder | None = None) -> None:
        self.registry = CollectorRegistry()
        self._models: set[str] = set()
        self._requests = Counter(
            "ceruleum_requests",
            "Requests answered, by route, model and HTTP status.",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self._tokens = Counter(
            "ceruleum_tokens",
            "Tokens processed, by model and kind (prompt or completion).",
            ["model", "kind"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "ceruleum_request_latency_seconds",
            "Time from request to the last byte of the reply.",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._ttft = Histogram(
            "ceruleum_time_to_first_token_seconds",
            "Time from request to the first generated token.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(pool_getter, usage))
        # The labelled children, found once: labels() costs more than the update it leads to.
        self._request_series: dict[tuple[str, str | None, int], tuple[Counter, Histogram]] = {}
        self._tokens_series: dict[tuple[str | None, str], Counter] = {}
        self._ttft_series: dict[str, Histogram] = {}

    def observe_request(
        self,
        *,
        route: str,
        model: str | None,
        status: int,
        latency_s: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Count one finished request (also a failed or disconnected one)."""
        series = self._request_series.get((route, model, status))
        if series is None:
            label = self._model_label(model)
            series = (
                self._requests.labels(route=route, model=label, status=str(status)),
                self._latency.labels(route=route, model=label),
            )
            if len(self._request_series) < _MAX_CACHED_SERIES:
                self._request_series[(route, model, status)] = series
        requests, latency = series
        requests.inc()
        latency.observe(max(latency_s, 0.0))
        if prompt_tokens > 0:
            self._token_series(model, "prompt").inc(prompt_tokens)
        if completion_tokens > 0:
            self._token_series(model, "completion").inc(completion_tokens)

    def observe_ttft(self, *, model: str, seconds: float) -> None:
        series = self._ttft_series.get(model)
        if series is None:
            series = self._ttft.labels(model=self._model_label(model))
            if len(self._ttft_series) < _MAX_CACHED_SERIES:
                self._ttft_series[model] = series
        series.observe(max(seconds, 0.0))

    def _token_series(self, model: str | None, kind: str) -> Counter:
        # Made on first use only: a model that never counted tokens shows no token series.
        series = self._tokens_series.get((model, kind))
        if series is None:
            series = self._tokens.labels(model=self._model_label(model), kind=kind)
            if len(self._tokens_series) < _MAX_CACHED_SERIES:
                self._tokens_series[(model, kind)] = series
        return series

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)

    def _model_label(self, model: str | None) -> str:
        if model is None:
            return ""
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODEL_LABELS:
            return OTHER_MODEL
        self._models.add(model)
        return model
