"""Incremental detokenization with stop strings that are never emitted, even across tokens."""

from __future__ import annotations

import codecs


class StreamingText:
    """Turns token pieces (bytes) into text, holding back what could still become a stop string."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._longest_stop = max((len(s) for s in self._stop), default=0)
        self._text = ""
        self._emitted = 0
        self.stopped = False

    @property
    def text(self) -> str:
        """All text released so far."""
        return self._text[: self._emitted]

    def push(self, piece: bytes) -> str:
        """Add a token's bytes; return the newly releasable text. Sets ``stopped`` on a stop hit."""
        self._text += self._decoder.decode(piece)
        if not self._stop:
            return self._release(len(self._text))
        search_from = max(0, self._emitted - self._longest_stop + 1)
        hit = self._first_stop(search_from)
        if hit is not None:
            self._text = self._text[:hit]
            self.stopped = True
            return self._release(hit)
        return self._release(len(self._text) - self._partial_stop_suffix())

    def flush(self) -> str:
        """Release everything held back (the sequence ended without completing a stop string)."""
        if not self.stopped:
            self._text += self._decoder.decode(b"", final=True)
        return self._release(len(self._text))

    def _first_stop(self, start: int) -> int | None:
        found = [i for s in self._stop if (i := self._text.find(s, start)) >= 0]
        return min(found) if found else None

    def _partial_stop_suffix(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        text = self._text
        for length in range(min(self._longest_stop - 1, len(text) - self._emitted), 0, -1):
            tail = text[-length:]
            if any(s.startswith(tail) for s in self._stop):
                return length
        return 0

    def _release(self, end: int) -> str:
        end = max(end, self._emitted)
        new = self._text[self._emitted : end]
        self._emitted = end
        return new
