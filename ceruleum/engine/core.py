"""The synchronous engine step: schedule -> execute -> update."""

from __future__ import annotations

import logging

from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.llama_runner import BatchEntry, KVCacheFullError, LlamaRunner
from ceruleum.engine.logprobs import token_logprob
from ceruleum.engine.outputs import FinishReason, SequenceOutput
from ceruleum.engine.scheduler import ScheduledChunk, Scheduler
from ceruleum.engine.sequence import Sequence

logger = logging.getLogger(__name__)


class EngineCore:
    """Scheduler + llama.cpp runner + output processing. Driven by one thread."""

    def __init__(self, model: LlamaModel, runner: LlamaRunner, scheduler: Scheduler) -> None:
        self.model = model
        self.runner = runner
        self.scheduler = scheduler

    def add(self, seq: Sequence) -> None:
        self.scheduler.add(seq)

    def abort(self, request_id: str) -> bool:
        seq = self.scheduler.find(request_id)
        if seq is None:
            return False
        self._release(seq)
        return True

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    def step(self) -> list[SequenceOutput]:
        plan = self.scheduler.schedule()
        # Order matters: a preempted slot may be reused by an admitted sequence, and an evicted
        # cache entry may be the source of a hit in this same plan.
        for _, slot in plan.preempted:
            self.runner.free_slot(slot)
        for seq, cache_slot, length in plan.prefix_hits:
            assert seq.slot is not None
            self.runner.copy_kv(cache_slot, seq.slot, length)
        for cache_slot in plan.evicted_cache_slots:
            self.runner.free_slot(cache_slot)
        failed: list[SequenceOutput] = []
        chunks = plan.chunks
        while True:
            if not chunks:
                return failed
            try:
                rows = self.runner.decode([self._entry(c) for c in chunks])
                break
            except KVCacheFullError:
                # The cache is fragmented or fuller than accounted: shed the newest and retry.
                chunks, dropped = self._shed_newest(chunks)
                failed.extend(dropped)
        outputs = failed
        for chunk in chunks:
            seq = chunk.seq
            completes = chunk.completes_pending
            seq.num_cached += chunk.num_tokens
            row = rows.get(seq.slot) if completes and seq.slot is not None else None
            if row is not None:
                outputs.append(self._sample(seq, row))
        return outputs

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _entry(chunk: ScheduledChunk) -> BatchEntry:
        seq = chunk.seq
        assert seq.slot is not None
        start = seq.num_cached
        return BatchEntry(
            slot=seq.slot,
            tokens=seq.token_slice(start, start + chunk.num_tokens),
            start_pos=start,
            want_logits=chunk.completes_pending,
        )

    def _shed_newest(
        self, chunks: list[ScheduledChunk]
    ) -> tuple[list[ScheduledChunk], list[SequenceOutput]]:
        preempted = self.scheduler.preempt_newest()
        if preempted is not None:
            seq, slot = preempted
            self.runner.free_slot(slot)
            return [c for c in chunks if c.seq is not seq], []
        # A single sequence that does not fit: fail it, keep the engine alive.
        dropped = []
        for chunk in chunks:
            self._release(chunk.seq)
            dropped.append(self._final(chunk.seq, "", "error", error="KV cache exhausted"))
        return [], dropped

    def _sample(self, seq: Sequence, row: int) -> SequenceOutput:
        assert seq.sampler is not None
        params = seq.params
        token = seq.sampler.sample(row)
        logprobs = None
        if params.logprobs:
            logits = self.runner.logits(row)
            logprobs = [token_logprob(self.model, logits, token, params.top_logprobs)]
        if not seq.output_tokens:
            self._remember_prompt(seq)
        seq.output_tokens.append(token)

        reason: FinishReason | None = None
        if self.model.is_end_of_generation(token) or token in params.extra_stop_token_ids:
            text = seq.text.flush()
            reason = "stop"
        else:
            text = seq.text.push(self.model.piece(token))
            if seq.text.stopped:
                reason = "stop"
            elif len(seq.output_tokens) >= params.max_tokens:
                text += seq.text.flush()
                reason = "length"
        out = SequenceOutput(
            request_id=seq.request_id,
            text=text,
            token_ids=[token],
            logprobs=logprobs,
            finish_reason=reason,
            prompt_tokens=len(seq.prompt_tokens),
            completion_tokens=len(seq.output_tokens),
        )
        if reason is not None:
            self._release(seq)
        return out

    def _remember_prompt(self, seq: Sequence) -> None:
        """The prompt is fully in the KV cache now: keep a copy for later prompts to share."""
        cache = self.scheduler.prefix_cache
        reserved = cache.reserve(seq.prompt_tokens) if cache is not None else None
        if reserved is None or seq.slot is None:
            return
        cache_slot, needs_clear = reserved
        if needs_clear:
            self.runner.free_slot(cache_slot)
        self.runner.copy_kv(seq.slot, cache_slot, len(seq.prompt_tokens))

    def _final(
        self, seq: Sequence, text: str, reason: FinishReason, error: str | None = None
    ) -> SequenceOutput:
        return SequenceOutput(
            request_id=seq.request_id,
            text=text,
            finish_reason=reason,
            prompt_tokens=len(seq.prompt_tokens),
            completion_tokens=len(seq.output_tokens),
            error=error,
        )

    def _release(self, seq: Sequence) -> None:
        slot = self.scheduler.remove(seq)
        if slot is not None:
            self.runner.free_slot(slot)
        if seq.sampler is not None:
            seq.sampler.close()
            seq.sampler = None
