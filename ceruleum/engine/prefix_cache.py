"""Prefix cache: keep the KV of recent prompts in spare llama.cpp sequences, so a new prompt that
shares a prefix with one of them (a system prompt, an earlier chat turn) starts from a copy instead
of recomputing it. In llama.cpp's unified KV cache a copy only tags the cells with one more
sequence id, so it costs no memory and no compute.

This class is pure bookkeeping; the engine core performs the KV operations it asks for.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class CachedPrefix:
    slot: int
    tokens: list[int]
    last_used: int


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    def __init__(self, slots: list[int], *, min_match: int = 8, max_entry_tokens: int) -> None:
        self._free = list(slots)
        self._entries: list[CachedPrefix] = []
        self._clock = 0
        self.min_match = min_match
        self.max_entry_tokens = max_entry_tokens

    @property
    def pinned_tokens(self) -> int:
        """Cells held by cache entries (an upper bound: they may be shared with sequences)."""
        return sum(len(entry.tokens) for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, prompt: list[int]) -> tuple[int, int] | None:
        """(slot, length) of the longest cached prefix of the prompt, leaving at least one prompt
        token to evaluate (its logits start the generation)."""
        best: CachedPrefix | None = None
        best_len = 0
        for entry in self._entries:
            length = min(common_prefix_length(entry.tokens, prompt), len(prompt) - 1)
            if length > best_len:
                best, best_len = entry, length
        if best is None or best_len < self.min_match:
            return None
        self._touch(best)
        return best.slot, best_len

    def reserve(self, prompt: list[int]) -> tuple[int, bool] | None:
        """A slot to store this prompt's KV in, and whether the slot's old KV must be cleared.
        None when the prompt is already covered or not worth caching."""
        if len(prompt) < self.min_match or len(prompt) > self.max_entry_tokens:
            return None
        for entry in self._entries:
            if common_prefix_length(entry.tokens, prompt) == len(prompt):
                self._touch(entry)  # an entry already holds all of it
                return None
        if self._free:
            slot, needs_clear = self._free.pop(), False
        else:
            victim = min(self._entries, key=lambda e: e.last_used)
            self._entries.remove(victim)
            slot, needs_clear = victim.slot, True
        self._clock += 1
        self._entries.append(CachedPrefix(slot, list(prompt), self._clock))
        return slot, needs_clear

    def evict_oldest(self) -> int | None:
        """Drop the least recently used entry; return its slot (the caller clears its KV)."""
        if not self._entries:
            return None
        victim = min(self._entries, key=lambda e: e.last_used)
        self._entries.remove(victim)
        self._free.append(victim.slot)
        return victim.slot

    def _touch(self, entry: CachedPrefix) -> None:
        self._clock += 1
        entry.last_used = self._clock
