"""The content filter: run every analyzer over a batch of items and judge them by a policy.

An analyzer that fails never leaves a request silently unfiltered: its annotation keys are
replaced by Azure's `error` annotation, and the failure is logged (by analyzer name only, never
the text).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ceruleum.safety.analyzers import Analyzer, Context, Findings, Segment
from ceruleum.safety.blocklist import CompiledBlocklist
from ceruleum.safety.policy import FilterRules, Source
from ceruleum.safety.verdict import Verdict

logger = logging.getLogger(__name__)


class ContentFilter:
    def __init__(
        self, analyzers: Sequence[Analyzer], *, state: Callable[[], str] = lambda: "ready"
    ) -> None:
        self.analyzers = list(analyzers)
        self._state = state

    @property
    def state(self) -> str:
        """ "loading" while a model still loads (requests wait for it), "ready" or "failed"."""
        return self._state()

    def check(
        self,
        items: Sequence[Sequence[Segment]],
        *,
        source: Source,
        rules: FilterRules,
        blocklists: Sequence[CompiledBlocklist] = (),
    ) -> list[Verdict]:
        """One verdict per item (a prompt, or one choice's completion text)."""
        attached = [b for b in blocklists if b.name in rules.blocklists]
        context = Context(blocklists=attached)
        merged = [Findings() for _ in items]
        failed: set[str] = set()
        for analyzer in self.analyzers:
            try:
                found = analyzer.analyze(items, context)
                if len(found) != len(items):
                    raise ValueError("an analyzer must return one finding per item")
            except Exception:
                logger.exception("content analyzer %r failed", analyzer.name)
                failed |= analyzer.provides
                continue
            for total, one in zip(merged, found, strict=True):
                total.merge(one)
        return [
            Verdict(
                source=source,
                rules=rules,
                findings=findings,
                failed=frozenset(failed),
                has_documents=any(s.role == "document" for s in item),
            )
            for item, findings in zip(items, merged, strict=True)
        ]

    async def check_async(
        self,
        items: Sequence[Sequence[Segment]],
        *,
        source: Source,
        rules: FilterRules,
        blocklists: Sequence[CompiledBlocklist] = (),
    ) -> list[Verdict]:
        """`check` off the event loop: the classifier is CPU work."""
        return await asyncio.to_thread(
            self.check, items, source=source, rules=rules, blocklists=blocklists
        )
