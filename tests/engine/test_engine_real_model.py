"""The engine end to end, in-process, on the real bundled model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import pytest

from ceruleum.engine.async_engine import AsyncEngine, EngineConfig
from ceruleum.engine.chat_template import ChatTemplate
from ceruleum.engine.errors import ContextWindowExceededError
from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.outputs import SequenceOutput
from ceruleum.engine.registry import resolve_chat_model
from ceruleum.engine.sampling import SamplingParams
from ceruleum.engine.scheduler import SchedulerOutput

CONTEXT_WINDOW = 2048
MAX_BATCH_TOKENS = 128
# One thread: on a 2-core machine shared with other work, llama.cpp's spinning thread pool with
# 2 threads runs 3-20x slower than with 1 (measured: 40-450 ms vs 20 ms per decode step).
N_THREADS = 1

_ids = itertools.count()


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaModel]:
    m = LlamaModel(resolve_chat_model("smollm2-135m-instruct").path)
    yield m
    m.close()


@pytest.fixture(scope="module")
async def engine(model: LlamaModel) -> AsyncIterator[AsyncEngine]:
    eng = AsyncEngine(
        model,
        EngineConfig(
            context_window=CONTEXT_WINDOW,
            kv_cache_tokens=4096,
            max_sequences=8,
            max_batch_tokens=MAX_BATCH_TOKENS,
            n_threads=N_THREADS,
        ),
    )
    eng.start()
    yield eng
    eng.shutdown()


@asynccontextmanager
async def fresh_engine(model: LlamaModel, **overrides: int) -> AsyncIterator[AsyncEngine]:
    """A separate engine (its own llama.cpp context) with an empty KV cache."""
    config = {
        "context_window": 1024,
        "kv_cache_tokens": 1024,
        "max_sequences": 4,
        "max_batch_tokens": MAX_BATCH_TOKENS,
        "n_threads": N_THREADS,
        **overrides,
    }
    eng = AsyncEngine(model, EngineConfig(**config))
    eng.start()
    try:
        yield eng
    finally:
        eng.shutdown()


@pytest.fixture(scope="module")
def template(model: LlamaModel) -> ChatTemplate:
    return ChatTemplate(
        model.chat_template,
        bos_token=model.piece_text(model.bos_id),
        eos_token=model.piece_text(model.eos_id),
    )


def prompt_tokens(model: LlamaModel, template: ChatTemplate, user: str) -> list[int]:
    text = template.render([{"role": "user", "content": user}], add_generation_prompt=True)
    tokens = model.tokenize(text, add_special=True, parse_special=True)
    if len(tokens) > 1 and tokens[0] == tokens[1] == model.bos_id:
        tokens = tokens[1:]
    return tokens


@dataclass
class Result:
    request_id: str
    outputs: list[SequenceOutput] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(o.text for o in self.outputs)

    @property
    def tokens(self) -> list[int]:
        return [t for o in self.outputs for t in o.token_ids]

    @property
    def finish_reason(self) -> str | None:
        return self.outputs[-1].finish_reason if self.outputs else None


async def run(engine: AsyncEngine, prompt: list[int], params: SamplingParams) -> Result:
    result = Result(f"test-{next(_ids)}")
    async for output in engine.generate(result.request_id, prompt, params):
        result.outputs.append(output)
        result.arrivals.append(time.monotonic())
    return result


def greedy(max_tokens: int, **kwargs: object) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, **kwargs)  # type: ignore[arg-type]


def assert_well_formed(result: Result, max_tokens: int) -> None:
    """Exactly one final output, at the end; one token per output; counts add up."""
    assert result.outputs, "no output at all"
    assert all(o.finish_reason is None for o in result.outputs[:-1])
    assert result.finish_reason in ("stop", "length")
    assert [o.completion_tokens for o in result.outputs] == list(range(1, len(result.outputs) + 1))
    assert all(len(o.token_ids) == 1 for o in result.outputs)
    assert all(o.error is None for o in result.outputs)
    assert len(result.tokens) <= max_tokens
    if result.finish_reason == "length":
        assert len(result.tokens) == max_tokens


async def wait_idle(engine: AsyncEngine, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stats = engine.stats()
        if stats.running == 0 and stats.waiting == 0 and stats.kv_cache_used_tokens == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"engine did not become idle: {stats}")
        await asyncio.sleep(0.01)


@dataclass
class Plan:
    """One engine step's schedule: (request id, tokens, completes pending) per chunk."""

    chunks: list[tuple[str, int, bool]]
    prefix_hits: dict[str, int]  # request id -> prompt tokens taken from the prefix cache
    preempted: list[str]

    def get(self, request_id: str) -> tuple[int, bool] | None:
        for rid, n, completes in self.chunks:
            if rid == request_id:
                return n, completes
        return None


