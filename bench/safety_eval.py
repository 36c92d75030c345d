"""Quality of the content filter on the held-out evaluation set (data/safety/eval/).

Runs every eval item through the server's own content filter (the same analyzers, cascade and
thresholds as serving) under Azure's default policy (medium and above filtered; jailbreaks
filtered), and prints JSON: per category precision and recall on medium-and-high items, recall
on high and on low items, jailbreak and indirect-attack recall and precision, the false-positive
rate on benign text (hard negatives separately), and how often the full stage was needed.

Usage:
  python bench/safety_eval.py [--data data/safety] [--policy POLICY_JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from ceruleum.safety.analyzers import ClassifierAnalyzer, Segment
from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.filter import ContentFilter
from ceruleum.safety.policy import ContentFilterPolicy
from ceruleum.safety.service import ClassifierLoader
from ceruleum.safety.training.dataset import DATA_DIR, load


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--policy", default=None, help="a content_filter policy as JSON")
    args = parser.parse_args()

    policy = ContentFilterPolicy.from_dict(json.loads(args.policy) if args.policy else None)
    rules = policy.prompt
    examples = load("eval", args.data)
    loader = ClassifierLoader()
    loader.start()
    classifier = loader.get()
    content_filter = ContentFilter([ClassifierAnalyzer(lambda: classifier)])
    items = [[Segment(e.text, e.role)] for e in examples]  # type: ignore[arg-type]
    started = time.perf_counter()
    verdicts = content_filter.check(items, source="prompt", rules=rules)
    elapsed = time.perf_counter() - started
    stages = [s.stage for s in classifier.classify([e.text for e in examples])]

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
        "false_positive_rate": ratio(sum(v.filtered for _, v in benign), len(benign)),
        "hard_negatives": len(hard),
        "hard_negative_false_positive_rate": ratio(sum(v.filtered for _, v in hard), len(hard)),
        "false_positives": {e.text[:90]: v.filtered_by for e, v in benign if v.filtered},
    }
    report["full_stage_share"] = ratio(stages.count("full"), len(stages))
    report["ms_per_item"] = round(elapsed / len(examples) * 1000, 2)
    report["items"] = len(examples)
    report["policy"] = policy.prompt.to_dict("prompt")
    report["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
