"""FairLock: waiters get the lock in the order they came, and the holder cannot take it back
ahead of them."""

from __future__ import annotations

import threading
import time

import pytest

from ceruleum.engine.fair_lock import FairLock


def wait_for(condition: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)
    assert condition(), "timed out"  # type: ignore[operator]


def test_waiters_get_the_lock_in_the_order_they_came() -> None:
    lock = FairLock()
    order: list[int] = []
    lock.acquire()
    threads = []
    for i in range(4):
        thread = threading.Thread(
            target=lambda i=i: (lock.acquire(), order.append(i), lock.release())
        )
        thread.start()
        threads.append(thread)
        wait_for(lambda n=i + 1: len(lock._waiting) == n)
    lock.release()
    for thread in threads:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3]


def test_a_holder_that_asks_again_queues_behind_a_waiter() -> None:
    lock = FairLock()
    order: list[str] = []
    lock.acquire()
    waiter = threading.Thread(
        target=lambda: (lock.acquire(), order.append("waiter"), lock.release())
    )
    waiter.start()
    wait_for(lambda: len(lock._waiting) == 1)
    lock.release()
    with lock:  # a threading.Lock would usually go straight back to this thread
        order.append("holder again")
    waiter.join(timeout=10)
    assert order == ["waiter", "holder again"]


def test_releasing_an_unheld_lock_is_an_error() -> None:
    lock = FairLock()
    with pytest.raises(RuntimeError):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()
