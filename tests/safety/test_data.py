"""The labelled data in the repository: well-formed, and no text in two splits."""

from __future__ import annotations

import pytest

from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.training.check_overlap import overlaps, repeats
from ceruleum.safety.training.dataset import DATA_DIR, load


def test_no_text_repeats_across_train_candidates_dev_and_eval() -> None:
    assert overlaps(DATA_DIR) == []


def test_a_reworded_copy_counts_as_a_repeat_and_another_text_does_not() -> None:
    earlier = ["How do I kill a stuck Linux process that ignores SIGTERM?"]
    later = [
        "how do i kill a stuck linux process that ignores sigterm",
        "What is the capital of Portugal?",
    ]
    found = repeats(earlier, later)
    assert [(text, other) for text, other, _ in found] == [(later[0], earlier[0])]


@pytest.mark.parametrize("split", ["dev", "eval"])
def test_the_dev_and_eval_sets_cover_what_the_issue_measures(split: str) -> None:
    examples = load(split)
    assert len(examples) >= 500
    for category in CATEGORIES:
        serious = [e for e in examples if e.severities[category] >= Severity.MEDIUM]
        assert len(serious) >= 60, category
    assert sum(e.detected["jailbreak"] for e in examples) >= 60
    assert sum(e.detected["indirect_attack"] for e in examples) >= 30
    benign = [e for e in examples if e.benign]
    assert len(benign) >= 200
    assert sum(e.note.startswith("hard negative") for e in benign) >= 100


def test_training_data_parses() -> None:
    examples = load("train")
    assert len(examples) >= 2000
    assert all(e.text.strip() for e in examples)


def test_candidate_training_data_parses() -> None:
    # Training texts the shipped model was not trained on: session 8's violence file, session 9's
    # two self-harm files (version N left them out again) and session 11's four files.
    examples = load("candidates")
    assert len(examples) >= 300
    assert all(e.text.strip() for e in examples)
    assert sum(not e.benign for e in examples) >= 200
