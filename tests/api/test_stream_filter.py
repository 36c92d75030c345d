"""Buffered stream release and stopping one choice of several, around scripted parts: a
scripted engine (a real class that replays outputs) and a keyword analyzer, so that these tests
are about the release logic. The real path is in tests/e2e/test_content_filter.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

from ceruleum.api.filtering import RequestFilter
from ceruleum.api.generation import ChoiceRun
from ceruleum.api.stream_filter import StreamFilter
from ceruleum.engine.async_engine import AsyncEngine
from ceruleum.engine.outputs import SequenceOutput
from ceruleum.engine.sampling import SamplingParams
from ceruleum.safety.analyzers import Context, Findings, Segment
from ceruleum.safety.categories import Severity
from ceruleum.safety.filter import ContentFilter


class KeywordAnalyzer:
    """Violence "high" wherever the word BOOM appears."""

    name = "keywords"
    provides = frozenset({"violence"})

    def analyze(self, items: Sequence[Sequence[Segment]], context: Context) -> list[Findings]:
        return [
            Findings(
                severities={
                    "violence": Severity.HIGH
                    if any("BOOM" in s.text for s in item)
                    else Severity.SAFE
                }
            )
            for item in items
        ]


class ScriptedEngine:
    """Replays a script of texts per request id suffix; records aborts."""

    def __init__(self, scripts: dict[int, list[str]], seconds_per_output: float = 0.0) -> None:
        self.scripts = scripts
        self.seconds_per_output = seconds_per_output
        self.started: list[int] = []
        self.sent: dict[int, int] = {}  # outputs produced per choice
        self.closed: list[int] = []

    async def generate(
        self, request_id: str, prompt_tokens: list[int], params: SamplingParams
    ) -> AsyncGenerator[SequenceOutput]:
        index = int(request_id.rsplit("-", 1)[1])
        script = self.scripts[index]
        self.started.append(index)
        try:
            for position, text in enumerate(script):
                await asyncio.sleep(self.seconds_per_output)
                self.sent[index] = position + 1
                last = position == len(script) - 1
                yield SequenceOutput(
                    request_id=request_id,
                    text=text,
                    completion_tokens=position + 1,
                    finish_reason="stop" if last else None,
                )
        finally:
            self.closed.append(index)


def choice(index: int, text: str) -> dict[str, Any]:
    return {"index": index, "text": text}


def terminal(index: int, annotation: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "finish_reason": "content_filter", "annotation": annotation}


async def run(
    scripts: dict[int, list[str]], chunk_chars: int
) -> tuple[list[dict[str, Any]], ScriptedEngine]:
    engine = ScriptedEngine(scripts)
    outputs = ChoiceRun(
        cast(AsyncEngine, engine),
        "req",
        [[1]] * len(scripts),
        [SamplingParams(max_tokens=10)] * len(scripts),
    )
    censor = StreamFilter(
        RequestFilter(ContentFilter([KeywordAnalyzer()])),
        len(scripts),
        chunk_chars=chunk_chars,
        terminal=terminal,
    )
    sent: list[dict[str, Any]] = []
    async for index, output in outputs:
        censor.hold(index, [choice(index, output.text)], output.text)
        if censor.due(index, output.finish_reason is not None):
            released, filtered = await censor.release(index)
            sent.extend(released)
            if filtered:
                outputs.stop(index)
    await outputs.aclose()
    return sent, engine


async def test_only_the_affected_choice_stops() -> None:
    clean = ["a calm ", "story ", "about ", "tea"]
    harmful = ["it went ", "BOOM ", "and then ", "more ", "text"]
    sent, engine = await run({0: clean, 1: harmful}, chunk_chars=5)
    texts0 = "".join(c.get("text", "") for c in sent if c["index"] == 0)
    texts1 = "".join(c.get("text", "") for c in sent if c["index"] == 1)
    assert texts0 == "".join(clean)
    assert "BOOM" not in texts1
    assert texts1 == "it went "  # checked clean before the harmful chunk arrived
    [stop] = [c for c in sent if c.get("finish_reason") == "content_filter"]
    assert stop["index"] == 1
    assert stop["annotation"]["violence"] == {"filtered": True, "severity": "high"}
    assert 1 in engine.closed  # its sequence was ended early


async def test_text_is_held_until_checked_and_annotated() -> None:
    sent, _ = await run({0: ["one ", "two ", "three ", "four"]}, chunk_chars=9)
    # Released in batches once 9 characters were held, and at the end.
    assert [c["text"] for c in sent] == ["one ", "two ", "three ", "four"]
    annotated = [c for c in sent if "content_filter_results" in c]
    assert [c["text"] for c in annotated] == ["three ", "four"]
    for c in annotated:
        assert c["content_filter_results"]["violence"] == {"filtered": False, "severity": "safe"}


async def test_a_phrase_split_across_chunks_is_seen_whole() -> None:
    sent, _ = await run({0: ["xxxxx BO", "OM yyy"]}, chunk_chars=5)
    assert [c.get("finish_reason") for c in sent] == [None, "content_filter"]
    assert sent[0]["text"] == "xxxxx BO"
