"""AsyncEngine: runs an EngineCore on its own thread and streams outputs to asyncio callers.

This is the narrow client interface the API talks to (generate / abort / stats), so the same
API can later drive an engine living in another process or on a Ray actor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from ceruleum.engine.core import EngineCore
from ceruleum.engine.errors import (
    ContextWindowExceededError,
    EngineDeadError,
    RequestFailedError,
)
from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.llama_runner import LlamaRunner, RunnerConfig
from ceruleum.engine.outputs import SequenceOutput
from ceruleum.engine.prefix_cache import PrefixCache
from ceruleum.engine.sampling import SamplingParams
from ceruleum.engine.scheduler import Scheduler
from ceruleum.engine.sequence import Sequence

logger = logging.getLogger(__name__)

_IDLE_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class EngineStats:
    alive: bool
    running: int
    waiting: int
    kv_cache_used_tokens: int
    kv_cache_capacity_tokens: int
    prefix_cache_entries: int
    prefix_cache_tokens: int


@dataclass(frozen=True, slots=True)
class EngineConfig:
    context_window: int
    kv_cache_tokens: int
    max_sequences: int
    max_batch_tokens: int
    n_threads: int
    prefix_cache_slots: int = 4  # spare llama.cpp sequences that hold recent prompts' KV


def _failed(seq: Sequence, message: str) -> SequenceOutput:
    return SequenceOutput(
        request_id=seq.request_id,
        text="",
        finish_reason="error",
        prompt_tokens=len(seq.prompt_tokens),
        error=message,
    )


class AsyncEngine:
    """One loaded chat/completion model with its continuous-batching loop."""

    def __init__(self, model: LlamaModel, config: EngineConfig) -> None:
        kv_tokens = max(config.kv_cache_tokens, config.context_window)
        runner = LlamaRunner(
            model,
            RunnerConfig(
                kv_cache_tokens=kv_tokens,
                max_sequences=config.max_sequences + config.prefix_cache_slots,
                max_batch_tokens=config.max_batch_tokens,
                n_threads=config.n_threads,
            ),
        )
        self.model = model
        self.context_window = min(config.context_window, model.n_ctx_train, runner.kv_capacity)
        cache_slots = list(
            range(config.max_sequences, config.max_sequences + config.prefix_cache_slots)
        )
        prefix_cache = (
            PrefixCache(cache_slots, max_entry_tokens=runner.kv_capacity // 8)
            if cache_slots
            else None
        )
        scheduler = Scheduler(
            max_sequences=config.max_sequences,
            max_batch_tokens=config.max_batch_tokens,
            kv_capacity=runner.kv_capacity,
            prefix_cache=prefix_cache,
        )
        self._core = EngineCore(model, runner, scheduler)
        self._inbox: deque[tuple[str, object]] = deque()
        self._wake = threading.Event()
        self._queues: dict[str, asyncio.Queue[SequenceOutput | BaseException]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._death: BaseException | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="ceruleum-engine", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop the loop and fail whatever is still in flight (call on the event loop)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._fail_all("the server is shutting down")
        if self._thread is None or not self._thread.is_alive():
            self._core.runner.close()

    @property
    def alive(self) -> bool:
        return self._death is None and self._thread is not None and self._thread.is_alive()

    def stats(self) -> EngineStats:
        scheduler = self._core.scheduler
        return EngineStats(
            alive=self.alive,
            running=len(scheduler.running),
            waiting=len(scheduler.waiting),
            kv_cache_used_tokens=scheduler.kv_used,
            kv_cache_capacity_tokens=scheduler.kv_capacity,
            prefix_cache_entries=len(scheduler.prefix_cache) if scheduler.prefix_cache else 0,
            prefix_cache_tokens=scheduler.prefix_cache.pinned_tokens
            if scheduler.prefix_cache
            else 0,
        )

    # --- client interface -------------------------------------------------------------------
    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + max_tokens > self.context_window:
            raise ContextWindowExceededError(prompt_tokens, max_tokens, self.context_window)

    async def generate(
        self, request_id: str, prompt_tokens: list[int], params: SamplingParams
    ) -> AsyncGenerator[SequenceOutput]:
        """Stream the outputs of one sequence. Leaving the iteration early aborts it."""
        if not self.alive:
            raise EngineDeadError("the engine is not running")
        if not prompt_tokens:
            raise ValueError("the prompt is empty")
        if not all(self.model.is_valid_token(t) for t in prompt_tokens):
            raise ValueError("the prompt contains token ids outside the vocabulary")
        self.check_fits(len(prompt_tokens), params.max_tokens)
        queue: asyncio.Queue[SequenceOutput | BaseException] = asyncio.Queue()
        self._queues[request_id] = queue
        self._submit("add", Sequence(request_id, list(prompt_tokens), params))
        finished = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                if item.error is not None:
                    finished = True
                    raise RequestFailedError(item.error)
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            self._queues.pop(request_id, None)
            if not finished:
                self.abort(request_id)

    def abort(self, request_id: str) -> None:
        self._submit("abort", request_id)

    # --- engine thread ----------------------------------------------------------------------
    def _submit(self, kind: str, payload: object) -> None:
        self._inbox.append((kind, payload))
        self._wake.set()

    def _drain_inbox(self) -> None:
        core = self._core
        while self._inbox:
            kind, payload = self._inbox.popleft()
            if kind == "add":
                assert isinstance(payload, Sequence)
                try:
                    payload.sampler = core.runner.new_sampler(payload.params)
                except Exception as exc:
                    self._post(self._deliver, [_failed(payload, str(exc))])
                    continue
                core.add(payload)
            elif kind == "abort":
                assert isinstance(payload, str)
                core.abort(payload)

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._drain_inbox()
                if not self._core.has_work():
                    self._wake.wait(_IDLE_WAIT_S)
                    self._wake.clear()
                    continue
                outputs = self._core.step()
                if outputs:
                    self._post(self._deliver, outputs)
        except BaseException as exc:  # the loop must report any death, not vanish silently
            logger.exception("engine for %s died", self.model.path.name)
            self._death = exc
            self._post(self._fail_all)

    def _post(self, callback: object, *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]

    # --- event loop side --------------------------------------------------------------------
    def _deliver(self, outputs: list[SequenceOutput]) -> None:
        for output in outputs:
            queue = self._queues.get(output.request_id)
            if queue is not None:
                queue.put_nowait(output)

    def _fail_all(self, reason: str = "the engine stopped while serving this request") -> None:
        for queue in self._queues.values():
            queue.put_nowait(EngineDeadError(reason))
