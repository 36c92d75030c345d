"""Analyzers: each a plugin of one small interface (segments in, findings out).

The built-ins are registered exactly as a plugin would be: a package can add its own analyzer
under the entry-point group ``ceruleum.safety_analyzers`` (name = a factory taking no
arguments), and then name it in ``CERULEUM_CONTENT_FILTER_ANALYZERS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Literal, Protocol

from ceruleum.safety.blocklist import REGEX_BUDGET_S, CompiledBlocklist
from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.classifier import ContentClassifier
from ceruleum.safety.profanity import contains_profanity

Role = Literal["system", "user", "assistant", "document"]
ENTRY_POINT_GROUP = "ceruleum.safety_analyzers"


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a prompt or completion: a message's text, with who it comes from.
    "document" is retrieved or tool content, where indirect attacks hide."""

    text: str
    role: Role = "user"


@dataclass(slots=True)
class Findings:
    """What analyzers found in one item (a prompt or a completion); merged across analyzers."""

    severities: dict[str, Severity] = field(default_factory=dict)
    detected: dict[str, bool] = field(default_factory=dict)  # jailbreak, indirect_attack, ...
    blocklist_hits: dict[str, bool] = field(default_factory=dict)  # blocklist name -> matched
    scores: dict[str, float] = field(default_factory=dict)  # classifier head -> probability

    def merge(self, other: Findings) -> None:
        for head, score in other.scores.items():
            self.scores[head] = max(self.scores.get(head, 0.0), score)
        for category, severity in other.severities.items():
            self.severities[category] = max(self.severities.get(category, Severity.SAFE), severity)
        for detector, hit in other.detected.items():
            self.detected[detector] = self.detected.get(detector, False) or hit
        for name, hit in other.blocklist_hits.items():
            self.blocklist_hits[name] = self.blocklist_hits.get(name, False) or hit


@dataclass(frozen=True, slots=True)
class Context:
    """Per-request inputs some analyzers need: the blocklists this side of the policy attaches."""

    blocklists: Sequence[CompiledBlocklist] = ()


class Analyzer(Protocol):
    name: str
    provides: frozenset[str]  # the annotation keys it answers for (lost if it fails)

    def analyze(self, items: Sequence[Sequence[Segment]], context: Context) -> list[Findings]:
        """One Findings per item, in order. May raise: the filter then annotates an error."""
        ...


class ClassifierAnalyzer:
    """The trained classifier: categories on every segment, jailbreak on user messages,
    indirect attacks on documents."""

    name = "classifier"
    provides = frozenset({*CATEGORIES, "jailbreak", "indirect_attack"})

    def __init__(self, classifier: Callable[[], ContentClassifier]) -> None:
        self._classifier = classifier

    def analyze(self, items: Sequence[Sequence[Segment]], context: Context) -> list[Findings]:
        flat = [(i, s) for i, item in enumerate(items) for s in item if s.text.strip()]
        scores = self._classifier().classify([s.text for _, s in flat]) if flat else []
        out = [Findings() for _ in items]
        for (index, segment), score in zip(flat, scores, strict=True):
            found = Findings(severities=dict(score.severities), scores=dict(score.probabilities))
            if segment.role == "user":
                found.detected["jailbreak"] = score.detected["jailbreak"]
            elif segment.role == "document":
                found.detected["indirect_attack"] = score.detected["indirect_attack"]
            out[index].merge(found)
        return out


class ProfanityAnalyzer:
    name = "profanity"
    provides = frozenset({"profanity"})

    def analyze(self, items: Sequence[Sequence[Segment]], context: Context) -> list[Findings]:
        return [
            Findings(detected={"profanity": any(contains_profanity(s.text) for s in item)})
            for item in items
        ]


class BlocklistAnalyzer:
    name = "blocklists"
    provides = frozenset({"custom_blocklists"})

    def analyze(self, items: Sequence[Sequence[Segment]], context: Context) -> list[Findings]:
        return [self._one(item, context.blocklists) for item in items]

    @staticmethod
    def _one(item: Sequence[Segment], blocklists: Sequence[CompiledBlocklist]) -> Findings:
        # One deadline for the item: what is still undecided when it passes counts as a match.
        deadline = time.monotonic() + REGEX_BUDGET_S
        return Findings(
            blocklist_hits={
                b.name: any(b.matches(s.text, deadline=deadline) for s in item) for b in blocklists
            }
        )


AnalyzerFactory = Callable[[], Analyzer]


def plugin_factories() -> dict[str, AnalyzerFactory]:
    """Analyzers other packages register under the entry-point group."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}
