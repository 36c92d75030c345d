"""Shared logic of the generation endpoints: sampling options, running n choices, usage."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request

from ceruleum.api.errors import ClientDisconnectedError, InvalidRequestError
from ceruleum.api.protocol import SamplingFields
from ceruleum.engine.async_engine import AsyncEngine
from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.outputs import SequenceOutput, TokenLogprob
from ceruleum.engine.sampling import SamplingParams
from ceruleum.settings import Settings

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_DISCONNECT_POLL_S = 0.25
_TOKEN_ID = re.compile(r"-?[0-9]{1,9}")  # ASCII digits only: str.isdigit() accepts "²"


def new_id(prefix: str) -> str:
    """Prefixed, unguessable ids in OpenAI's style (e.g. ``chatcmpl-…``)."""
    return prefix + "-" + "".join(secrets.choice(_ALPHABET) for _ in range(29))


def now() -> int:
    return int(time.time())


def build_sampling_params(
    body: SamplingFields,
    *,
    settings: Settings,
    model: LlamaModel,
    max_tokens: int,
    logprobs: bool,
    top_logprobs: int,
    choice_index: int,
    grammar: str | None = None,
) -> SamplingParams:
    stop = body.stop_list()
    if len(stop) > settings.max_stop_sequences:
        raise InvalidRequestError(
            f"'stop' has {len(stop)} sequences; at most {settings.max_stop_sequences} are allowed.",
            param="stop",
        )
    if any(len(s) > 1024 for s in stop):
        raise InvalidRequestError(
            "Each 'stop' sequence must be at most 1024 characters.", param="stop"
        )
    seed = body.seed + choice_index if body.seed is not None else None
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=max(1e-6, 1.0 if body.top_p is None else body.top_p),
        top_k=body.top_k or 0,
        min_p=body.min_p or 0.0,
        seed=seed,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        logit_bias=parse_logit_bias(body.logit_bias, model),
        stop=tuple(stop),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        grammar=grammar,
    )


def parse_logit_bias(raw: dict[str, float] | None, model: LlamaModel) -> dict[int, float]:
    if not raw:
        return {}
    if len(raw) > 1024:
        raise InvalidRequestError("'logit_bias' may name at most 1024 tokens.", param="logit_bias")
    bias: dict[int, float] = {}
    for key, value in raw.items():
        token = int(key) if _TOKEN_ID.fullmatch(key) else None
        if token is None or not model.is_valid_token(token):
            raise InvalidRequestError(
                f"Invalid key in 'logit_bias': {key!r} is not a token id of this model "
                f"(0 to {model.n_vocab - 1}).",
                param="logit_bias",
            )
        bias[token] = value
    return bias


def check_n(n: int, settings: Settings) -> None:
    if n > settings.max_n:
        raise InvalidRequestError(
            f"'n' is {n}; this server allows at most {settings.max_n}.", param="n"
        )


def resolve_max_tokens(
    requested: int | None, prompt_tokens: int, engine: AsyncEngine, param: str
) -> int:
    """Requested output budget, or all the context left. Too big: 400 with the token counts."""
    if requested is None:
        left = engine.context_window - prompt_tokens
        engine.check_fits(prompt_tokens, max(left, 1))
        return left
    if requested < 1:
        raise InvalidRequestError(f"'{param}' must be at least 1.", param=param)
    engine.check_fits(prompt_tokens, requested)
    return requested


@dataclass(slots=True)
class ChoiceState:
    """Accumulates one choice's outputs for non-streaming replies."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0

    def add(self, output: SequenceOutput) -> None:
        self.text += output.text
        self.token_ids.extend(output.token_ids)
        if output.logprobs:
            self.logprobs.extend(output.logprobs)
        self.completion_tokens = output.completion_tokens
        if output.finish_reason is not None:
            self.finish_reason = output.finish_reason


class ChoiceRun:
    """One sequence per (prompt, params) pair, run concurrently: iterate for (choice index,
    output) as they arrive. The sequences start at the first iteration, or earlier with
    `start()`. `stop(i)` ends one choice early (its sequence is aborted and its further outputs
    dropped); leaving the iteration early, `aclose()`, or a failure, aborts them all."""

    def __init__(
        self,
        engine: AsyncEngine,
        request_id: str,
        prompts: list[list[int]],
        params: list[SamplingParams],
    ) -> None:
        self._engine, self._request_id = engine, request_id
        self._prompts, self._params = prompts, params
        self._stopped: set[int] = set()
        self._done: set[int] = set()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._queue: asyncio.Queue[tuple[int, SequenceOutput | None] | BaseException] = (
            asyncio.Queue()
        )
        self._iterator = self._iterate()

    def __aiter__(self) -> AsyncIterator[tuple[int, SequenceOutput]]:
        return self._iterator

    def start(self) -> None:
        """Start the sequences now, before anyone iterates: their outputs wait in the queue."""
        if not self._tasks:
            self._tasks = {i: asyncio.create_task(self._pump(i)) for i in range(len(self._prompts))}

    async def aclose(self) -> None:
        await self._iterator.aclose()
        await self._cancel()  # started but never iterated: the iterator has nothing to close

    def stop(self, index: int) -> None:
        self._stopped.add(index)
        task = self._tasks.get(index)
        if task is not None and not task.done():
            task.cancel()  # its generate() aborts the sequence on the way out
        if index not in self._done:
            self._queue.put_nowait((index, None))

    def _sequence(self, index: int) -> AsyncGenerator[SequenceOutput]:
        return self._engine.generate(
            f"{self._request_id}-{index}", self._prompts[index], self._params[index]
        )

    async def _iterate(self) -> AsyncGenerator[tuple[int, SequenceOutput]]:
        if len(self._prompts) == 1 and not self._tasks:  # the common case: no task, no queue
            async with contextlib.aclosing(self._sequence(0)) as outputs:
                async for output in outputs:
                    yield 0, output
                    if self._stopped:
                        return
            return
        self.start()
        try:
            while len(self._done) < len(self._prompts):
                item = await self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                index, maybe = item
                if maybe is None:
                    self._done.add(index)
                elif index not in self._stopped:
                    yield index, maybe
        finally:
            await self._cancel()

    async def _cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _pump(self, index: int) -> None:
        try:
            async for output in self._sequence(index):
                self._queue.put_nowait((index, output))
            self._queue.put_nowait((index, None))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._queue.put_nowait(exc)


async def collect_choices(
    request: Request, stream: AsyncIterable[tuple[int, SequenceOutput]], count: int
) -> list[ChoiceState]:
    """Gather a whole reply, aborting the work if the client goes away meanwhile."""
    choices = [ChoiceState(i) for i in range(count)]

    async def consume() -> None:
        async for index, output in stream:
            choices[index].add(output)

    task = asyncio.create_task(consume())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_DISCONNECT_POLL_S)
            if done:
                task.result()
                return choices
            if await request.is_disconnected():
                raise ClientDisconnectedError
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
