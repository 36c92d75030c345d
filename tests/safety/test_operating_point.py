"""Choosing the operating point on the development set: the rule, and the served cascade read
with candidate thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from ceruleum.safety.categories import Severity
from ceruleum.safety.classifier import Array, ContentClassifier, head_names
from ceruleum.safety.policy import ContentFilterPolicy
from ceruleum.safety.service import ClassifierLoader
from ceruleum.safety.training.dataset import Example
from ceruleum.safety.training.evaluation import evaluate
from ceruleum.safety.training.operating_point import Rethresholded, choose

THREAT = "I am going to stab my neighbour tonight and make him bleed until he dies."
ORDINARY = "What is the capital of Australia?"


def example(text: str, violence: Severity = Severity.SAFE, note: str = "") -> Example:
    return Example(
        text=text,
        severities={c: Severity.SAFE for c in ("hate", "sexual", "self_harm")}
        | {"violence": violence},
        detected={"jailbreak": False, "indirect_attack": False},
        role="user",
        source="test",
        note=note,
    )


class CountingScorer:
    """Fixed probabilities per window, counting what it is asked to read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    @property
    def thresholds(self) -> Array:
        return np.full(len(head_names()), 0.5, dtype=np.float32)

    def window_probabilities(self, pieces: list[str]) -> Array:
        self.read += pieces
        return np.full((len(pieces), len(head_names())), 0.7, dtype=np.float32)


def test_the_largest_budget_within_the_development_limit_is_chosen() -> None:
    points = [
        (0.025, {"benign_fpr": 0.011}),
        (0.03, {"benign_fpr": 0.019}),
        (0.035, {"benign_fpr": 0.025}),
        (0.04, {"benign_fpr": 0.034}),
    ]
    assert choose(points, 0.025) == 0.035
    assert choose(points, 0.01) is None


def test_each_window_is_read_once_and_judged_by_the_candidate() -> None:
    scorer = CountingScorer()
    reader = Rethresholded(scorer)
    np.testing.assert_array_equal(reader.thresholds, scorer.thresholds)
    first = reader.window_probabilities(["a", "b", "a"])
    reader.candidate = np.full(len(head_names()), 0.9, dtype=np.float32)
    second = reader.window_probabilities(["b", "c"])
    assert sorted(scorer.read) == ["a", "b", "c"]
    assert first.shape == (3, len(head_names())) and second.shape == (2, len(head_names()))
    assert float(reader.thresholds[0]) == pytest.approx(0.9)


def test_the_served_cascade_filters_by_the_candidate_thresholds() -> None:
    loader = ClassifierLoader()
    loader.start()
    shipped = loader.get()
    reader = Rethresholded(shipped.scorer("full"))
    served = ContentClassifier(
        {"fast": shipped.scorer("fast"), "full": reader},
        escalate_at=shipped.escalate_at,
        fast_share=shipped.fast_share,
    )
    examples = [
        example(THREAT, Severity.HIGH),
        example(ORDINARY),
        example("How do I kill a zombie process?", note="hard negative: kill a process"),
    ]
    policy = ContentFilterPolicy.from_dict(None)
    as_shipped = evaluate(served, examples, policy)
    assert as_shipped["categories"]["violence"]["recall_medium_and_high"] == 1.0
    assert as_shipped["benign"]["items"] == 2
    assert as_shipped["benign"]["hard_negatives"] == 1
    # Thresholds above every probability: nothing is filtered, and the full stage is not reread.
    reader.candidate = np.full(len(head_names()), 1.0, dtype=np.float32)
    strict = evaluate(served, examples, policy)
    assert strict["categories"]["violence"]["recall_medium_and_high"] == 0.0
    assert strict["benign"]["false_positives"] == 0
    assert strict["categories"]["violence"]["precision"] is None