def first_completing_step(plans: list[Plan], request_id: str) -> int:
    """Index of the step whose chunk finished the request's prompt (it samples a first token)."""
    for i, plan in enumerate(plans):
        chunk = plan.get(request_id)
        if chunk is not None and chunk[1]:
            return i
    raise AssertionError(f"{request_id} never completed its prompt")


@contextmanager
def record_plans(engine: AsyncEngine) -> Iterator[list[Plan]]:
    """Record every plan the engine's scheduler makes (called on the engine thread)."""
    scheduler = engine._core.scheduler
    original = scheduler.schedule
    plans: list[Plan] = []

    def schedule() -> SchedulerOutput:
        out = original()
        plans.append(
            Plan(
                [(c.seq.request_id, c.num_tokens, c.completes_pending) for c in out.chunks],
                {seq.request_id: n for seq, _, n in getattr(out, "prefix_hits", ())},
                [seq.request_id for seq, _ in out.preempted],
            )
        )
        return out

    scheduler.schedule = schedule  # type: ignore[method-assign]
    try:
        yield plans
    finally:
        del scheduler.schedule


QUESTION = "Name three colors of the rainbow and say one thing about each."
OTHER_QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain what a computer is to a child.",
    "List five animals that live in the ocean.",
    "Why is the sky blue? Answer briefly.",
]
LONG_ANSWER = "Write a long story about a dragon who learns to bake bread."


# --- determinism -------------------------------------------------------------------------------


async def test_greedy_is_deterministic_alone(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, QUESTION)
    first = await run(engine, prompt, greedy(16))
    second = await run(engine, prompt, greedy(16))
    assert_well_formed(first, 16)
    assert first.tokens == second.tokens
    assert first.text == second.text
    assert first.text.strip(), "the model said nothing"
    assert model.detokenize(first.tokens).startswith(first.text)


