"""SharedBatches: concurrent callers share one encode and each gets exactly its own rows."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ceruleum.safety.batching import Array, BatchedEncodeError, SharedBatches


class RecordingEncoder:
    """Encodes a text as [its length, its number]; the first call waits until released, so
    that the callers arriving meanwhile queue up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, texts: list[str]) -> Array:
        self.batches.append(list(texts))
        self.entered.set()
        self.release.wait(timeout=10)
        return np.array([[len(t), float(t.split("-")[1])] for t in texts], dtype=np.float32)


def test_a_lone_caller_runs_at_once() -> None:
    encoder = RecordingEncoder()
    encoder.release.set()
    rows = SharedBatches(encoder).encode(["a-1", "bb-2"])
    assert rows.tolist() == [[3.0, 1.0], [4.0, 2.0]]
    assert encoder.batches == [["a-1", "bb-2"]]


def test_callers_arriving_during_an_encode_share_the_next_one() -> None:
    encoder = RecordingEncoder()
    batches = SharedBatches(encoder)
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(batches.encode, ["t-0"])
        assert encoder.entered.wait(timeout=10)
        later = [pool.submit(batches.encode, [f"t-{i}", f"tt-{i}"]) for i in range(1, 6)]
        # Every later caller has queued its texts before the first encode ends.
        deadline = time.monotonic() + 10
        while len(batches._queue) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        encoder.release.set()
        assert first.result().tolist() == [[3.0, 0.0]]
        for i, future in enumerate(later, start=1):
            assert future.result().tolist() == [[3.0, float(i)], [4.0, float(i)]]
    assert len(encoder.batches) == 2  # the first call, then all five others together
    assert sorted(encoder.batches[1]) == sorted(
        text for i in range(1, 6) for text in (f"t-{i}", f"tt-{i}")
    )


def test_a_failed_batch_fails_each_caller_in_it_and_the_next_call_works() -> None:
    calls = 0

    def flaky(texts: list[str]) -> Array:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("out of memory")
        return np.ones((len(texts), 2), dtype=np.float32)

    batches = SharedBatches(flaky)
    with pytest.raises(BatchedEncodeError) as caught:
        batches.encode(["x-1"])
    assert isinstance(caught.value.__cause__, OSError)
    assert batches.encode(["x-1", "y-2"]).shape == (2, 2)


def test_a_wrong_row_count_is_an_error_not_a_silent_misalignment() -> None:
    batches = SharedBatches(lambda texts: np.ones((1, 2), dtype=np.float32))
    with pytest.raises(BatchedEncodeError):
        batches.encode(["a-1", "b-2"])
