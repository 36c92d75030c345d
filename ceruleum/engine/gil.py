"""The GIL's switch interval, which the engine thread and the event loop share.

The engine thread runs Python between its llama.cpp calls (scheduling, batch building, sampling,
detokenizing). When the event loop thread gives up the GIL for a moment (a socket call, a database
read) and the engine thread takes it, the loop may wait up to the switch interval (5 ms by
default) to get it back: that wait lands on the request being served. A shorter interval bounds
it, at the cost of more frequent switches for the engine thread.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def switch_interval(milliseconds: float | None) -> Iterator[None]:
    """Use this switch interval while the block runs (None: leave it as it is)."""
    if milliseconds is None:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(milliseconds / 1000)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
