"""Prometheus metrics: counters and histograms after observations, engine gauges at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ceruleum.engine.async_engine import EngineStats
from ceruleum.gateway.metrics import MAX_MODEL_LABELS, OTHER_MODEL, Metrics
from ceruleum.gateway.usage import UsageRecorder
from ceruleum.store import Database, database_url
from tests.gateway.test_usage_recorder import event


@dataclass
class FakeEngine:
    running: int = 0
    waiting: int = 0
    used: int = 0
    capacity: int = 1000

    def stats(self) -> EngineStats:
        return EngineStats(
            alive=True,
            running=self.running,
            waiting=self.waiting,
            kv_cache_used_tokens=self.used,
            kv_cache_capacity_tokens=self.capacity,
            prefix_cache_entries=0,
            prefix_cache_tokens=0,
        )


@dataclass
class FakeChat:
    engine: FakeEngine


@dataclass
class FakePool:
    chat_models: dict[str, FakeChat] = field(default_factory=dict)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def families(metrics: Metrics) -> set[str]:
    return {family.name for family in text_string_to_metric_families(metrics.render().decode())}


def test_requests_tokens_and_latency_after_observations() -> None:
    metrics = Metrics(lambda: None)
    for status in (200, 200, 500):
        metrics.observe_request(
            route="/v1/chat/completions",
            model="smol",
            status=status,
            latency_s=0.3,
            prompt_tokens=10,
            completion_tokens=4,
        )
    metrics.observe_ttft(model="smol", seconds=0.02)
    found = samples(metrics)
    route = ("route", "/v1/chat/completions")
    assert found[("ceruleum_requests_total", (("model", "smol"), route, ("status", "200")))] == 2
    assert found[("ceruleum_requests_total", (("model", "smol"), route, ("status", "500")))] == 1
    assert found[("ceruleum_tokens_total", (("kind", "prompt"), ("model", "smol")))] == 30
    assert found[("ceruleum_tokens_total", (("kind", "completion"), ("model", "smol")))] == 12
    assert found[("ceruleum_request_latency_seconds_count", (("model", "smol"), route))] == 3
    latency_sum = found[("ceruleum_request_latency_seconds_sum", (("model", "smol"), route))]
    assert latency_sum == pytest.approx(0.9)
    assert found[("ceruleum_time_to_first_token_seconds_count", (("model", "smol"),))] == 1
    le = (("le", "0.025"), ("model", "smol"))
    assert found[("ceruleum_time_to_first_token_seconds_bucket", le)] == 1
    assert {
        "ceruleum_requests",
        "ceruleum_tokens",
        "ceruleum_request_latency_seconds",
        "ceruleum_time_to_first_token_seconds",
        "ceruleum_num_requests_running",
        "ceruleum_num_requests_waiting",
        "ceruleum_kv_cache_usage_ratio",
    } <= families(metrics)


def test_a_request_without_a_model_or_tokens() -> None:
    metrics = Metrics(lambda: None)
    metrics.observe_request(
        route="/v1/embeddings",
        model=None,
        status=401,
        latency_s=0.001,
        prompt_tokens=0,
        completion_tokens=0,
    )
    found = samples(metrics)
    key = (("model", ""), ("route", "/v1/embeddings"), ("status", "401"))
    assert found[("ceruleum_requests_total", key)] == 1
    assert not any(name == "ceruleum_tokens_total" for name, _ in found)


def test_engine_gauges_are_read_at_scrape_time() -> None:
    engine = FakeEngine(running=3, waiting=1, used=250, capacity=1000)
    pool = FakePool({"smol": FakeChat(engine), "idle": FakeChat(FakeEngine(capacity=0))})
    metrics = Metrics(lambda: pool)  # type: ignore[arg-type, return-value]
    found = samples(metrics)
    assert found[("ceruleum_num_requests_running", (("model", "smol"),))] == 3
    assert found[("ceruleum_num_requests_waiting", (("model", "smol"),))] == 1
    assert found[("ceruleum_kv_cache_usage_ratio", (("model", "smol"),))] == 0.25
    assert found[("ceruleum_kv_cache_usage_ratio", (("model", "idle"),))] == 0
    engine.running, engine.used = 0, 0
    found = samples(metrics)
    assert found[("ceruleum_num_requests_running", (("model", "smol"),))] == 0
    assert found[("ceruleum_kv_cache_usage_ratio", (("model", "smol"),))] == 0


def test_no_pool_yet_still_scrapes() -> None:
    assert "ceruleum_num_requests_running" in families(Metrics(lambda: None))


async def test_dropped_and_pending_usage_events(tmp_path: Path) -> None:
    database = Database(database_url(None, tmp_path))
    recorder = UsageRecorder(database, max_queue=1)
    metrics = Metrics(lambda: None, usage=recorder)
    recorder.record(event(1))
    recorder.record(event(2))
    found = samples(metrics)
    assert found[("ceruleum_usage_events_dropped_total", ())] == 1
    assert found[("ceruleum_usage_events_pending", ())] == 1
    await database.close()


def test_model_labels_are_bounded() -> None:
    metrics = Metrics(lambda: None)
    for n in range(MAX_MODEL_LABELS + 5):
        metrics.observe_ttft(model=f"m{n}", seconds=0.1)
    models = {
        dict(labels)["model"]
        for name, labels in samples(metrics)
        if name == "ceruleum_time_to_first_token_seconds_count"
    }
    assert len(models) == MAX_MODEL_LABELS + 1
    assert OTHER_MODEL in models


def test_each_instance_has_its_own_registry() -> None:
    first, second = Metrics(lambda: None), Metrics(lambda: None)
    first.observe_ttft(model="smol", seconds=0.1)
    found: dict[Any, float] = samples(second)
    assert ("ceruleum_time_to_first_token_seconds_count", (("model", "smol"),)) not in found
