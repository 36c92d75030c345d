"""Continuous-batching policy: which sequences run this step, and how many tokens each.

Every step, running sequences that are decoding get one token each; the remaining token budget
goes to prompts being prefilled, in chunks, so a long prompt never stalls the others. Waiting
sequences are admitted as soon as a slot and room in the KV cache are free. When the KV cache
runs out, the most recently admitted sequence is preempted (its cache is dropped and it is
recomputed later), as in vLLM and nano-vllm. Cached prompt prefixes are given up before any
running sequence is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ceruleum.engine.prefix_cache import PrefixCache
from ceruleum.engine.sequence import Sequence


@dataclass(slots=True)
class ScheduledChunk:
    seq: Sequence
    num_tokens: int

    @property
    def completes_pending(self) -> bool:
        return self.num_tokens == self.seq.num_pending


@dataclass(slots=True)
class SchedulerOutput:
    chunks: list[ScheduledChunk] = field(default_factory=list)
    preempted: list[tuple[Sequence, int]] = field(default_factory=list)  # (sequence, old slot)
    # Admitted sequences that start from a cached prefix: (sequence, cache slot, tokens to copy).
    prefix_hits: list[tuple[Sequence, int, int]] = field(default_factory=list)
    evicted_cache_slots: list[int] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        *,
        max_sequences: int,
        max_batch_tokens: int,
        kv_capacity: int,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.kv_capacity = kv_capacity
        self.prefix_cache = prefix_cache
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._free_slots = list(range(max_sequences - 1, -1, -1))

    # --- membership -------------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def find(self, request_id: str) -> Sequence | None:
        for seq in self.running:
            if seq.request_id == request_id:
                return seq
        for seq in self.waiting:
            if seq.request_id == request_id:
                return seq
        return None

    def remove(self, seq: Sequence) -> int | None:
        """Take a sequence out (finished or aborted); return the slot whose KV must be freed."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        slot, seq.slot = seq.slot, None
        if slot is not None:
            self._free_slots.append(slot)
        return slot

    def preempt_newest(self) -> tuple[Sequence, int] | None:
        """Drop the KV cache of the most recently admitted running sequence (never the only one)."""
        if len(self.running) < 2:
            return None
        seq = self.running.pop()
        slot = seq.slot
        assert slot is not None
        seq.slot = None
        seq.num_cached = 0
        self._free_slots.append(slot)
        self.waiting.appendleft(seq)
        return seq, slot

    # --- accounting -------------------------------------------------------------------------
    @property
    def kv_used(self) -> int:
        return sum(seq.num_cached for seq in self.running)

    def _kv_committed(self) -> int:
        """Cells in use plus cells the running sequences still need for their pending tokens."""
        pinned = self.prefix_cache.pinned_tokens if self.prefix_cache else 0
        return pinned + sum(seq.num_tokens for seq in self.running)

    def _evict_cached_prefix(self, out: SchedulerOutput) -> bool:
        slot = self.prefix_cache.evict_oldest() if self.prefix_cache else None
        if slot is None:
            return False
        out.evicted_cache_slots.append(slot)
        return True

    # --- the policy -------------------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        # Decoding sequences grow by one cell a step; make room by preempting the newest.
        while self._kv_committed() > self.kv_capacity:
            if self._evict_cached_prefix(out):
                continue
            preempted = self.preempt_newest()
            if preempted is None:
                break
            out.preempted.append(preempted)

        budget = self.max_batch_tokens
        decoding = [s for s in self.running if s.num_pending == 1]
        prefilling = [s for s in self.running if s.num_pending > 1]
        for seq in decoding:
            if budget == 0:
                break
            out.chunks.append(ScheduledChunk(seq, 1))
            budget -= 1
        # While others wait, a long prefill gets at most half the budget, so new requests are
        # admitted (and start streaming) instead of queueing behind it.
        prefill_cap = self.max_batch_tokens // 2 if self.waiting else self.max_batch_tokens
        for seq in prefilling:
            if budget == 0:
                break
            n = min(seq.num_pending, budget, prefill_cap)
            out.chunks.append(ScheduledChunk(seq, n))
            budget -= n

        while self.waiting and self._free_slots and budget > 0:
            seq = self.waiting[0]
            if seq.num_tokens > self.kv_capacity - self._kv_committed():
                if self._evict_cached_prefix(out):
                    continue
                break  # admit in order: a big prompt is not overtaken forever
            self.waiting.popleft()
            seq.slot = self._free_slots.pop()
            self.running.append(seq)
            self._reuse_cached_prefix(seq, out)
            n = min(seq.num_pending, budget)
            out.chunks.append(ScheduledChunk(seq, n))
            budget -= n
        return out

    def _reuse_cached_prefix(self, seq: Sequence, out: SchedulerOutput) -> None:
        if self.prefix_cache is None or seq.num_cached:
            return
        hit = self.prefix_cache.match(seq.prompt_tokens)
        if hit is not None:
            cache_slot, length = hit
            seq.num_cached = length
            out.prefix_hits.append((seq, cache_slot, length))
