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


def long_texts(count: int) -> list[str]:
    return [f"long{i:02d}-{i:03d}" for i in range(count)]  # ten characters each


def test_a_budget_splits_a_long_call_into_runs_and_keeps_its_rows_in_order() -> None:
    encoder = RecordingEncoder()
    encoder.release.set()
    texts = long_texts(7)
    rows = SharedBatches(encoder, max_chars=25).encode(texts)
    assert rows[:, 1].tolist() == [float(i) for i in range(7)]
    assert [len(batch) for batch in encoder.batches] == [2, 2, 2, 1]
    # A text longer than the budget still goes, alone.
    encoder.batches.clear()
    rows = SharedBatches(encoder, max_chars=5).encode(["x-1", "longer-2"])
    assert rows.tolist() == [[3.0, 1.0], [8.0, 2.0]]
    assert encoder.batches == [["x-1"], ["longer-2"]]


def test_a_short_call_waits_for_one_run_not_for_a_whole_long_call() -> None:
    encoder = RecordingEncoder()
    batches = SharedBatches(encoder, max_chars=25)
    texts = long_texts(10)
    with ThreadPoolExecutor(max_workers=2) as pool:
        long_call = pool.submit(batches.encode, texts)
        assert encoder.entered.wait(timeout=10)  # its first run is under way
        short_call = pool.submit(batches.encode, ["s-99"])
        deadline = time.monotonic() + 10
        while len(batches._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        encoder.release.set()
        assert short_call.result(timeout=10).tolist() == [[4.0, 99.0]]
        assert long_call.result(timeout=10)[:, 1].tolist() == [float(i) for i in range(10)]
    assert encoder.batches[0] == texts[:2]
    # The very next run takes the short call first, then fills the budget from the long one.
    assert encoder.batches[1] == ["s-99", *texts[2:4]]
    assert sum(len(batch) for batch in encoder.batches) == 11


def test_a_failed_run_fails_the_rest_of_a_long_call_too() -> None:
    seen: list[list[str]] = []

    def fails_second_run(texts: list[str]) -> Array:
        seen.append(list(texts))
        if len(seen) == 2:
            raise OSError("out of memory")
        return np.ones((len(texts), 2), dtype=np.float32)

    batches = SharedBatches(fails_second_run, max_chars=25)
    with pytest.raises(BatchedEncodeError):
        batches.encode(long_texts(10))
    assert len(seen) == 2  # nothing more of the failed call was encoded
    assert batches._queue == []
    assert batches.encode(["x-1"]).shape == (1, 2)


def test_no_texts_and_a_bad_budget() -> None:
    batches = SharedBatches(lambda texts: np.zeros((len(texts), 2), dtype=np.float32))
    assert batches.encode([]).shape == (0, 2)
    with pytest.raises(ValueError, match="max_chars"):
        SharedBatches(lambda texts: np.zeros((0, 2), dtype=np.float32), max_chars=0)


def test_a_short_call_returns_while_the_long_call_it_shared_a_run_with_goes_on() -> None:
    runs: list[list[str]] = []
    allowed = threading.Semaphore(0)  # one release lets one run finish

    def encode(texts: list[str]) -> Array:
        runs.append(list(texts))
        assert allowed.acquire(timeout=10)
        return np.array([[float(t.split("-")[1])] for t in texts], dtype=np.float32)

    batches = SharedBatches(encode, max_chars=25)
    with ThreadPoolExecutor(max_workers=2) as pool:
        long_call = pool.submit(batches.encode, long_texts(10))
        deadline = time.monotonic() + 10
        while not runs and time.monotonic() < deadline:
            time.sleep(0.01)
        short_call = pool.submit(batches.encode, ["s-99"])
        while len(batches._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        allowed.release()  # the long call's first run
        allowed.release()  # the next: the short call's text and two of the long call's
        assert short_call.result(timeout=10).tolist() == [[99.0]]
        assert not long_call.done()  # three runs of it are still to come
        for _ in range(3):
            allowed.release()
        assert long_call.result(timeout=10)[:, 0].tolist() == [float(i) for i in range(10)]
    assert len(runs) == 5
