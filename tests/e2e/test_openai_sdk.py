"""The real server through the official `openai` SDK: chat, completions, embeddings, models."""

from __future__ import annotations

import asyncio
import base64
import math
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import EMBEDDING_MODEL, MODEL, ServerProcess

pytestmark = pytest.mark.slow

POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
FACTS = [{"role": "user", "content": "Tell me three facts about cats."}]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=60)


@pytest.fixture
async def aclient(server: ServerProcess) -> Any:
    client = AsyncOpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=60)
    yield client
    await client.close()


def greedy_chat(client: OpenAI, messages: list[dict[str, str]], max_tokens: int = 30) -> str:
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=max_tokens, temperature=0
    )
    text = reply.choices[0].message.content
    assert isinstance(text, str)
    return text


def pick_stop(text: str) -> tuple[str, int]:
    """A 3-char piece of `text` whose first occurrence is after the first few characters and
    that is not pure whitespace; returns (piece, index of its first occurrence)."""
    for start in range(5, len(text) - 3):
        piece = text[start : start + 3]
        if piece.strip() and text.index(piece) == start:
            return piece, start
    raise AssertionError(f"no usable stop string in {text!r}")


# --- chat, sync ------------------------------------------------------------------------------


def test_chat_non_streaming_fields(client: OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=POEM, max_tokens=20)
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert isinstance(reply.created, int) and reply.created > 1_600_000_000
    assert reply.model == MODEL
    assert reply.system_fingerprint is not None
    assert reply.system_fingerprint.startswith("fp_")
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 1 <= usage.completion_tokens <= 20
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens


def test_chat_streaming_with_usage_matches_non_streaming(client: OpenAI) -> None:
    expected = greedy_chat(client, POEM)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=POEM,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    # Azure's first chunk: no choices, the prompt's content-filter annotation.
    annotation, *chunks = chunks
    assert annotation.choices == []
    assert (annotation.model_extra or {})["prompt_filter_results"][0]["prompt_index"] == 0
    assert len(chunks) >= 3
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == MODEL
    for chunk in chunks[:-1]:
        assert chunk.usage is None
        assert len(chunk.choices) == 1
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens <= 30
    assert last.usage.prompt_tokens + last.usage.completion_tokens == last.usage.total_tokens
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert text == expected
    reasons = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert reasons in (["stop"], ["length"])
    assert chunks[-2].choices[0].finish_reason is not None


def test_max_tokens_and_max_completion_tokens(client: OpenAI) -> None:
    by_max_tokens = client.chat.completions.create(
        model=MODEL, messages=POEM, max_tokens=3, temperature=0
    )
    by_max_completion = client.chat.completions.create(
        model=MODEL, messages=POEM, max_completion_tokens=3, temperature=0
    )
    for reply in (by_max_tokens, by_max_completion):
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 3
    assert by_max_tokens.choices[0].message.content == by_max_completion.choices[0].message.content
    # max_completion_tokens wins over max_tokens when both are given.
    both = client.chat.completions.create(
        model=MODEL, messages=POEM, max_tokens=20, max_completion_tokens=2, temperature=0
    )
    assert both.usage is not None and both.usage.completion_tokens == 2
    assert both.choices[0].finish_reason == "length"


def test_n_choices_with_seed(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=FACTS,
        n=3,
        temperature=1.0,
        seed=1234,
        max_tokens=10,
        logprobs=True,
    )
    assert sorted(c.index for c in reply.choices) == [0, 1, 2]
    counts = []
    for choice in reply.choices:
        assert choice.finish_reason in {"stop", "length"}
        assert choice.logprobs is not None and choice.logprobs.content is not None
        counts.append(len(choice.logprobs.content))
    assert all(1 <= c <= 10 for c in counts)
    assert reply.usage is not None
    assert reply.usage.completion_tokens >= 3
    assert reply.usage.completion_tokens == sum(counts)


def test_seed_determinism(client: OpenAI) -> None:
    def sample(seed: int, temperature: float) -> str:
        reply = client.chat.completions.create(
            model=MODEL, messages=FACTS, seed=seed, temperature=temperature, max_tokens=30
        )
        return reply.choices[0].message.content or ""

    first = sample(42, 0.8)
    second = sample(42, 0.8)
    assert first == second
    assert first
    texts = {sample(seed, 1.0) for seed in (1, 2, 3)}
    assert len(texts) > 1, texts


