"""Custom blocklists: a project's exact terms and regular expressions, compiled for matching.

Terms match case-insensitively as whole words or phrases, after Unicode normalisation (NFKC),
so "Acme" also catches "ACME" and full-width "Acme" but not "acmeville". Patterns are regular
expressions run by the `regex` engine with a time limit, so that a pathological pattern written
by a tenant can slow its own requests down only so much and never hangs the server. The limit
holds per pattern and, through a deadline, for all of a blocklist's patterns on one item: ten
thousand patterns that each stay just under the per-pattern limit would otherwise hold a server
thread for minutes on every request.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import regex

MAX_PATTERN_LENGTH = 1000
MAX_TERM_LENGTH = 128
REGEX_TIMEOUT_S = 0.05  # one pattern on one text
# All patterns of the attached blocklists on one item (a prompt or a completion), together.
REGEX_BUDGET_S = 1.0


class BlocklistPatternError(ValueError):
    """A pattern that cannot be stored (invalid regex, too long, empty)."""


@dataclass(frozen=True, slots=True)
class BlocklistItem:
    id: str
    pattern: str
    is_regex: bool = False


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def check_pattern(pattern: str, *, is_regex: bool) -> None:
    """Raise BlocklistPatternError unless the pattern can be stored and compiled."""
    if not pattern.strip():
        raise BlocklistPatternError("A blocklist item needs a non-empty pattern.")
    limit = MAX_PATTERN_LENGTH if is_regex else MAX_TERM_LENGTH
    if len(pattern) > limit:
        kind = "A regular expression" if is_regex else "A term"
        raise BlocklistPatternError(f"{kind} may be at most {limit} characters long.")
    if is_regex:
        try:
            regex.compile(pattern, regex.IGNORECASE | regex.V0)
        except (regex.error, OverflowError, RecursionError) as exc:
            raise BlocklistPatternError(f"Invalid regular expression: {exc}") from None


class CompiledBlocklist:
    def __init__(self, blocklist_id: str, name: str, items: Sequence[BlocklistItem]) -> None:
        self.id, self.name = blocklist_id, name
        terms = sorted({normalize(i.pattern.strip()) for i in items if not i.is_regex}, key=len)
        # One alternation for all terms; longest first so a phrase wins over its first word.
        self._terms = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in reversed(terms)) + r")(?!\w)")
            if terms
            else None
        )
        self._patterns = [
            regex.compile(i.pattern, regex.IGNORECASE | regex.V0) for i in items if i.is_regex
        ]

    def matches(self, text: str, *, deadline: float | None = None) -> bool:
        """Whether `text` holds one of the items; `deadline` (time.monotonic()) bounds the
        regular expressions together. Undecided in time counts as a match: a blocklist fails
        closed."""
        if self._terms is not None and self._terms.search(normalize(text)):
            return True
        for pattern in self._patterns:
            timeout = REGEX_TIMEOUT_S
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return True
            try:
                if pattern.search(text, timeout=timeout):
                    return True
            except TimeoutError:
                return True
        return False
