"""A lock that goes to its waiters in the order they came.

`threading.Lock` lets a thread that releases it take it straight back, so a caller that holds
a model for one short stretch after another (a long embeddings request, read slice by slice)
can keep a waiting content-filter check out for as long as it likes. This one cannot: whoever
asks next waits behind those already waiting.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class FairLock:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False

    def acquire(self) -> None:
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            try:
                while self._held or self._waiting[0] is not ticket:
                    self._changed.wait()
            except BaseException:  # interrupted while waiting: let the next one have it
                self._waiting.remove(ticket)
                self._changed.notify_all()
                raise
            self._waiting.popleft()
            self._held = True

    def release(self) -> None:
        with self._changed:
            if not self._held:
                raise RuntimeError("release of a FairLock that is not held")
            self._held = False
            self._changed.notify_all()

    def locked(self) -> bool:
        with self._changed:
            return self._held

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