async def test_greedy_same_alone_and_batched(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    """One request alone vs. the same request running with 5 others (max_batch_tokens=128).

    llama.cpp's CPU kernels round differently once a ubatch holds >= 64 tokens (and depending on
    a row's position in it), so a greedy continuation may drift after a few tokens: the first
    tokens must agree; full agreement is reported as an expected failure when it does not hold
    (see test_greedy_same_alone_and_batched_exactly_with_small_batches for the exact check)."""
    prompt = prompt_tokens(model, template, QUESTION)
    alone = await run(engine, prompt, greedy(16))
    others = [prompt_tokens(model, template, q) for q in OTHER_QUESTIONS]
    results = await asyncio.gather(
        run(engine, prompt, greedy(16)), *(run(engine, p, greedy(16)) for p in others)
    )
    batched = results[0]
    for r in results:
        assert_well_formed(r, 16)
    assert batched.tokens[:4] == alone.tokens[:4], f"{batched.text!r} != {alone.text!r}"
    await wait_idle(engine)
    if batched.tokens != alone.tokens:
        pytest.xfail(
            "greedy output drifts with the batch (llama.cpp CPU numerics for >= 64-token "
            f"ubatches):\nalone:   {alone.text!r}\nbatched: {batched.text!r}"
        )


async def test_greedy_same_alone_and_batched_exactly_with_small_batches(
    model: LlamaModel, template: ChatTemplate
) -> None:
    """With every engine step under 64 tokens the kernels are the same, so batching must not
    change a single token: no cross-talk between sequences, rows map to the right sequence."""
    prompts = [prompt_tokens(model, template, q) for q in [QUESTION, *OTHER_QUESTIONS[:2]]]
    async with fresh_engine(model, max_batch_tokens=32) as eng:
        alone = [await run(eng, p, greedy(12)) for p in prompts]
        batched = await asyncio.gather(*(run(eng, p, greedy(12)) for p in prompts))
    for a, b in zip(alone, batched, strict=True):
        assert_well_formed(b, 12)
        assert b.tokens == a.tokens, f"{b.text!r} != {a.text!r}"
        assert b.text == a.text


def seeded(seed: int) -> SamplingParams:
    return SamplingParams(max_tokens=24, temperature=0.8, seed=seed)


async def test_seeded_sampling_is_deterministic(model: LlamaModel, template: ChatTemplate) -> None:
    """Same seed, same tokens (on an engine whose KV cache holds only these requests; the second
    and third take their prompt from the prefix cache)."""
    prompt = prompt_tokens(model, template, LONG_ANSWER)
    async with fresh_engine(model) as eng:
        a = await run(eng, prompt, seeded(1234))
        b = await run(eng, prompt, seeded(1234))
        c = await run(eng, prompt, seeded(4321))
    assert_well_formed(a, 24)
    assert a.tokens == b.tokens
    assert a.text == b.text
    assert c.tokens != a.tokens, "a different seed gave the very same 24 sampled tokens"


async def test_seeded_sampling_on_a_busy_engine(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    """The same seeded request twice on the shared engine, after other traffic has left cached
    prefixes and holes in the KV cache. llama.cpp's CPU attention rounds differently when a
    sequence's cells are not in position order, so this may drift: reported as an expected
    failure when it does."""
    prompt = prompt_tokens(model, template, LONG_ANSWER)
    a = await run(engine, prompt, seeded(1234))
    b = await run(engine, prompt, seeded(1234))
    assert_well_formed(a, 24)
    assert_well_formed(b, 24)
    assert a.tokens[:2] == b.tokens[:2]
    if a.tokens != b.tokens:
        pytest.xfail(
            "seeded sampling is not reproducible once the KV cache layout differs:\n"
            f"first:  {a.text!r}\nsecond: {b.text!r}"
        )


# --- limits ------------------------------------------------------------------------------------


async def test_max_tokens_finishes_with_length(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, LONG_ANSWER)
    result = await run(engine, prompt, greedy(7))
    assert result.finish_reason == "length"
    assert len(result.outputs) == 7
    assert len(result.tokens) == 7
    assert result.outputs[-1].completion_tokens == 7
    assert result.outputs[-1].prompt_tokens == len(prompt)
    assert_well_formed(result, 7)
    await wait_idle(engine)


async def test_max_tokens_one(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, LONG_ANSWER)
    result = await run(engine, prompt, greedy(1))
    assert len(result.outputs) == 1
    assert result.finish_reason == "length"
    assert result.outputs[0].completion_tokens == 1


async def test_stop_string_ends_generation_and_is_not_emitted(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, QUESTION)
    free = await run(engine, prompt, greedy(32))
    words = free.text.split()
    assert len(words) >= 4, free.text
    stop = words[3]
    cut = free.text.index(stop)
    stopped = await run(engine, prompt, greedy(32, stop=(stop,)))
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[:cut]
    assert stop not in stopped.text
    await wait_idle(engine)


async def test_prompt_that_does_not_fit_raises(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, QUESTION)
    too_many = CONTEXT_WINDOW - len(prompt) + 1
    with pytest.raises(ContextWindowExceededError) as info:
        await run(engine, prompt, greedy(too_many))
    assert info.value.prompt_tokens == len(prompt)
    assert info.value.max_tokens == too_many
    assert info.value.context_window == CONTEXT_WINDOW
    # Exactly at the limit is fine.
    engine.check_fits(len(prompt), CONTEXT_WINDOW - len(prompt))

    huge_prompt = prompt * (CONTEXT_WINDOW // len(prompt) + 1)
    with pytest.raises(ContextWindowExceededError):
        await run(engine, huge_prompt, greedy(1))
    await wait_idle(engine)


# --- chunked prefill ---------------------------------------------------------------------------


def long_prompt(model: LlamaModel, template: ChatTemplate) -> list[int]:
    facts = " ".join(
        f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(1, 44)
    )
    tokens = prompt_tokens(model, template, f"Read these facts. {facts} Which fact comes first?")
    assert 4 * MAX_BATCH_TOKENS < len(tokens) <= 700, len(tokens)
    return tokens


async def test_long_prompt_is_prefilled_in_chunks_while_a_short_request_decodes(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    long = long_prompt(model, template)
    short = prompt_tokens(model, template, LONG_ANSWER)
    reference = await run(engine, long, greedy(4))

    with record_plans(engine) as plans:
        short_result = Result(f"short-{next(_ids)}")
        short_gen = engine.generate(short_result.request_id, short, greedy(24))
        short_result.outputs.append(await anext(short_gen))  # the short one is decoding now

        async def drain_short() -> None:
            async for output in short_gen:
                short_result.outputs.append(output)

        short_task = asyncio.create_task(drain_short())
        long_result = await run(engine, long, greedy(4))
        await short_task

    assert_well_formed(short_result, 24)
    assert short_result.finish_reason == "length"
    assert long_result.finish_reason == "length"
    assert_well_formed(long_result, 4)
    # Row positions in >= 64-token batches change llama.cpp's rounding, so only the first token
    # is compared with the solo run.
    assert long_result.tokens[0] == reference.tokens[0], (long_result.text, reference.text)

    long_id, short_id = long_result.request_id, short_result.request_id
    prefill_steps = [i for i, p in enumerate(plans) if (c := p.get(long_id)) and c[0] > 1]
    # The long prompt went through in several chunks, no step over the token budget...
    from_cache = sum(p.prefix_hits.get(long_id, 0) for p in plans)
    computed = sum(plans[i].get(long_id)[0] for i in prefill_steps)  # type: ignore[index]
    assert computed + from_cache == len(long)
    assert computed > 4 * MAX_BATCH_TOKENS
    assert len(prefill_steps) >= math.ceil(computed / MAX_BATCH_TOKENS)
    assert all(sum(n for _, n, _ in p.chunks) <= MAX_BATCH_TOKENS for p in plans)
    # ...and the short request, still running throughout, got its decode token in every one.
    short_steps = [i for i, p in enumerate(plans) if p.get(short_id)]
    assert short_steps[-1] > prefill_steps[-1], "the short request ended too early to tell"
    stalled = [i for i in prefill_steps if plans[i].get(short_id) != (1, True)]
    assert stalled == [], f"the short request was not decoded in steps {stalled}"
    await wait_idle(engine)


async def test_short_request_first_token_is_not_stalled_by_long_prefill(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    """A short request arriving while a long prompt is prefilled gets its first token before that
    prefill ends (the long prompt takes 5 steps at max_batch_tokens=128)."""
    long = long_prompt(model, template)
    short = prompt_tokens(model, template, OTHER_QUESTIONS[0])
    long_id = f"long-{next(_ids)}"
    with record_plans(engine) as plans:
        long_result = Result(long_id)

        async def run_long() -> None:
            async for output in engine.generate(long_id, long, greedy(2)):
                long_result.outputs.append(output)
                long_result.arrivals.append(time.monotonic())

        long_task = asyncio.create_task(run_long())
        # Submit the short request once the long prompt's prefill has begun.
        deadline = time.monotonic() + 5
        while not any(p.get(long_id) for p in plans):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
        assert not long_result.outputs
        short_result = await run(engine, short, greedy(4))
        await long_task

    assert_well_formed(short_result, 4)
    assert_well_formed(long_result, 2)
    long_done = first_completing_step(plans, long_id)
    short_first = first_completing_step(plans, short_result.request_id)
    assert short_first < long_done, (
        f"the short request's prompt was completed in step {short_first}, not before the long "
        f"prompt's prefill ended (step {long_done}): "
        f"{[(p.get(long_id), p.get(short_result.request_id)) for p in plans]}"
    )
    assert short_result.arrivals[0] < long_result.arrivals[0]
    await wait_idle(engine)


# --- KV pressure --------------------------------------------------------------------------------


async def test_kv_pressure_preempts_and_recomputes_without_losing_requests(
    model: LlamaModel, template: ChatTemplate
) -> None:
    """Three requests that together need more KV cells than the cache has: the newest is
    preempted and recomputed later, and every request still completes in full."""
    prompts = [prompt_tokens(model, template, q) for q in OTHER_QUESTIONS[:3]]
    max_tokens = 100
    no_eog = {t: -100.0 for t in model.end_of_generation_tokens()}
    async with fresh_engine(model, context_window=256, kv_cache_tokens=256) as eng:
        capacity = eng.stats().kv_cache_capacity_tokens
        assert sum(len(p) + max_tokens for p in prompts) > capacity
        with record_plans(eng) as plans:
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(run(eng, p, greedy(max_tokens, logit_bias=no_eog)) for p in prompts)
                ),
                60,
            )
        await wait_idle(eng)
    preempted = [rid for p in plans for rid in p.preempted]
    assert preempted, "the workload did not exercise preemption"
    for r in results:
        assert_well_formed(r, max_tokens)
        assert r.finish_reason == "length"
    assert any(r.request_id in preempted for r in results)
    # A preempted request resumes where it was: its outputs carry on without a restart.
    for r in results:
        assert [o.completion_tokens for o in r.outputs] == list(range(1, len(r.outputs) + 1))


# --- abort -------------------------------------------------------------------------------------


async def test_leaving_the_iteration_early_frees_the_sequence(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, LONG_ANSWER)
    received = 0
    async for _ in engine.generate(f"abort-{next(_ids)}", prompt, greedy(500)):
        received += 1
        if received == 3:
            assert engine.stats().running == 1
            assert engine.stats().kv_cache_used_tokens > 0
            break
    await wait_idle(engine, timeout=1.0)
    # The engine is still fine afterwards.
    result = await run(engine, prompt, greedy(3))
    assert result.finish_reason == "length"


async def test_aborting_one_of_several_keeps_the_others(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, LONG_ANSWER)

    async def abandon() -> None:
        gen = engine.generate(f"abandon-{next(_ids)}", prompt, greedy(500))
        async for _ in gen:
            break
        await gen.aclose()

    results = await asyncio.gather(run(engine, prompt, greedy(12)), abandon(), abandon())
    assert_well_formed(results[0], 12)
    assert results[0].finish_reason == "length"
    await wait_idle(engine)


# --- logprobs, logit bias, penalties ---------------------------------------------------------


async def test_logprobs_with_top_logprobs(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, QUESTION)
    result = await run(engine, prompt, greedy(8, logprobs=True, top_logprobs=3))
    plain = await run(engine, prompt, greedy(8))
    assert result.tokens == plain.tokens
    for output in result.outputs:
        assert output.logprobs is not None and len(output.logprobs) == 1
        entry = output.logprobs[0]
        assert entry.token_id == output.token_ids[0]
        assert entry.token_bytes == model.piece(entry.token_id)
        assert entry.logprob <= 0
        assert len(entry.top) == 3
        assert [t.logprob for t in entry.top] == sorted(
            (t.logprob for t in entry.top), reverse=True
        )
        assert all(t.logprob <= 0 for t in entry.top)
        assert sum(math.exp(t.logprob) for t in entry.top) <= 1 + 1e-6
        assert len({t.token_id for t in entry.top}) == 3
        # Greedy picks the most likely token.
        assert entry.top[0].token_id == entry.token_id
        assert entry.top[0].logprob == pytest.approx(entry.logprob, abs=1e-6)


async def test_logprobs_without_top(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    prompt = prompt_tokens(model, template, QUESTION)
    result = await run(engine, prompt, greedy(3, logprobs=True))
    for output in result.outputs:
        assert output.logprobs is not None
        assert output.logprobs[0].top == ()
        assert output.logprobs[0].logprob <= 0
    plain = await run(engine, prompt, greedy(3))
    assert all(o.logprobs is None for o in plain.outputs)


async def test_logit_bias_forces_a_token(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate
) -> None:
    banana = model.tokenize(" banana", add_special=False, parse_special=False)
    assert len(banana) == 1
    banana_id = banana[0]
    prompt = prompt_tokens(model, template, QUESTION)
    plain = await run(engine, prompt, greedy(4))
    assert plain.tokens[0] != banana_id
    biased = await run(engine, prompt, greedy(4, logit_bias={banana_id: 100.0}))
    assert biased.tokens[0] == banana_id
    assert biased.text.startswith(" banana")
    # A strongly negative bias bans the greedy token.
    banned = await run(engine, prompt, greedy(4, logit_bias={plain.tokens[0]: -100.0}))
    assert plain.tokens[0] not in banned.tokens


@pytest.mark.parametrize("temperature", [0.0, 0.7])
async def test_presence_and_frequency_penalties(
    engine: AsyncEngine, model: LlamaModel, template: ChatTemplate, temperature: float
) -> None:
    prompt = prompt_tokens(model, template, LONG_ANSWER)
    params = SamplingParams(
        max_tokens=24,
        temperature=temperature,
        seed=7,
        presence_penalty=1.5,
        frequency_penalty=1.0,
    )
    result = await run(engine, prompt, params)
    assert_well_formed(result, 24)
    assert result.finish_reason == "length"
    negative = await run(
        engine,
        prompt,
        SamplingParams(
            max_tokens=24,
            temperature=temperature,
            seed=7,
            presence_penalty=-1.0,
            frequency_penalty=-0.5,
        ),
    )
    assert_well_formed(negative, 24)
    await wait_idle(engine)


async def test_engine_is_idle_after_all_tests(engine: AsyncEngine) -> None:
    await wait_idle(engine)
    stats = engine.stats()
    assert stats.alive
    assert stats.kv_cache_capacity_tokens >= 4096
