"""Profanity detection: vulgar words from a curated list, robust to case, leetspeak and
stretched letters ("fuuuck", "sh1t", "F*CK" are caught; "Scunthorpe" and "class" are not)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "!": "i",
        "*": "u",
    }
)
_WORD = re.compile(r"[\w@$*!]+")
_STRETCH = re.compile(r"(.)\1{2,}")  # three or more of a letter become two


@lru_cache(maxsize=1)
def word_list() -> frozenset[str]:
    text = (resources.files("ceruleum.safety") / "data" / "profanity.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def _variants(word: str) -> Iterable[str]:
    plain = word.casefold()
    yield plain
    unleet = plain.translate(_LEET)
    for form in {unleet, _STRETCH.sub(r"\1\1", unleet)}:
        yield form
        yield _STRETCH.sub(r"\1", form)  # "fuuuck" -> "fuck"; "shiiit" -> "shit"


def contains_profanity(text: str) -> bool:
    words = word_list()
    tokens = [t for t in _WORD.findall(text)]
    for index, token in enumerate(tokens):
        if any(v in words for v in _variants(token)):
            return True
        # Phrases of up to four words ("son of a bitch").
        for size in (2, 3, 4):
            phrase = " ".join(tokens[index : index + size]).casefold()
            if len(tokens) - index >= size and phrase in words:
                return True
    return False
