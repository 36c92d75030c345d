"""Labelled safety data: JSONL files as described in data/safety/GUIDELINES.md."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.classifier import DETECTORS, LEVELS, head_names

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "safety"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    severities: dict[str, Severity]
    detected: dict[str, bool]
    role: str
    source: str  # the file it came from
    note: str = ""

    @property
    def benign(self) -> bool:
        return all(s == Severity.SAFE for s in self.severities.values()) and not any(
            self.detected.values()
        )

    def targets(self) -> list[bool]:
        """One truth value per classifier head, in head order."""
        out = [self.severities[c] >= level for c in CATEGORIES for level in LEVELS]
        return [*out, *(self.detected[d] for d in DETECTORS)]


def parse_line(line: str, source: str) -> Example:
    item = json.loads(line)
    labels = item.get("labels", {})
    unknown = set(labels) - {*CATEGORIES, *DETECTORS}
    if unknown or not isinstance(item.get("text"), str) or not item["text"].strip():
        raise ValueError(f"{source}: bad item {line[:80]!r}")
    return Example(
        text=item["text"],
        severities={c: Severity.parse(labels.get(c, "safe")) for c in CATEGORIES},
        detected={d: bool(labels.get(d, False)) for d in DETECTORS},
        role=item.get("role", "user"),
        source=source,
        note=item.get("note", ""),
    )


def load(split: str, data_dir: Path = DATA_DIR) -> list[Example]:
    """Every example of a split ("train", "candidates", "dev" or "eval"), file by file in name
    order; none where the split has no folder."""
    examples = []
    for path in sorted((data_dir / split).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                examples.append(parse_line(line, path.name))
    return examples


def targets(examples: Iterable[Example]) -> list[list[bool]]:
    return [e.targets() for e in examples]


assert len(head_names()) == len(CATEGORIES) * len(LEVELS) + len(DETECTORS)