def test_stop_string_non_streaming(client: OpenAI) -> None:
    greedy = greedy_chat(client, POEM)
    stop, at = pick_stop(greedy)
    reply = client.chat.completions.create(
        model=MODEL, messages=POEM, max_tokens=30, temperature=0, stop=[stop]
    )
    text = reply.choices[0].message.content
    assert text == greedy[:at], (greedy, stop)
    assert stop not in (text or "")
    assert reply.choices[0].finish_reason == "stop"


def test_stop_string_streaming(client: OpenAI) -> None:
    greedy = greedy_chat(client, FACTS)
    stop, at = pick_stop(greedy)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=FACTS, max_tokens=30, temperature=0, stop=stop, stream=True
        )
    )
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert all(stop not in d for d in deltas)
    text = "".join(deltas)
    assert text == greedy[:at], (greedy, stop)
    assert stop not in text
    reasons = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert reasons == ["stop"]


def test_chat_logprobs(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=POEM, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    content = choice.logprobs.content
    assert reply.usage is not None and len(content) == reply.usage.completion_tokens
    for entry in content:
        assert isinstance(entry.token, str)
        assert entry.logprob <= 0
        assert isinstance(entry.bytes, list) and all(0 <= b < 256 for b in entry.bytes)
        assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token
        top = entry.top_logprobs
        assert len(top) == 3
        values = [t.logprob for t in top]
        assert values == sorted(values, reverse=True)
        assert all(v <= 0 for v in values)
        # Greedy: the chosen token is the most likely one.
        assert math.isclose(entry.logprob, top[0].logprob, abs_tol=1e-6)
        assert entry.token == top[0].token
    joined = "".join(e.token for e in content)
    assert joined == choice.message.content


# --- chat, async -----------------------------------------------------------------------------


async def test_async_chat_non_streaming_and_streaming(aclient: AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(
        model=MODEL, messages=POEM, max_tokens=20, temperature=0
    )
    assert reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant"
    expected = reply.choices[0].message.content
    stream = await aclient.chat.completions.create(
        model=MODEL, messages=POEM, max_tokens=20, temperature=0, stream=True
    )
    parts = []
    reasons = []
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert "".join(parts) == expected
    assert reasons == [reply.choices[0].finish_reason]


async def test_async_concurrent_requests(aclient: AsyncOpenAI) -> None:
    prompts = [f"Count from {i} to {i + 5}." for i in range(8)]
    replies = await asyncio.gather(
        *(
            aclient.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": p}], max_tokens=15
            )
            for p in prompts
        )
    )
    assert len(replies) == 8
    assert len({r.id for r in replies}) == 8
    for reply in replies:
        assert reply.choices[0].finish_reason in {"stop", "length"}
        assert reply.choices[0].message.content
        assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 15


# --- legacy completions ----------------------------------------------------------------------


def test_completion_string_prompt(client: OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8)
    assert reply.id.startswith("cmpl-")
    assert reply.object == "text_completion"
    assert reply.model == MODEL
    assert len(reply.choices) == 1
    assert reply.choices[0].index == 0
    assert isinstance(reply.choices[0].text, str) and reply.choices[0].text
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 8
    assert reply.usage.prompt_tokens + reply.usage.completion_tokens == reply.usage.total_tokens


def test_completion_two_prompts(client: OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt=["Once upon a time", "The best way to cook rice is"], max_tokens=6
    )
    assert sorted(c.index for c in reply.choices) == [0, 1]
    for choice in reply.choices:
        assert choice.text
        assert choice.finish_reason in {"stop", "length"}
    assert reply.usage is not None and reply.usage.completion_tokens <= 12


def test_completion_token_prompt_matches_text_prompt(client: OpenAI) -> None:
    # "The capital of France is" in SmolLM2's vocabulary (its tokenizer adds no BOS).
    text = "The capital of France is"
    tokens = [504, 3575, 282, 4649, 314]
    by_tokens = client.completions.create(model=MODEL, prompt=tokens, max_tokens=6, temperature=0)
    by_text = client.completions.create(model=MODEL, prompt=text, max_tokens=6, temperature=0)
    assert len(by_tokens.choices) == 1
    assert by_tokens.choices[0].finish_reason in {"stop", "length"}
    assert by_tokens.usage is not None and by_text.usage is not None
    assert by_tokens.usage.prompt_tokens == len(tokens) == by_text.usage.prompt_tokens
    assert by_tokens.choices[0].text == by_text.choices[0].text
    echoed = client.completions.create(
        model=MODEL, prompt=tokens, max_tokens=6, temperature=0, echo=True
    )
    assert echoed.choices[0].text == text + by_tokens.choices[0].text


def test_completion_echo(client: OpenAI) -> None:
    prompt = "Roses are red, violets are"
    reply = client.completions.create(model=MODEL, prompt=prompt, max_tokens=5, echo=True)
    text = reply.choices[0].text
    assert text.startswith(prompt)
    assert len(text) > len(prompt)


def test_completion_logprobs(client: OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="One, two, three,", max_tokens=6, temperature=0, logprobs=2
    )
    choice = reply.choices[0]
    lp = choice.logprobs
    assert lp is not None
    assert lp.tokens is not None and lp.token_logprobs is not None
    assert lp.top_logprobs is not None and lp.text_offset is not None
    n = len(lp.tokens)
    assert reply.usage is not None and n == reply.usage.completion_tokens
    assert len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    assert all(v <= 0 for v in lp.token_logprobs)
    for top in lp.top_logprobs:
        assert isinstance(top, dict)
        assert 1 <= len(top) <= 2
        assert all(v <= 0 for v in top.values())
    assert lp.text_offset[0] == 0
    for i in range(1, n):
        assert lp.text_offset[i] == lp.text_offset[i - 1] + len(lp.tokens[i - 1])
        assert lp.text_offset[i] >= lp.text_offset[i - 1]
    assert "".join(lp.tokens) == choice.text


def test_completion_streaming(client: OpenAI) -> None:
    prompt = "The three primary colors are"
    expected = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0)
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt=prompt,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    annotation, *chunks = chunks  # Azure's first chunk: the prompt's content-filter annotation
    assert annotation.choices == [] and "prompt_filter_results" in (annotation.model_extra or {})
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == expected.usage.completion_tokens  # type: ignore[union-attr]
    text = "".join(c.choices[0].text for c in chunks[:-1])
    assert text == expected.choices[0].text
    reasons = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert reasons == [expected.choices[0].finish_reason]


