"""The harm categories, their severities, and the detectors, named as Azure OpenAI names them."""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

CATEGORIES: tuple[str, ...] = ("hate", "sexual", "violence", "self_harm")
# Detectors answer detected / not detected rather than a severity.
PROMPT_DETECTORS: tuple[str, ...] = ("jailbreak", "indirect_attack")
Category = Literal["hate", "sexual", "violence", "self_harm"]


class Severity(IntEnum):
    SAFE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def wire(self) -> str:
        """Azure's spelling: "safe", "low", "medium", "high"."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Severity:
        return cls[value.upper()]


SEVERITY_NAMES: tuple[str, ...] = tuple(s.wire for s in Severity)
