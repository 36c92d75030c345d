"""Buffered release of streamed choices (Azure's default streaming mode): a choice's chunks are
held until the content filter has checked the text they carry, then released together with the
check's annotation; a choice whose text turns harmful ends with finish_reason `content_filter`
and nothing of the harmful part reaches the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ceruleum.api.filtering import RequestFilter

# Text kept from the last checked chunk, so that a phrase split across two chunks is seen whole.
OVERLAP_CHARS = 200

Choice = dict[str, Any]


class StreamFilter:
    def __init__(
        self,
        request_filter: RequestFilter,
        choices: int,
        *,
        chunk_chars: int,
        terminal: Callable[[int, dict[str, Any]], Choice],
    ) -> None:
        """`terminal(index, annotation)` builds the closing choice of a filtered choice."""
        self._filter = request_filter
        self._chunk_chars = chunk_chars
        self._terminal = terminal
        self._held: list[list[Choice]] = [[] for _ in range(choices)]
        self._text = [""] * choices
        self._tail = [""] * choices

    def hold(self, index: int, choices: list[Choice], text: str) -> None:
        self._held[index].extend(choices)
        self._text[index] += text

    def due(self, index: int, finished: bool) -> bool:
        if not self._filter.enabled:
            return True
        return finished or len(self._text[index]) >= self._chunk_chars

    async def release(self, index: int) -> tuple[list[Choice], bool]:
        """(choices to send now, whether this choice was filtered and must stop)."""
        held, text = self._held[index], self._text[index]
        self._held[index], self._text[index] = [], ""
        verdicts = await self._filter.check_completions([self._tail[index] + text])
        if verdicts is None:
            return held, False
        verdict = verdicts[0]
        annotation = verdict.annotation()
        if verdict.filtered:
            return [self._terminal(index, annotation)], True
        self._tail[index] = (self._tail[index] + text)[-OVERLAP_CHARS:]
        if held:
            held[-1] = {**held[-1], "content_filter_results": annotation}
        return held, False
