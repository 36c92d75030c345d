"""Shared batches for concurrent callers of one model.

Concurrent requests each want a few short texts encoded by the same transformer. One forward
pass over all their texts costs far less than one pass each (on two cores, 8 short texts take
about 3.5 times as long as 1), so callers queue their texts and whichever caller starts the
next run encodes what is queued, its own and the others', and hands each caller its rows. No
thread waits for a timer: a lone caller runs at once, and a batch forms only while a run is
under way. A caller whose rows another caller's run produced is woken as soon as they are done.

With a budget of characters per run, one caller's long text (a 100,000-character moderation
input takes seconds) is encoded over several runs, and each run takes the callers with the
least left to encode first: a short prompt that arrives meanwhile waits for one run, not for
the whole long text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]

# About a seventh of a second of MiniLM on one core (bfloat16, some 31,000 window characters a
# second), so a short check waits little behind a long one, and still few enough runs under
# ordinary load that batching keeps paying (bench/safety_fairness.py; docs/safety.md).
CLASSIFIER_RUN_CHARS = 4_096


class BatchedEncodeError(RuntimeError):
    """The shared batch this caller's texts were in failed (the cause is chained)."""


@dataclass(slots=True)
class _Call:
    texts: list[str]
    taken: int = 0  # texts handed to a run so far
    parts: list[tuple[int, Array]] = field(default_factory=list)  # (first text, its rows)
    encoded: int = 0
    error: BaseException | None = None
    done: bool = False

    def left(self) -> int:
        return sum(len(text) for text in self.texts[self.taken :])

    def result(self) -> Array:
        rows = [part for _, part in sorted(self.parts, key=lambda part: part[0])]
        return np.concatenate(rows) if len(rows) > 1 else rows[0]


@dataclass(slots=True)
class _Share:
    call: _Call
    first: int
    count: int


class SharedBatches:
    def __init__(
        self, encode: Callable[[list[str]], Array], *, max_chars: int | None = None
    ) -> None:
        """`max_chars`: at most this many characters a run (at least one text); None: a run
        takes everything queued."""
        if max_chars is not None and max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self._encode = encode
        self._max_chars = max_chars
        # Guards the queue, the calls' fields and `_running`; one run at a time.
        self._changed = threading.Condition()
        self._queue: list[_Call] = []
        self._running = False

    def encode(self, texts: Sequence[str]) -> Array:
        """The rows of `texts`, in order; from any thread."""
        if not texts:
            return self._encode([])
        # Shortest first: the runs a long call is split into then hold texts of like length,
        # which pad little, as one run over all of them sorted would.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = self._encode_in_runs(_Call([texts[i] for i in order]))
        out = np.empty_like(rows)
        out[order] = rows
        return out

    def _encode_in_runs(self, call: _Call) -> Array:
        with self._changed:
            self._queue.append(call)
            while not call.done:
                if self._running:
                    self._changed.wait()
                else:
                    self._run_next()
        if call.error is not None:
            raise BatchedEncodeError("the batched encode failed") from call.error
        return call.result()

    def _run_next(self) -> None:
        """One run; called holding `_changed`, which it lets go of while the model works."""
        shares = self._next_run()
        texts = [t for s in shares for t in s.call.texts[s.first : s.first + s.count]]
        self._running = True
        self._changed.release()
        vectors = np.zeros((0, 0), dtype=np.float32)
        failure: BaseException | None = None
        try:
            vectors = self._encode(texts)
            if len(vectors) != len(texts):
                failure = ValueError("the encoder returned a different number of rows")
        except BaseException as exc:  # an interrupt too: no caller may wait for these rows
            failure = exc
        finally:
            self._changed.acquire()
            self._running = False
            self._changed.notify_all()
        if failure is not None:
            self._fail(shares, failure)
            if not isinstance(failure, Exception):
                raise failure
            return
        start = 0
        for share in shares:
            call = share.call
            call.parts.append((share.first, vectors[start : start + share.count]))
            start += share.count
            call.encoded += share.count
            call.done = call.encoded == len(call.texts)

    def _next_run(self) -> list[_Share]:
        """Texts for one run, the callers with the least left first."""
        shares: list[_Share] = []
        chars = 0
        for call in sorted(self._queue, key=_Call.left):
            first = call.taken
            while call.taken < len(call.texts):
                size = len(call.texts[call.taken])
                if self._max_chars is not None and chars and chars + size > self._max_chars:
                    break
                chars += size
                call.taken += 1
            if call.taken > first:
                shares.append(_Share(call, first, call.taken - first))
            if call.taken < len(call.texts):
                break  # the budget is spent
        self._queue = [call for call in self._queue if call.taken < len(call.texts)]
        return shares

    def _fail(self, shares: list[_Share], error: BaseException) -> None:
        failed = {id(share.call) for share in shares}
        for share in shares:
            share.call.error, share.call.done = error, True
        # The rest of a failed call's texts is not wanted.
        self._queue = [call for call in self._queue if id(call) not in failed]
