"""The "engine dies" path: requests in flight fail fast, new ones are refused, and the API says
503 (health and generation) instead of hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ceruleum.engine.async_engine import AsyncEngine, EngineConfig
from ceruleum.engine.errors import EngineDeadError
from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.outputs import SequenceOutput
from ceruleum.engine.pool import ModelPool
from ceruleum.engine.registry import DEFAULT_CHAT_MODEL, resolve_chat_model
from ceruleum.engine.sampling import SamplingParams
from ceruleum.server import build_app
from ceruleum.settings import Settings

PROMPT_TEXT = "<|im_start|>user\nTell me a long story about a lighthouse.<|im_end|>\n"
PROMPT_TEXT += "<|im_start|>assistant\n"
DEATH_TIMEOUT_S = 5.0


class SimulatedCrash(RuntimeError):
    pass


def kill_engine(engine: AsyncEngine, *, healthy_steps: int = 1) -> list[int]:
    """Make the engine loop crash: its core's step works `healthy_steps` times, then raises."""
    core = engine._core
    original = core.step
    calls = [0]

    def step() -> list[SequenceOutput]:
        calls[0] += 1
        if calls[0] > healthy_steps:
            raise SimulatedCrash("simulated failure inside the engine step")
        return original()

    core.step = step  # type: ignore[method-assign]
    return calls


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaModel]:
    m = LlamaModel(resolve_chat_model(DEFAULT_CHAT_MODEL).path)
    yield m
    m.close()


@pytest.fixture
async def engine(model: LlamaModel) -> AsyncIterator[AsyncEngine]:
    eng = AsyncEngine(
        model,
        EngineConfig(
            context_window=512,
            kv_cache_tokens=1024,
            max_sequences=4,
            max_batch_tokens=64,
            n_threads=1,
        ),
    )
    eng.start()
    yield eng
    eng.shutdown()


def prompt(model: LlamaModel) -> list[int]:
    tokens = model.tokenize(PROMPT_TEXT, add_special=False, parse_special=True)
    assert len(tokens) < 64  # one step prefills it and samples the first token
    return tokens


async def test_in_flight_generate_raises_engine_dead(
    engine: AsyncEngine, model: LlamaModel
) -> None:
    assert engine.alive
    calls = kill_engine(engine)
    received: list[SequenceOutput] = []

    async def consume() -> None:
        async for output in engine.generate("doomed", prompt(model), SamplingParams(200, 0.0)):
            received.append(output)

    started = time.monotonic()
    with pytest.raises(EngineDeadError):
        await asyncio.wait_for(consume(), DEATH_TIMEOUT_S)
    assert time.monotonic() - started < DEATH_TIMEOUT_S
    assert calls[0] == 2  # the first step ran, the second crashed
    assert len(received) == 1  # the first step's token was delivered before the failure
    assert not received[0].finished

    assert not engine.alive
    assert not engine.stats().alive


async def test_every_in_flight_request_fails(engine: AsyncEngine, model: LlamaModel) -> None:
    kill_engine(engine, healthy_steps=3)

    async def consume(request_id: str) -> int:
        count = 0
        async for _ in engine.generate(request_id, prompt(model), SamplingParams(200, 0.0)):
            count += 1
        return count

    results = await asyncio.wait_for(
        asyncio.gather(*(consume(f"r{i}") for i in range(3)), return_exceptions=True),
        DEATH_TIMEOUT_S,
    )
    assert all(isinstance(r, EngineDeadError) for r in results), results
    assert not engine.alive


async def test_new_generate_after_death_raises_immediately(
    engine: AsyncEngine, model: LlamaModel
) -> None:
    kill_engine(engine, healthy_steps=0)
    with pytest.raises(EngineDeadError):
        await asyncio.wait_for(
            anext(engine.generate("first", prompt(model), SamplingParams(5))), DEATH_TIMEOUT_S
        )
    assert not engine.alive

    started = time.monotonic()
    gen = engine.generate("after-death", prompt(model), SamplingParams(5))
    with pytest.raises(EngineDeadError):
        await asyncio.wait_for(anext(gen), 1.0)
    assert time.monotonic() - started < 0.5
    # Nothing was queued for the dead engine.
    assert "after-death" not in engine._queues


