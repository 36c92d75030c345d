"""Shared batches for concurrent callers of one model.

Concurrent requests each want a few short texts encoded by the same transformer. One forward
pass over all their texts costs far less than one pass each (on two cores, 8 short texts take
about 3.5 times as long as 1), so callers queue their texts and whoever next holds the run lock
encodes everything queued, its own and the others', and hands each caller its rows. No thread
waits for a timer: a lone caller runs at once, and a batch forms only while another is running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


class BatchedEncodeError(RuntimeError):
    """The shared batch this caller's texts were in failed (the cause is chained)."""


@dataclass(slots=True)
class _Call:
    texts: list[str]
    result: Array | None = None
    error: BaseException | None = None
    done: bool = False  # written and read under the run lock


class SharedBatches:
    def __init__(self, encode: Callable[[list[str]], Array]) -> None:
        self._encode = encode
        self._queue: list[_Call] = []
        self._queue_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Array:
        """The rows of `texts`, in order; from any thread."""
        call = _Call(list(texts))
        with self._queue_lock:
            self._queue.append(call)
        with self._run_lock:
            if not call.done:  # nobody took it along: run the queue, this call included
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run(batch)
        if call.error is not None:
            raise BatchedEncodeError("the batched encode failed") from call.error
        assert call.result is not None
        return call.result

    def _run(self, batch: list[_Call]) -> None:
        try:
            vectors = self._encode([text for call in batch for text in call.texts])
            if len(vectors) != sum(len(call.texts) for call in batch):
                raise ValueError("the encoder returned a different number of rows")
        except Exception as exc:
            for call in batch:
                call.error, call.done = exc, True
            return
        start = 0
        for call in batch:
            call.result = vectors[start : start + len(call.texts)]
            start += len(call.texts)
            call.done = True
