"""Figures of the content filter on a labelled split, as `bench/safety_eval.py` prints them.

One function, so that the evaluation bench and the operating-point choice
(`training/operating_point.py`) count the same way: per category precision and recall on medium
and high items under a policy, recall on high and on low items, jailbreak and indirect-attack
recall and precision, and the share of benign texts filtered (hard negatives separately).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ceruleum.safety.analyzers import ClassifierAnalyzer, Segment
from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.classifier import ContentClassifier
from ceruleum.safety.filter import ContentFilter
from ceruleum.safety.policy import ContentFilterPolicy
from ceruleum.safety.training.dataset import Example


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def evaluate(
    classifier: ContentClassifier, examples: Sequence[Example], policy: ContentFilterPolicy
) -> dict[str, Any]:
    """Every example through the content filter as served (prompt rules of `policy`)."""
    rules = policy.prompt
    content_filter = ContentFilter([ClassifierAnalyzer(lambda: classifier)])
    items = [[Segment(e.text, e.role)] for e in examples]  # type: ignore[arg-type]
    verdicts = content_filter.check(items, source="prompt", rules=rules)

    report: dict[str, Any] = {"categories": {}}
    for category in CATEGORIES:
        truth = [e.severities[category] for e in examples]
        predicted = [v.findings.severities.get(category, Severity.SAFE) for v in verdicts]
        flagged = [rules.filters(category, p) for p in predicted]
        serious = [t >= Severity.MEDIUM for t in truth]
        report["categories"][category] = {
            "medium_and_high_items": sum(serious),
            "recall_medium_and_high": ratio(
                sum(f and s for f, s in zip(flagged, serious, strict=True)), sum(serious)
            ),
            "recall_high": ratio(
                sum(f for f, t in zip(flagged, truth, strict=True) if t == Severity.HIGH),
                sum(t == Severity.HIGH for t in truth),
            ),
            "precision": ratio(
                sum(f and s for f, s in zip(flagged, serious, strict=True)), sum(flagged)
            ),
            "low_items_annotated_low_or_more": ratio(
                sum(p >= Severity.LOW for p, t in zip(predicted, truth, strict=True) if t == 1),
                sum(t == Severity.LOW for t in truth),
            ),
        }
    for detector in ("jailbreak", "indirect_attack"):
        truth_d = [e.detected[detector] for e in examples]
        found = [bool(v.findings.detected.get(detector)) for v in verdicts]
        report[detector] = {
            "items": sum(truth_d),
            "recall": ratio(
                sum(f and t for f, t in zip(found, truth_d, strict=True)), sum(truth_d)
            ),
            "precision": ratio(
                sum(f and t for f, t in zip(found, truth_d, strict=True)), sum(found)
            ),
        }
    benign = [(e, v) for e, v in zip(examples, verdicts, strict=True) if e.benign]
    hard = [(e, v) for e, v in benign if e.note.startswith("hard negative")]
    report["benign"] = {
        "items": len(benign),
        "false_positives": sum(v.filtered for _, v in benign),
        "false_positive_rate": ratio(sum(v.filtered for _, v in benign), len(benign)),
        "hard_negatives": len(hard),
        "hard_negative_false_positive_rate": ratio(sum(v.filtered for _, v in hard), len(hard)),
        "false_positive_texts": {e.text[:90]: v.filtered_by for e, v in benign if v.filtered},
    }
    return report