async def test_engine_that_is_not_killed_keeps_serving(
    engine: AsyncEngine, model: LlamaModel
) -> None:
    """Sanity check for the helpers above: an engine that is not killed keeps serving."""
    outputs = [o async for o in engine.generate("ok", prompt(model), SamplingParams(3, 0.0))]
    assert outputs[-1].finish_reason == "length"
    assert engine.alive


async def test_shutdown_fails_in_flight_requests(engine: AsyncEngine, model: LlamaModel) -> None:
    """Stopping the engine must not leave a request waiting forever for its next output."""
    gen = engine.generate("in-flight", prompt(model), SamplingParams(400, 0.0))
    await asyncio.wait_for(anext(gen), DEATH_TIMEOUT_S)
    engine.shutdown()
    assert not engine.alive

    async def rest() -> None:
        async for _ in gen:
            pass

    try:
        with pytest.raises(EngineDeadError):
            await asyncio.wait_for(rest(), 2.0)
    except TimeoutError:
        pytest.fail(
            "a request in flight during shutdown() still waits after 2s: the "
            "engine loop exits without failing the open queues"
        )
    finally:
        await gen.aclose()


# --- through the API -------------------------------------------------------------------------


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ModelPool]:
    settings = Settings(
        data_dir=tmp_path,
        admin_key=ADMIN_KEY,
        embedding_model="",
        context_window=512,
        kv_cache_tokens=1024,
        max_running_sequences=4,
        max_batch_tokens=64,
        n_threads=1,
    )
    p = ModelPool(settings)
    p.load()  # starts the engine on the running loop
    p.settings_for_test = settings  # type: ignore[attr-defined]
    yield p
    p.shutdown()


ADMIN_KEY = "test-admin-key-for-the-engine-death-tests"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def chat_body(stream: bool = False) -> dict[str, object]:
    return {
        "model": DEFAULT_CHAT_MODEL,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 3,
        "stream": stream,
    }


def assert_engine_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == "service_unavailable"
    assert error["code"] == "engine_unavailable"


async def test_dead_engine_gives_503_on_health_and_chat(pool: ModelPool) -> None:
    settings: Settings = pool.settings_for_test  # type: ignore[attr-defined]
    app = build_app(settings, pool)
    app.state.pool = pool  # ASGITransport does not run the lifespan
    engine = pool.chat(DEFAULT_CHAT_MODEL).engine
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=AUTH
    ) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        ok = await client.post("/v1/chat/completions", json=chat_body())
        assert ok.status_code == 200, ok.text

        # A request in flight when the engine dies fails with 503, promptly.
        kill_engine(engine)
        started = time.monotonic()
        in_flight = await asyncio.wait_for(
            client.post(
                "/v1/chat/completions",
                json={**chat_body(), "max_tokens": 200},
            ),
            DEATH_TIMEOUT_S,
        )
        assert_engine_unavailable(in_flight)
        assert time.monotonic() - started < DEATH_TIMEOUT_S
        assert not engine.alive

        health = await client.get("/health")
        assert health.status_code == 503
        payload = health.json()
        assert payload["status"] == "unavailable"
        assert payload["engines"][DEFAULT_CHAT_MODEL]["alive"] is False

        started = time.monotonic()
        refused = await asyncio.wait_for(
            client.post("/v1/chat/completions", json=chat_body()), DEATH_TIMEOUT_S
        )
        assert_engine_unavailable(refused)
        assert time.monotonic() - started < 1.0


async def test_dead_engine_gives_503_on_streaming_chat(pool: ModelPool) -> None:
    """A streaming request to an engine already known dead should be refused with a 503 status,
    like /health reports, rather than a 200 stream that carries the error inside."""
    settings: Settings = pool.settings_for_test  # type: ignore[attr-defined]
    app = build_app(settings, pool)
    app.state.pool = pool
    engine = pool.chat(DEFAULT_CHAT_MODEL).engine
    kill_engine(engine, healthy_steps=0)
    with pytest.raises(EngineDeadError):
        await asyncio.wait_for(
            anext(engine.generate("trigger", [1, 2, 3], SamplingParams(2))), DEATH_TIMEOUT_S
        )
    assert not engine.alive

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=AUTH
    ) as client:
        response = await asyncio.wait_for(
            client.post("/v1/chat/completions", json=chat_body(stream=True)), DEATH_TIMEOUT_S
        )
    assert response.status_code == 503, (
        f"streaming request to a dead engine got {response.status_code}: {response.text!r}"
    )
    assert_engine_unavailable(response)
