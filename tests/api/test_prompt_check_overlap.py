"""The prompt check while the engine already generates (`check_prompts_while_generating`),
around scripted parts: the scripted engine and keyword analyzer of test_stream_filter. The real
path (a real server and model) is in tests/e2e/test_content_filter.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

import pytest

from ceruleum.api.filtering import ContentFilteredError, RequestFilter
from ceruleum.api.generation import ChoiceRun
from ceruleum.engine.async_engine import AsyncEngine
from ceruleum.engine.sampling import SamplingParams
from ceruleum.safety.analyzers import Context, Findings, Segment
from ceruleum.safety.filter import ContentFilter
from tests.api.test_stream_filter import KeywordAnalyzer, ScriptedEngine

SCRIPT = [f"word{i} " for i in range(50)]


class SlowAnalyzer(KeywordAnalyzer):
    """The keyword analyzer, taking 50 ms (off the loop, as a real check runs): longer than the
    scripted engine needs for its whole script."""

    def analyze(self, items: Sequence[Sequence[Segment]], context: Context) -> list[Findings]:
        time.sleep(0.05)
        return super().analyze(items, context)


def run_of(engine: ScriptedEngine, choices: int = 1) -> ChoiceRun:
    return ChoiceRun(
        cast(AsyncEngine, engine), "req", [[1]] * choices, [SamplingParams(max_tokens=50)] * choices
    )


def prompt(text: str) -> list[list[Segment]]:
    return [[Segment(text, "user")]]


async def test_the_engine_generates_while_the_prompt_is_checked() -> None:
    engine = ScriptedEngine({0: SCRIPT})
    outputs = run_of(engine)
    filtering = RequestFilter(ContentFilter([SlowAnalyzer()]))
    results = await filtering.check_prompts_while_generating(prompt("a calm question"), outputs)
    assert results[0]["content_filter_results"]["violence"]["filtered"] is False
    assert engine.started == [0]
    assert engine.sent[0] == len(SCRIPT)  # done during the check, held in the queue
    texts = [output.text async for _, output in outputs]
    assert texts == SCRIPT  # released whole, in order, once the check had passed
    await outputs.aclose()


async def test_a_filtered_prompt_aborts_the_generation() -> None:
    engine = ScriptedEngine({0: SCRIPT, 1: SCRIPT}, seconds_per_output=0.01)  # 0.5 s each
    outputs = run_of(engine, choices=2)
    filtering = RequestFilter(ContentFilter([KeywordAnalyzer()]))
    with pytest.raises(ContentFilteredError):
        await filtering.check_prompts_while_generating(prompt("BOOM"), outputs)
    assert sorted(engine.started) == [0, 1]
    assert sorted(engine.closed) == [0, 1]  # both sequences ended...
    assert all(engine.sent.get(i, 0) < len(SCRIPT) for i in (0, 1))  # ...before they were done
    sent_then = dict(engine.sent)
    await asyncio.sleep(0.05)
    assert engine.sent == sent_then  # and nothing more was generated


async def test_without_filtering_nothing_starts_early() -> None:
    engine = ScriptedEngine({0: SCRIPT})
    outputs = run_of(engine)
    assert await RequestFilter(None).check_prompts_while_generating(prompt("x"), outputs) == []
    await asyncio.sleep(0.01)
    assert engine.started == []  # the run starts when it is read, as it always did
    assert [output.text async for _, output in outputs] == SCRIPT


async def test_one_choice_of_a_started_run_can_still_be_stopped() -> None:
    engine = ScriptedEngine({0: ["a ", "b ", "c"], 1: SCRIPT})
    outputs = run_of(engine, choices=2)
    outputs.start()
    seen: dict[int, list[str]] = {0: [], 1: []}
    async for index, output in outputs:
        seen[index].append(output.text)
        if index == 1 and len(seen[1]) == 2:
            outputs.stop(1)
    await outputs.aclose()
    assert seen[0] == ["a ", "b ", "c"]
    assert seen[1] == SCRIPT[:2]  # what was already queued for the stopped choice is dropped
    assert 1 in engine.closed