def test_completion_suffix_is_rejected(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(
            model=MODEL, prompt="def add(a, b):\n", suffix="\n    return c\n", max_tokens=8
        )
    assert info.value.status_code == 400
    assert "fill-in-the-middle" in info.value.message


# --- embeddings ------------------------------------------------------------------------------


def as_vector(embedding: Any) -> np.ndarray:
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def test_embedding_single_string(client: OpenAI) -> None:
    reply = client.embeddings.create(
        model=EMBEDDING_MODEL, input="The quick brown fox", encoding_format="float"
    )
    assert reply.model == EMBEDDING_MODEL
    assert len(reply.data) == 1
    assert reply.data[0].index == 0
    vector = reply.data[0].embedding
    assert isinstance(vector, list) and len(vector) == 384
    assert all(isinstance(x, float) for x in vector)
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-3)
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens


def test_embedding_list_and_base64(client: OpenAI) -> None:
    inputs = ["first sentence", "a cat sat on the mat", "quantum chromodynamics"]
    floats = client.embeddings.create(model=EMBEDDING_MODEL, input=inputs, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert floats.usage.prompt_tokens > 0
    b64 = client.embeddings.create(model=EMBEDDING_MODEL, input=inputs, encoding_format="base64")
    assert [d.index for d in b64.data] == [0, 1, 2]
    for f, b in zip(floats.data, b64.data, strict=True):
        fv = as_vector(f.embedding)
        bv = as_vector(b.embedding)
        assert fv.shape == bv.shape == (384,)
        assert np.allclose(fv, bv, atol=1e-6)
    # Different texts give different vectors.
    v0, v1 = as_vector(floats.data[0].embedding), as_vector(floats.data[1].embedding)
    assert not np.allclose(v0, v1)


def test_embedding_default_encoding_is_decoded_by_sdk(client: OpenAI) -> None:
    # Without encoding_format, the SDK asks for base64 and decodes it itself.
    reply = client.embeddings.create(model=EMBEDDING_MODEL, input="hello world")
    vector = as_vector(reply.data[0].embedding)
    assert vector.shape == (384,)
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-3)


# --- models ----------------------------------------------------------------------------------


def test_models_list_and_retrieve(client: OpenAI, server: ServerProcess) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert EMBEDDING_MODEL in ids
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL
    assert model.object == "model"
    assert isinstance(model.created, int)
    assert model.owned_by
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.status_code == 404

    listing = httpx.get(server.v1 + "/models", headers=server.headers, timeout=10)
    assert listing.status_code == 200
    cards = {card["id"]: card for card in listing.json()["data"]}
    assert cards[MODEL]["context_length"] == 8192
