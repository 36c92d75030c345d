"""The labelled data in the repository: well-formed, and the evaluation set held out."""

from __future__ import annotations

from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.training.check_overlap import overlaps
from ceruleum.safety.training.dataset import DATA_DIR, load


def test_no_evaluation_item_repeats_a_training_item() -> None:
    assert overlaps(DATA_DIR) == []


def test_the_evaluation_set_covers_what_the_issue_measures() -> None:
    examples = load("eval")
    assert len(examples) >= 500
    for category in CATEGORIES:
        serious = [e for e in examples if e.severities[category] >= Severity.MEDIUM]
        assert len(serious) >= 60, category
    assert sum(e.detected["jailbreak"] for e in examples) >= 60
    benign = [e for e in examples if e.benign]
    assert len(benign) >= 200
    assert sum(e.note.startswith("hard negative") for e in benign) >= 100


def test_training_data_parses() -> None:
    examples = load("train")
    assert len(examples) >= 2000
    assert all(e.text.strip() for e in examples)
